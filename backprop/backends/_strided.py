"""Primitives for libraries with NumPy's strided arrays (NumPy and CuPy), written once for both.

``lib`` is the library module (``numpy`` or ``cupy``): both have
``lib.lib.stride_tricks.sliding_window_view``, ``transpose``, ``empty`` and
``copyto`` with the same meaning.
"""

from __future__ import annotations

import contextlib

from .base import im2col_shape


def windows(lib, x, kernel, strides):
    """im2col as a strided view (no copy): ``(N, *spatial, C)`` -> ``(N, *out, *kernel, C)``."""
    d = len(kernel)
    view = lib.lib.stride_tricks.sliding_window_view(x, kernel, axis=tuple(range(1, d + 1)))
    # view: (N, *(S - K + 1), C, *kernel); keep every stride-th window
    view = view[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
    axes = (0, *range(1, d + 1), *range(d + 2, 2 * d + 2), d + 1)
    return lib.transpose(view, axes)


def im2col(lib, x, kernel, strides, *, ones=False):
    """im2col with one copy of the windows, straight into the (optionally ones-extended) matrix."""
    w = windows(lib, x, kernel, strides)
    d = len(kernel)
    lead = tuple(w.shape[: 1 + d])
    m, width = im2col_shape(w.shape, d)
    if not ones:
        return w.reshape(m, width)
    # CuPy allocates on the current device: make it x's (NumPy has no device to enter)
    device = getattr(x, "device", None)
    scope = device if hasattr(device, "__enter__") else contextlib.nullcontext()
    with scope:
        cols = lib.empty((m, width + 1), dtype=x.dtype)
    cols[:, width] = 1
    lib.copyto(cols.reshape(*lead, width + 1)[..., :width].reshape(w.shape), w)
    return cols
