"""Imported by the forkserver of `deepsync.parallel` only: the feature workers' numba kernels.

The server loads them once (from numba's cache, or compiling them), before any worker
forks from it, so a worker's first segment costs no more than its others. A failure here
only loses that head start: the workers then load the kernels themselves.
"""

from __future__ import annotations

import warnings

try:
    from deepsync.features.stage import load_kernels

    load_kernels()
except Exception as error:  # an optimisation must not stop the server
    warnings.warn(f"feature kernels not preloaded: {error}", RuntimeWarning, stacklevel=1)
