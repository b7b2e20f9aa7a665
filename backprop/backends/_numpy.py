"""NumPy fast paths for the primitives of :mod:`backprop.backends._standard`."""

from __future__ import annotations

import types

import array_api_compat.numpy as _compat
import numpy as np

from . import _standard, _strided

name = "numpy"


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


def windows(x, kernel, strides):
    """im2col as a strided view (no copy): ``(N, *spatial, C)`` -> ``(N, *out, *kernel, C)``."""
    return _strided.windows(np, x, kernel, strides)


def im2col(x, kernel, strides, *, ones=False):
    """im2col with one copy of the windows, straight into the (optionally ones-extended) matrix."""
    return _strided.im2col(np, x, kernel, strides, ones=ones)


def overlap_add(cols, spatial, strides):
    return _standard.overlap_add(cols, spatial, strides, inplace_views=True)


def max_pool_backward(x, y, delta, kernel, strides):
    """Max-pool gradient written straight into the result (``out=``, bool masks as factors).

    Same rule as :func:`backprop.backends._standard.max_pool_backward`; for
    non-overlapping windows the last offset receives ``delta`` minus what the
    earlier offsets took, so no mask is built for it.
    """
    out = y.shape[1:-1]
    slices = [index for _, index in _standard.offset_slices(kernel, strides, out)]
    if any(s != k for s, k in zip(strides, kernel)) or len(slices) == 1:
        return _standard.max_pool_backward(x, y, delta, kernel, strides)
    dx = np.empty_like(x)
    # positions past the last window (the tail of each spatial axis) get no gradient
    for axis, (n, k) in enumerate(zip(out, kernel), start=1):
        tail = [slice(None)] * x.ndim
        tail[axis] = slice(n * k, None)
        dx[tuple(tail)] = 0
    taken = None
    given = None  # sum of the gradient handed out so far
    for i, index in enumerate(slices):
        target = dx[index]
        if i == len(slices) - 1:
            np.subtract(delta, given, out=target)
            break
        hit = np.equal(x[index], y)
        if taken is None:
            taken = hit
        else:
            hit &= ~taken
            taken |= hit
        np.multiply(delta, hit, out=target)
        given = target.copy() if given is None else np.add(given, target, out=given)
    return dx
