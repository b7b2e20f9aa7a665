"""Data onto a backend (:func:`asarray`); the backend of an array (:func:`backend_of`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .base import DTYPES, Backend, dtype_name_of
from .registry import kind_of, to_numpy
from .selection import get_backend

if TYPE_CHECKING:
    from .._typing import Array, DType

_LIKE: dict[tuple, Backend] = {}


def backend_of(x: Array) -> Backend:
    """The :class:`Backend` of an existing array: its library, device and (floating) dtype.

    Cached: parameter-free layers ask for it on every call, and resolving a
    device can query the driver. A non-floating array gets the dtype in force.
    """
    cls = kind_of(x)
    device = cls.device_of(x)
    key = (cls, device, x.dtype)
    backend = _LIKE.get(key)
    if backend is None:
        dtype = dtype_name_of(x.dtype)
        dtype = dtype if dtype in DTYPES else get_backend().dtype_name
        current = get_backend()
        if device is None:  # a JAX tracer: the device in force
            device = current.device if current.name == cls.name else None
        backend = _LIKE[key] = cls(device, dtype)
    return backend


#: the former name of :func:`backend_of`
backend_like = backend_of


def asarray(x: Any, *, dtype: DType | None = None, backend: Backend | None = None) -> Array:
    """Put ``x`` on the current backend (or ``backend``), device and dtype.

    Floating data takes the backend's dtype (or ``dtype``); integer and boolean
    data (labels, masks) keep their kind. ``x`` may be host data (lists, NumPy
    arrays) or an array of any supported library, on any device.
    """
    b = backend or get_backend()
    if isinstance(x, np.ndarray) and x.dtype.kind not in "fiub":
        raise TypeError(
            f"backprop.asarray: cannot convert data of dtype {x.dtype} (expected numbers)"
        )
    if type(x) is b.array_type or (not isinstance(x, np.ndarray) and b.owns(x)):
        x = b.detached(x)
        if not b.on_device(x):
            x = b.to_device(x)
        target = (
            b.xp.float32 if dtype == "float32" else b.xp.float64 if dtype == "float64" else dtype
        )
        if target is None and x.dtype in b.float_dtypes:
            target = b.dtype
        return x if target is None or x.dtype == target else b.xp.astype(x, target)
    host = to_numpy(x)
    if host.dtype.kind not in "fiub":
        raise TypeError(
            f"backprop.asarray: cannot convert data of dtype {host.dtype} (expected numbers)"
        )
    if dtype is not None:
        host = host.astype(dtype if isinstance(dtype, str) else dtype_name_of(dtype), copy=False)
    elif host.dtype.kind == "f":
        host = host.astype(b.dtype_name, copy=False)
    return b.from_host(host)
