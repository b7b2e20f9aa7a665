"""CuPy fast paths for the primitives of :mod:`backprop.backends._standard`."""

from __future__ import annotations

import cupy
from cupy.lib.stride_tricks import sliding_window_view

from . import _standard

name = "cupy"


def windows(x, kernel, strides):
    """im2col as a strided view (no copy): ``(N, *spatial, C)`` -> ``(N, *out, *kernel, C)``."""
    d = len(kernel)
    view = sliding_window_view(x, kernel, axis=tuple(range(1, d + 1)))
    view = view[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
    axes = (0, *range(1, d + 1), *range(d + 2, 2 * d + 2), d + 1)
    return cupy.transpose(view, axes)


def overlap_add(cols, spatial, strides):
    return _standard.overlap_add(cols, spatial, strides, inplace_views=True)


def im2col(x, kernel, strides, *, ones=False):
    """im2col with one copy of the windows, straight into the (optionally ones-extended) matrix."""
    w = windows(x, kernel, strides)
    d = len(kernel)
    lead = tuple(w.shape[: 1 + d])
    m, width = _standard.im2col_shape(w, d)
    if not ones:
        return w.reshape(m, width)
    with x.device:
        cols = cupy.empty((m, width + 1), dtype=x.dtype)
    cols[:, width] = 1
    cupy.copyto(cols.reshape(*lead, width + 1)[..., :width].reshape(w.shape), w)
    return cols


max_pool_backward = _standard.max_pool_backward
