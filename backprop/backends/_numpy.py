"""NumPy fast paths for the primitives of :mod:`backprop.backends._standard`."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import _standard

name = "numpy"


def windows(x, kernel, strides):
    """im2col as a strided view (no copy): ``(N, *spatial, C)`` -> ``(N, *out, *kernel, C)``."""
    d = len(kernel)
    view = sliding_window_view(x, kernel, axis=tuple(range(1, d + 1)))
    # view: (N, *(S - K + 1), C, *kernel); keep every stride-th window
    view = view[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
    axes = (0, *range(1, d + 1), *range(d + 2, 2 * d + 2), d + 1)
    return np.transpose(view, axes)


def overlap_add(cols, spatial, strides):
    return _standard.overlap_add(cols, spatial, strides, inplace_views=True)
