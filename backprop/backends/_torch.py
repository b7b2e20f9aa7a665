"""PyTorch fast paths for the primitives of :mod:`backprop.backends._standard`."""

from __future__ import annotations

import torch

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


def im2col(x, kernel, strides, *, ones=False):
    """im2col with one copy of the windows, straight into the (optionally ones-extended) matrix."""
    w = windows(x, kernel, strides)
    d = len(kernel)
    lead = tuple(w.shape[: 1 + d])
    m, width = _standard.im2col_shape(w, d)
    if not ones:
        return w.reshape(m, width)
    cols = torch.empty((m, width + 1), dtype=x.dtype, device=x.device)
    cols[:, width] = 1
    cols.view(*lead, width + 1)[..., :width].unflatten(-1, tuple(w.shape[1 + d :])).copy_(w)
    return cols


max_pool_backward = _standard.max_pool_backward
