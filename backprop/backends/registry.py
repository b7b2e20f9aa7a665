"""Which array libraries exist, and which one an array belongs to.

Adding an array library is one file (a :class:`~backprop.backends.base.Backend`
subclass) and one line in :data:`REGISTRY`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

from .._install import install_hint
from . import threads
from .base import Backend, BackendUnavailableError

if TYPE_CHECKING:
    from .._typing import Array

#: name -> (module in this package, class, root modules of its array types, how to install it)
REGISTRY = {
    "numpy": (
        "numpy",
        "NumPyBackend",
        ("numpy",),
        install_hint() + " (numpy is a core dependency)",
    ),
    "cupy": ("cupy", "CuPyBackend", ("cupy",), install_hint("cuda12") + " or [cuda13] for CUDA 13"),
    "torch": (
        "torch",
        "TorchBackend",
        ("torch",),
        install_hint("torch") + ", or the PyTorch build for your GPU",
    ),
    "jax": (
        "jax",
        "JaxBackend",
        ("jax", "jaxlib"),
        install_hint("jax") + ", or jax[cuda12] for a GPU",
    ),
    "array_api_strict": ("strict", "StrictBackend", ("array_api_strict",), install_hint("test")),
}
BACKENDS = tuple(REGISTRY)

_CLASSES: dict[str, type[Backend]] = {}
_CLASS_BY_TYPE: dict[type, type[Backend]] = {}
_ROOTS = {root: name for name, (_, _, roots, _) in REGISTRY.items() for root in roots}


def backend_class(name: str) -> type[Backend]:
    """The :class:`Backend` subclass of library ``name`` (imports the library)."""
    cls = _CLASSES.get(name)
    if cls is not None:
        return cls
    if not isinstance(name, str) or name not in REGISTRY:
        hint = (
            " (a device? use e.g. net.to('torch', device='cuda') or 'cupy')"
            if name in ("cuda", "gpu")
            else ""
        )
        raise ValueError(f"unknown backend {name!r}; valid names are: {', '.join(BACKENDS)}{hint}")
    module, class_name, _, install = REGISTRY[name]
    try:
        cls = getattr(importlib.import_module(f"{__package__}.{module}"), class_name)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {name!r} is not installed ({exc}); install it with: {install}"
        ) from None
    # BLAS / OpenMP pools no larger than the CPUs this process may use (BACKPROP_NUM_THREADS)
    threads.apply_limits("torch" if name == "torch" else "numpy")
    _CLASSES[name] = cls
    return cls


def kind_of(x: object) -> type[Backend]:
    """The :class:`Backend` subclass whose library ``x`` belongs to; TypeError for anything else."""
    t = type(x)
    cls = _CLASS_BY_TYPE.get(t)
    if cls is not None:
        return cls
    name = _ROOTS.get(t.__module__.partition(".")[0])
    if name is not None:
        try:
            cls = backend_class(name)
        except BackendUnavailableError:
            cls = None
        if cls is not None and cls.owns(x):
            _CLASS_BY_TYPE[t] = cls
            return cls
    raise TypeError(
        f"expected an array ({', '.join(BACKENDS)}), got {t.__name__}; "
        "convert it with backprop.asarray(x)"
    )


def namespace_of(x: Array) -> Any:
    """The Array API namespace of ``x`` (cached by type, so cheap on a hot path)."""
    return kind_of(x).xp


def available_backends() -> dict[str, str | None]:
    """Map each backend name to ``None`` if usable here (on its default device), else why not."""
    result = {}
    for name in BACKENDS:
        try:
            backend_class(name)(None, "float32")
            result[name] = None
        except (BackendUnavailableError, ValueError) as exc:
            result[name] = str(exc)
    return result


def to_numpy(x: Any) -> np.ndarray:
    """Any supported array (or nested list, or scalar) as a NumPy array on the host."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return kind_of(x).to_host(x)
    except TypeError:
        return np.asarray(x)
