"""The benchmarks: figures printed, never tests, outside the pipeline's path.

``python -m deepsync.bench.features`` (`make bench-features`): the feature stage against
``loadmat`` and per-channel scipy. ``deepsync.bench.train`` (`make bench-train`): the
CNN's training speed per precision and layout, the loader, timm's published figures.
``deepsync.bench.scale`` (`make bench-scale`): every stage at growing fractions of the
real size, with growth exponents and full-size projections. `harness` holds what they
share. Nothing in the library imports this package.
"""
