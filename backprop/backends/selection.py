"""Which backend is in force: the environment, :func:`set_backend`, :func:`use_backend`."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .base import Backend
from .registry import backend_class

if TYPE_CHECKING:
    from .._typing import Device, DType

_global: Backend | None = None
_context: contextvars.ContextVar[Backend | None] = contextvars.ContextVar(
    "backprop_backend", default=None
)


def make_backend(
    name: str | Backend | None = None, device: Device | None = None, dtype: DType | None = None
) -> Backend:
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
    """The :class:`Backend` in force: the innermost :func:`use_backend`, else the process's."""
    backend = _context.get()
    if backend is not None:
        return backend
    global _global
    if _global is None:
        _global = _from_environment()
    return _global


def set_backend(
    name: str | None, device: Device | None = None, dtype: DType | None = None
) -> Backend:
    """Choose the process-wide backend (``dtype`` left out keeps the one in force); returns it."""
    global _global
    _global = make_backend(name, device, dtype)
    _context.set(None)
    return _global


@contextlib.contextmanager
def use_backend(
    name: str | None = None, device: Device | None = None, dtype: DType | None = None
) -> Iterator[Backend]:
    """Context manager: compute with another backend (or dtype) inside the block.

    >>> with use_backend("numpy", dtype="float64"):
    ...     layer = Linear(3, 2)        # float64 NumPy parameters
    """
    token = _context.set(make_backend(name, device, dtype))
    try:
        yield _context.get()
    finally:
        _context.reset(token)
