"""Backend layer: which array library, device and dtype the library computes with.

This package is the only place in ``backprop`` that imports NumPy, CuPy,
PyTorch or JAX. Each array library is one :class:`Backend` subclass in its
own file; everything else is written against the Array API standard and
reaches the namespace and the primitives through a backend object.

``BACKPROP_BACKEND`` (``numpy``, ``cupy``, ``torch``, ``jax``,
``array_api_strict``), ``BACKPROP_DEVICE`` and ``BACKPROP_DTYPE``
(``float32``, ``float64``) are read once; :func:`set_backend` changes the
process-wide choice, :func:`use_backend` is a context manager (a
:class:`contextvars.ContextVar`: safe in threads and coroutines) and
:func:`get_backend` returns the backend in force.
"""

from __future__ import annotations

import contextlib
import contextvars
import os

import numpy as np

from .base import DTYPES, Backend, BackendUnavailableError, dtype_name_of
from .random import bernoulli, host_rng, manual_seed, normal, permutation, uniform
from .registry import BACKENDS, available_backends, backend_class, kind_of, namespace_of, to_numpy

__all__ = [
    "BACKENDS", "DTYPES", "Backend", "BackendUnavailableError", "asarray", "available_backends", "backend_class",
    "backend_like", "backend_of", "get_backend", "host_rng", "kind_of", "make_backend", "manual_seed",
    "namespace_of", "set_backend", "to_numpy", "use_backend", "uniform", "normal", "bernoulli", "permutation",
]  # fmt: skip

_global: Backend | None = None
_context: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("backprop_backend", default=None)


def make_backend(name: str | Backend | None = None, device=None, dtype=None) -> Backend:
    """A :class:`Backend` for library ``name`` on ``device`` with ``dtype``.

    Fields left out come from the backend in force (its device only when the
    library is the same); a :class:`Backend` passes through.
    """
    if isinstance(name, Backend):
        return name
    if name is None or dtype is None:
        current = get_backend()
        if name is None:
            name, device = current.name, current.device if device is None else device
        dtype = current.dtype_name if dtype is None else dtype
    return backend_class(name)(device, dtype)


def _from_environment() -> Backend:
    name = os.environ.get("BACKPROP_BACKEND", "").strip() or "numpy"
    device = os.environ.get("BACKPROP_DEVICE", "").strip() or None
    dtype = os.environ.get("BACKPROP_DTYPE", "").strip() or "float32"
    try:
        return backend_class(name)(device, dtype)
    except ValueError as exc:
        raise ValueError(f"{exc} (read from the environment variables BACKPROP_*)") from None


def get_backend() -> Backend:
    """The :class:`Backend` in force: the innermost :func:`use_backend`, else the process-wide one."""
    backend = _context.get()
    if backend is not None:
        return backend
    global _global
    if _global is None:
        _global = _from_environment()
    return _global


def set_backend(name: str | None, device=None, dtype=None) -> Backend:
    """Choose the process-wide backend (``dtype`` left out keeps the one in force); returns it."""
    global _global
    _global = make_backend(name, device, dtype)
    _context.set(None)
    return _global


@contextlib.contextmanager
def use_backend(name: str | None = None, device=None, dtype=None):
    """Context manager: compute with another backend (or dtype) inside the block.

    >>> with use_backend("numpy", dtype="float64"):
    ...     layer = Linear(3, 2)        # float64 NumPy parameters
    """
    token = _context.set(make_backend(name, device, dtype))
    try:
        yield _context.get()
    finally:
        _context.reset(token)


_LIKE: dict[tuple, Backend] = {}


def backend_of(x) -> Backend:
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


def asarray(x, *, dtype=None, backend: Backend | None = None):
    """Put ``x`` on the current backend (or ``backend``), device and dtype.

    Floating data takes the backend's dtype (or ``dtype``); integer and boolean
    data (labels, masks) keep their kind. ``x`` may be host data (lists, NumPy
    arrays) or an array of any supported library, on any device.
    """
    b = backend or get_backend()
    if isinstance(x, np.ndarray) and x.dtype.kind not in "fiub":
        raise TypeError(f"backprop.asarray: cannot convert data of dtype {x.dtype} (expected numbers)")
    if type(x) is b.array_type or (not isinstance(x, np.ndarray) and b.owns(x)):
        if not b.on_device(x):
            x = b.to_device(x)
        target = b.xp.float32 if dtype == "float32" else b.xp.float64 if dtype == "float64" else dtype
        if target is None and x.dtype in b.float_dtypes:
            target = b.dtype
        return x if target is None or x.dtype == target else b.xp.astype(x, target)
    host = to_numpy(x)
    if host.dtype.kind not in "fiub":
        raise TypeError(f"backprop.asarray: cannot convert data of dtype {host.dtype} (expected numbers)")
    if dtype is not None:
        host = host.astype(dtype if isinstance(dtype, str) else dtype_name_of(dtype), copy=False)
    elif host.dtype.kind == "f":
        host = host.astype(b.dtype_name, copy=False)
    return b.from_host(host)
