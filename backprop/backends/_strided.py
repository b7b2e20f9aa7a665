"""Primitives for libraries with NumPy's strided arrays (NumPy and CuPy), written once for both.

``lib`` is the library module (``numpy`` or ``cupy``): both have
``lib.lib.stride_tricks.sliding_window_view``, ``transpose``, ``empty`` and
``copyto`` with the same meaning.
"""

from __future__ import annotations

import contextlib

from .base import offset_slices, output_shape


def windows(lib, x, kernel, strides):
    """im2col as a strided view (no copy): ``(N, *spatial, C)`` -> ``(N, *out, *kernel, C)``."""
    d = len(kernel)
    view = lib.lib.stride_tricks.sliding_window_view(x, kernel, axis=tuple(range(1, d + 1)))
    # view: (N, *(S - K + 1), C, *kernel); keep every stride-th window
    view = view[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
    axes = (0, *range(1, d + 1), *range(d + 2, 2 * d + 2), d + 1)
    return lib.transpose(view, axes)


def im2col(lib, x, kernel, strides, *, ones=False):
    """The im2col matrix ``(N * positions, prod(kernel) * C (+ 1))``, written with one copy.

    With one input channel, one copy per kernel offset (its strided slice into
    its column) runs along the positions and is about three times faster than
    one copy of the window view, whose innermost axes are then the short kernel
    axes. With several channels the single copy is faster (two to four times at
    2 to 8 channels): its innermost run is a whole row of the kernel.
    """
    c = x.shape[-1]
    out = output_shape(tuple(x.shape[1:-1]), kernel, strides)
    m = x.shape[0]
    for n in out:
        m *= n
    width = c
    for k in kernel:
        width *= k
    if c != 1 and not ones:
        return windows(lib, x, kernel, strides).reshape(m, width)
    # CuPy allocates on the current device: make it x's (NumPy has no device to enter)
    device = getattr(x, "device", None)
    scope = device if hasattr(device, "__enter__") else contextlib.nullcontext()
    with scope:
        cols = lib.empty((x.shape[0], *out, width + (1 if ones else 0)), dtype=x.dtype)
    if ones:
        cols[..., width] = 1
    if c == 1:
        for j, (_, index) in enumerate(offset_slices(kernel, strides, out)):
            cols[..., j : j + 1] = x[index]
    else:
        w = windows(lib, x, kernel, strides)
        lib.copyto(cols[..., :width].reshape(w.shape), w)
    return cols.reshape(m, -1)
