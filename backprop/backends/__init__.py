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

from .base import DTYPES, Backend, BackendUnavailableError, device_label
from .random import bernoulli, host_rng, manual_seed, normal, permutation, uniform
from .registry import BACKENDS, available_backends, backend_class, kind_of, namespace_of, to_numpy
from .selection import get_backend, make_backend, set_backend, use_backend
from .transfer import asarray, backend_like, backend_of

__all__ = [
    "BACKENDS",
    "DTYPES",
    "Backend",
    "BackendUnavailableError",
    "asarray",
    "available_backends",
    "backend_class",
    "backend_like",
    "backend_of",
    "bernoulli",
    "device_label",
    "get_backend",
    "host_rng",
    "kind_of",
    "make_backend",
    "manual_seed",
    "namespace_of",
    "normal",
    "permutation",
    "set_backend",
    "to_numpy",
    "uniform",
    "use_backend",
]
