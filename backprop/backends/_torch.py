"""PyTorch fast paths for the primitives of :mod:`backprop.backends._standard`."""

from __future__ import annotations

from . import _standard

name = "torch"


def windows(x, kernel, strides):
    """im2col as a view with ``Tensor.unfold``: ``(N, *spatial, C)`` -> ``(N, *out, *kernel, C)``."""
    d = len(kernel)
    view = x
    for axis, (k, s) in enumerate(zip(kernel, strides), start=1):
        view = view.unfold(axis, k, s)
    # view: (N, *out, C, *kernel)
    return view.permute(0, *range(1, d + 1), *range(d + 2, 2 * d + 2), d + 1)


def overlap_add(cols, spatial, strides):
    return _standard.overlap_add(cols, spatial, strides, inplace_views=True)
