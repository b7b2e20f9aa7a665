"""NumPy: the CPU backend, with strided-view windows, native pooling and in-place updates.

What the fast paths here avoid, measured on NumPy 2 with OpenBLAS:

- full-size temporaries (``p -= lr * g`` allocates ``lr * g``): updates run
  in cache-sized blocks through one reused buffer;
- copies of strided views (``target.copy()``): the max-pool gradient is
  written straight into its result with ``out=``, each offset once;
- one long matmul contraction: OpenBLAS computes ``a.T @ b`` with a
  contraction over hundreds of thousands of rows (a convolution's weight
  gradient) four to five times slower than the same product summed over
  blocks of a few thousand rows.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING

import array_api_compat.numpy as _compat
import numpy as np

from . import _strided
from .base import Backend, flat_moments, offset_slices, output_shape, tiled_max_pool, tiles

if TYPE_CHECKING:
    from .._typing import Array, Device

#: elements per block of the in-place update (256 KiB of float32: the buffer stays in L2)
_AXPY_BLOCK = 1 << 16
#: the smallest normal number of each floating dtype (np.finfo costs microseconds a call)
_TINY = {np.dtype(t): np.finfo(t).smallest_normal for t in (np.float16, np.float32, np.float64)}
#: one input channel: the transposed im2col matrix from windows of this many values on (below,
#: as the 1-D CNN's 3, the row layout measured faster)
_TRANSPOSED_MIN = 8
#: input gradient as one banded matmul when the last spatial axis is at most this many kernel
#: widths (the band's zeros cost that factor in FLOPs; measured 2.4x faster than per-offset
#: products at 12 = 2.4 x 5, LeNet's second convolution) and the band matrix is not too large
_BAND_RATIO = 4
_BAND_MAX = 1 << 22
#: rows per block of a long contraction (measured best between 2048 and 8192)
_CONTRACT_BLOCK = 4096


def _sum(x, /, *, axis=None, dtype=None, keepdims=False):
    # np.sum goes through a Python wrapper that costs about 2 us per call,
    # which shows on small batches; the ufunc reduction itself is the same
    if dtype is None and x.dtype.kind == "f":
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return _compat.sum(x, axis=axis, dtype=dtype, keepdims=keepdims)


def _max(x, /, *, axis=None, keepdims=False):
    if x.dtype.kind == "f":
        return np.maximum.reduce(x, axis=axis, keepdims=keepdims)
    return _compat.max(x, axis=axis, keepdims=keepdims)


#: array_api_compat's NumPy namespace with leaner float reductions
namespace = types.ModuleType("backprop.backends.numpy_namespace", _compat.__doc__)
namespace.__dict__.update({k: v for k, v in vars(_compat).items() if not k.startswith("__")})
namespace.sum = _sum
namespace.max = _max


class NumPyBackend(_strided.Strided, _strided.OutMaxPool, Backend):
    """NumPy arrays on the CPU."""

    name = "numpy"
    xp = namespace
    array_type = np.ndarray
    lib = out_ops = np  # the strided windows and the out= max-pool backward (_strided)
    has_devices = False  # NumPy < 2 arrays have no .device

    @classmethod
    def device_of(cls, x: Array) -> str:
        return "cpu"

    def index_add_rows(self, target: Array, index: Array, values: Array) -> Array:
        np.add.at(target, index, values)
        return target

    @classmethod
    def devices(cls) -> list:
        return ["cpu"]

    @classmethod
    def resolve_device(cls, spec: Device | str | None) -> str:
        if spec not in (None, "cpu"):
            raise ValueError(f"backend 'numpy' runs on the CPU only; got device {spec!r}")
        return "cpu"

    @classmethod
    def to_host(cls, x: np.ndarray) -> np.ndarray:
        return x

    def from_host(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d

    def to_device(self, x: np.ndarray) -> np.ndarray:
        return x

    def on_device(self, x: np.ndarray) -> bool:
        return True

    def axpy_(self, target: np.ndarray, alpha: Array | float, x: np.ndarray) -> np.ndarray:
        """``target += alpha * x`` in blocks, through one small buffer (no full-size temporary)."""
        n = target.size
        small = n <= _AXPY_BLOCK or x.shape != target.shape
        if small or not (x.flags.c_contiguous and target.flags.c_contiguous):
            target += alpha * x
            return target
        t, v = target.reshape(-1), x.reshape(-1)  # views: both are contiguous
        buf = np.empty(_AXPY_BLOCK, dtype=target.dtype)
        for start in range(0, n, _AXPY_BLOCK):
            stop = min(start + _AXPY_BLOCK, n)
            b = buf[: stop - start]
            np.multiply(v[start:stop], alpha, out=b)
            np.add(t[start:stop], b, out=t[start:stop])
        return target

    def flush_(self, target: np.ndarray) -> np.ndarray:
        """Entries below the smallest normal number set to zero, in place (written only when
        there is one: the common case costs a comparison)."""
        tiny = _TINY.get(target.dtype)
        if tiny is not None:
            small = np.less(np.abs(target), tiny)
            if small.any():
                np.copyto(target, 0, where=small)
        return target

    def adam_update_(self, p, g, mean, square, betas, step_size, c2_root, eps):
        """The standard update with one scratch array for every temporary (same operations in
        the same order, so the same bits)."""
        tiny = _TINY.get(p.dtype)
        arrays = (p, g, mean, square)
        if tiny is None or any(a.shape != p.shape or not a.flags.c_contiguous for a in arrays):
            return super().adam_update_(p, g, mean, square, betas, step_size, c2_root, eps)
        b1, b2 = betas
        t = np.multiply(g, 1 - b1)
        mean *= b1
        mean += t
        # flushes: one comparison and one masked write each (cheaper than testing first)
        small = np.less(np.abs(mean, out=t), tiny)
        np.copyto(mean, 0, where=small)
        np.multiply(g, g, out=t)
        t *= 1 - b2
        square *= b2
        square += t
        np.copyto(square, 0, where=np.less(square, tiny, out=small))  # square >= 0: no abs
        np.sqrt(square, out=t)
        t /= c2_root
        t += eps
        np.divide(mean, t, out=t)
        t *= step_size
        np.copyto(t, 0, where=np.less(np.abs(t), tiny, out=small))
        p -= t
        return p, mean, square

    def adam_update_all_(self, params, grads, states, betas, step_size, c2_root, eps, cache):
        """Every parameter's Adam update as the passes of :meth:`adam_update_` over one flat
        buffer: the moments live in one array each (the states hold views of it), the gradients
        are gathered into one, and each parameter subtracts its view of the flat update. A step
        of a network makes about twenty passes instead of twenty per parameter (NumPy's cost
        per call dominates small arrays). Same operations in the same order: the same bits."""
        dtype = np.dtype(self.dtype)
        tiny = _TINY.get(dtype)
        if tiny is None or len(params) < 2:
            return False
        for p, g in zip(params, grads):
            if (
                type(p) is not np.ndarray
                or p.dtype != dtype
                or not p.flags.c_contiguous
                or not p.flags.writeable
                or type(g) is not np.ndarray
                or g.shape != p.shape
                or g.dtype != dtype
            ):
                return False
        flat = flat_moments(
            cache,
            states,
            tuple(p.shape for p in params),
            owns=lambda a: type(a) is np.ndarray and a.dtype == dtype,
            new=lambda n: np.empty(n, dtype=dtype),
            fill=np.copyto,
            where=(dtype,),
        )
        if flat is None:
            return False
        gathered, t = flat["buffers"]
        small = flat.get("small")
        if small is None:
            small = flat["small"] = np.empty(t.shape, dtype=bool)
        np.concatenate([g.reshape(-1) for g in grads], out=gathered)
        mean, square = flat["whole"]
        b1, b2 = betas
        np.multiply(gathered, 1 - b1, out=t)
        mean *= b1
        mean += t
        # each flush writes only where it finds an entry to flush (none, early in training)
        _flush_where(mean, np.less(np.abs(mean, out=t), tiny, out=small))
        np.multiply(gathered, gathered, out=t)
        t *= 1 - b2
        square *= b2
        square += t
        _flush_where(square, np.less(square, tiny, out=small))  # square >= 0: no abs
        np.sqrt(square, out=t)
        t /= c2_root
        t += eps
        np.divide(mean, t, out=t)
        t *= step_size
        _flush_where(t, np.less(np.abs(t, out=gathered), tiny, out=small))
        for p, part in zip(params, flat["update"]):
            p -= part
        return True

    # ------------------------------------------------------------ convolution

    def _conv_columns(self, x, kernel, strides, bias):
        """``(transposed, matrix)``: with one input channel (and windows of 8 values or more)
        the im2col matrix transposed,
        ``(window (+ 1), positions)``, one contiguous row per kernel offset (its strided slice
        copied whole: about six times faster than writing columns); otherwise the
        ``(positions, window (+ 1))`` matrix of :func:`_strided.im2col` (one copy whose
        innermost run is a kernel row of channels)."""
        width = 1
        for k in kernel:
            width *= k
        if x.shape[-1] != 1 or width < _TRANSPOSED_MIN:
            return False, _strided.im2col(np, x, kernel, strides, ones=bias)
        out = output_shape(tuple(x.shape[1:-1]), kernel, strides)
        m = x.shape[0]
        for n in out:
            m *= n
        cols = np.empty((width + (1 if bias else 0), m), dtype=x.dtype)
        if bias:
            cols[width] = 1
        for j, (_, index) in enumerate(offset_slices(kernel, strides, out)):
            np.copyto(cols[j].reshape(x.shape[0], *out, 1), x[index])
        return True, cols

    def conv(self, x, weight, bias, strides):
        """im2col and one matmul; the layout of the matrix chosen by the input's channels."""
        kernel, c_out = tuple(weight.shape[:-2]), weight.shape[-1]
        transposed, cols = self._conv_columns(x, kernel, strides, bias is not None)
        w = weight.reshape(-1, c_out)
        if bias is not None:
            w = np.concatenate([w, bias.reshape(1, c_out)])
        # a transposed matrix goes to BLAS as it is (no copy)
        y = (cols.T if transposed else cols) @ w
        out = output_shape(tuple(x.shape[1:-1]), kernel, strides)
        return y.reshape(x.shape[0], *out, c_out), (transposed, cols)

    def conv_backward(
        self, x, weight, delta, strides, saved=None, *, bias=True, input_grad=True, param_grad=True
    ):
        """The weight gradient from the forward's matrix; the input gradient from one batched
        matmul that gives each kernel offset its own contiguous ``(positions, C_in)`` block,
        added into place offset by offset (col2im reading contiguous memory)."""
        kernel, c_out = tuple(weight.shape[:-2]), weight.shape[-1]
        d_mat = delta.reshape(-1, c_out)
        dx = dw = db = None
        if param_grad:
            transposed, cols = saved or self._conv_columns(x, kernel, strides, bias)
            grad = cols @ d_mat if transposed else self.contract_rows(cols, d_mat)
            width = grad.shape[0] - (1 if bias else 0)
            if bias:
                db = grad[width]
            dw = grad[:width].reshape(weight.shape)
        if input_grad:
            spatial, out = tuple(x.shape[1:-1]), tuple(delta.shape[1:-1])
            if (
                spatial[-1] <= _BAND_RATIO * kernel[-1]
                and _band_size(weight, spatial, out) <= _BAND_MAX
            ):
                dx = _input_gradient_banded(x, weight, delta, strides)
            else:
                dx = _input_gradient_by_offset(x, weight, d_mat, delta, strides)
        return dx, dw, db

    def contract_rows(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a.T @ b`` summed over blocks of rows (OpenBLAS is slower on one long contraction)."""
        m = a.shape[0]
        if m <= 2 * _CONTRACT_BLOCK:
            return a.T @ b
        out = a[:_CONTRACT_BLOCK].T @ b[:_CONTRACT_BLOCK]
        part = np.empty_like(out)
        for start in range(_CONTRACT_BLOCK, m, _CONTRACT_BLOCK):
            stop = start + _CONTRACT_BLOCK
            np.matmul(a[start:stop].T, b[start:stop], out=part)
            out += part
        return out

    def max_pool(
        self, x: np.ndarray, kernel: tuple[int, ...], strides: tuple[int, ...]
    ) -> np.ndarray:
        """Element-wise maximum of the offset slices, accumulated in the result (no temporaries);
        windows that tile the input by rows, then columns (``base.tiled_max_pool``)."""
        if tiles(x, kernel, strides):
            return tiled_max_pool(np, x, kernel)
        out = output_shape(tuple(x.shape[1:-1]), kernel, strides)
        slices = [index for _, index in offset_slices(kernel, strides, out)]
        if len(slices) == 1:
            return x[slices[0]].copy()
        y = np.maximum(x[slices[0]], x[slices[1]])
        for index in slices[2:]:
            np.maximum(y, x[index], out=y)
        return y


def _flush_where(target: np.ndarray, small: np.ndarray) -> None:
    """Zero ``target`` where ``small`` holds; the masked write only when there is one (a test
    of the mask costs half of a masked write that writes nothing)."""
    if small.any():
        np.copyto(target, 0, where=small)


def _band_size(weight, spatial, out) -> int:
    """Elements of the band matrix of :func:`_input_gradient_banded`."""
    size = out[-1] * weight.shape[-1] * spatial[-1] * weight.shape[-2]
    for k in weight.shape[:-3]:
        size *= k
    return size


def _input_gradient_banded(x, weight, delta, strides):
    """A convolution's input gradient with one matmul along the last spatial axis.

    ``T[j, o, *lead, j * s + b, c] = w[*lead, b, c, o]`` (zeros elsewhere) maps
    a row of delta, ``(W_out, C_out)``, to every input row it reaches,
    ``(*lead kernel offsets, W, C_in)``: ``delta @ T`` sums over the last
    kernel axis inside the product (no overlap-add along it) and reads and
    writes contiguous rows. The other spatial axis, if any, is added back
    offset by offset (one strided slice of rows each). Input positions no
    window reads get zero.
    """
    n, c_in, c_out = x.shape[0], weight.shape[-2], weight.shape[-1]
    spatial, out = tuple(x.shape[1:-1]), tuple(delta.shape[1:-1])
    lead, kw, sw = tuple(weight.shape[:-3]), weight.shape[-3], strides[-1]
    band = np.zeros((out[-1], c_out, *lead, spatial[-1], c_in), dtype=x.dtype)
    # (*lead, kw, C_in, C_out) -> (C_out, *lead, kw, C_in)
    w = np.moveaxis(weight, -1, 0)
    for j in range(out[-1]):
        band[j, ..., j * sw : j * sw + kw, :] = w
    rows = delta.reshape(-1, out[-1] * c_out) @ band.reshape(out[-1] * c_out, -1)
    if not lead:  # 1-D: the product is the gradient
        return rows.reshape(x.shape)
    rows = rows.reshape(n, *out[:-1], *lead, spatial[-1], c_in)
    dx = np.zeros_like(x)
    sh, ho = strides[0], out[0]
    for a in range(lead[0]):
        dx[:, a : a + sh * (ho - 1) + 1 : sh] += rows[:, :, a]
    return dx


def _input_gradient_by_offset(x, weight, d_mat, delta, strides):
    """A convolution's input gradient kernel offset by offset: each offset's contiguous
    ``(positions, C_in)`` block from one matmul, added into its strided slice (col2im reading
    contiguous memory: four times faster than reading the columns of one big product)."""
    kernel, c_in, c_out = tuple(weight.shape[:-2]), weight.shape[-2], weight.shape[-1]
    out = tuple(delta.shape[1:-1])
    w = weight.reshape(-1, c_in, c_out)
    overlapping = any(s < k for s, k in zip(strides, kernel))
    gaps = any(
        s > k or (m - 1) * s + k < size
        for s, k, m, size in zip(strides, kernel, out, x.shape[1:-1])
    )
    dx = np.zeros_like(x) if overlapping or gaps else np.empty_like(x)
    part = np.empty((d_mat.shape[0], c_in), dtype=x.dtype)
    for j, (_, index) in enumerate(offset_slices(kernel, strides, out)):
        np.matmul(d_mat, w[j].T, out=part)
        block = part.reshape(delta.shape[0], *out, c_in)
        if overlapping:
            dx[index] += block
        else:
            dx[index] = block
    return dx
