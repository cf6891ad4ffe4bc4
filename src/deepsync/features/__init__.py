"""`make features`: every segment's features, computed once into a resumable cache.

`stage.build_features` runs each indexed segment through `spectrogram` (the numba
`kernel`: per-electrode log spectrograms, band powers and cross-spectra in one pass) and
the feature `families` (`winners`: the 2016 winners' four), in parallel, into
``cache/features-<hash>/`` (`cache`: memory-mapped arrays, only whole rows trusted).
`pictures` draws cached stacks; `preload` warms the page cache.
"""
