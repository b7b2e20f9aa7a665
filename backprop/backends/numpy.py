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
from .base import Backend, offset_slices, output_shape

if TYPE_CHECKING:
    from .._typing import Array, Device

#: elements per block of the in-place update (256 KiB of float32: the buffer stays in L2)
_AXPY_BLOCK = 1 << 16
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
        """Element-wise maximum of the offset slices, accumulated in the result (no temporaries)."""
        out = output_shape(tuple(x.shape[1:-1]), kernel, strides)
        slices = [index for _, index in offset_slices(kernel, strides, out)]
        if len(slices) == 1:
            return x[slices[0]].copy()
        y = np.maximum(x[slices[0]], x[slices[1]])
        for index in slices[2:]:
            np.maximum(y, x[index], out=y)
        return y
