"""CuPy fast paths for the primitives of :mod:`backprop.backends._standard`."""

from __future__ import annotations

import cupy

from . import _standard, _strided

name = "cupy"


def windows(x, kernel, strides):
    """im2col as a strided view (no copy): ``(N, *spatial, C)`` -> ``(N, *out, *kernel, C)``."""
    return _strided.windows(cupy, x, kernel, strides)


def im2col(x, kernel, strides, *, ones=False):
    """im2col with one copy of the windows, straight into the (optionally ones-extended) matrix."""
    return _strided.im2col(cupy, x, kernel, strides, ones=ones)


def overlap_add(cols, spatial, strides):
    return _standard.overlap_add(cols, spatial, strides, inplace_views=True)


max_pool_backward = _standard.max_pool_backward
