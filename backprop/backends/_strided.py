"""Primitives for libraries with NumPy's strided arrays, written once for all of them.

``lib`` is the library module (``numpy`` or ``cupy``): both have
``lib.lib.stride_tricks.sliding_window_view``, ``transpose``, ``empty`` and
``copyto`` with the same meaning. :func:`max_pool_backward` only needs
element-wise functions with ``out=``, which PyTorch also has (under other
names for some: see ``TorchBackend``).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from .base import im2col_shape, offset_slices, output_shape

if TYPE_CHECKING:
    from .._typing import Array


def windows(lib: Any, x: Array, kernel: tuple[int, ...], strides: tuple[int, ...]) -> Array:
    """im2col as a strided view (no copy): ``(N, *spatial, C)`` -> ``(N, *out, *kernel, C)``."""
    d = len(kernel)
    view = lib.lib.stride_tricks.sliding_window_view(x, kernel, axis=tuple(range(1, d + 1)))
    # view: (N, *(S - K + 1), C, *kernel); keep every stride-th window
    view = view[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
    axes = (0, *range(1, d + 1), *range(d + 2, 2 * d + 2), d + 1)
    return lib.transpose(view, axes)


def im2col(
    lib: Any, x: Array, kernel: tuple[int, ...], strides: tuple[int, ...], *, ones: bool = False
) -> Array:
    """The im2col matrix ``(N * positions, prod(kernel) * C (+ 1))``, written with one copy.

    With one input channel, one copy per kernel offset (its strided slice into
    its column) runs along the positions and is about three times faster than
    one copy of the window view, whose innermost axes are then the short kernel
    axes. With several channels the single copy is faster (two to four times at
    2 to 8 channels): its innermost run is a whole row of the kernel.
    """
    c = x.shape[-1]
    out = output_shape(tuple(x.shape[1:-1]), kernel, strides)
    m, width = im2col_shape((x.shape[0], *out, *kernel, c), len(kernel))
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
    return cols.reshape(m, width + (1 if ones else 0))  # not -1: ambiguous for 0 rows


def max_pool_backward(
    lib: Any, x: Array, y: Array, delta: Array, kernel: tuple[int, ...], strides: tuple[int, ...]
) -> Array | None:
    """Max-pool gradient written straight into the result, each kernel offset once; None when
    the windows overlap (stride < kernel) or have one offset (the standard version's cases).

    Same rule as the standard version (the first maximum of each window takes
    its gradient). The first offsets receive ``delta * hit`` with ``out=``;
    the last receives what is left, ``delta - delta * hit`` for two offsets,
    or ``delta`` times "no earlier hit" for more. Masks combine in place
    (``hit > taken`` is ``hit and not taken`` on booleans), so no temporary is
    made. ``lib`` has ``zeros_like``, ``empty_like``, ``equal``, ``greater``,
    ``logical_or``, ``logical_not``, ``multiply`` and ``subtract``.
    """
    out = tuple(y.shape[1:-1])
    slices = [index for _, index in offset_slices(kernel, strides, out)]
    if any(s < k for s, k in zip(strides, kernel)) or len(slices) == 1:
        return None
    if any(s > k for s, k in zip(strides, kernel)):
        dx = lib.zeros_like(x)  # gaps between windows get no gradient
    else:
        dx = lib.empty_like(x)
        # positions past the last window (the tail of each spatial axis) get no gradient
        for axis, (n, k) in enumerate(zip(out, kernel), start=1):
            if n * k < x.shape[axis]:
                tail = [slice(None)] * x.ndim
                tail[axis] = slice(n * k, None)
                dx[tuple(tail)] = 0
    first = dx[slices[0]]
    taken = lib.equal(x[slices[0]], y)
    lib.multiply(delta, taken, out=first)
    if len(slices) == 2:
        lib.subtract(delta, first, out=dx[slices[1]])
        return dx
    hit = lib.empty_like(taken)
    for index in slices[1:-1]:
        lib.equal(x[index], y, out=hit)
        lib.greater(hit, taken, out=hit)  # a maximum here, and none at an earlier offset
        lib.logical_or(taken, hit, out=taken)
        lib.multiply(delta, hit, out=dx[index])
    lib.logical_not(taken, out=taken)
    lib.multiply(delta, taken, out=dx[slices[-1]])
    return dx


class Strided:
    """The methods of a backend whose arrays are NumPy-like strided arrays (NumPy, CuPy):
    zeroing with ``fill``, windows as strided views, im2col with one copy. ``lib`` is the
    library module."""

    lib: Any = None

    def zero_(self, target: Array) -> Array:
        target.fill(0)
        return target

    def windows(self, x: Array, kernel: tuple[int, ...], strides: tuple[int, ...]) -> Array:
        return windows(self.lib, x, kernel, strides)

    def im2col(
        self, x: Array, kernel: tuple[int, ...], strides: tuple[int, ...], *, ones: bool = False
    ) -> Array:
        return im2col(self.lib, x, kernel, strides, ones=ones)


class OutMaxPool:
    """``max_pool_backward`` written straight into the result with ``out=`` (see
    :func:`max_pool_backward`); ``out_ops`` holds the library's element-wise functions under
    NumPy's names. Overlapping windows and single offsets go to the standard version."""

    out_ops: Any = None

    def max_pool_backward(
        self,
        x: Array,
        y: Array,
        delta: Array,
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        state: Any = None,
    ) -> Array:
        dx = max_pool_backward(self.out_ops, x, y, delta, kernel, strides)
        if dx is None:
            return super().max_pool_backward(x, y, delta, kernel, strides)
        return dx
