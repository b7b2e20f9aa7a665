"""What a network is computed with, found without importing the module classes.

:func:`backend_of_net` is used by the summary, the training loop and the
engines; it lives here, below all of them, so that none of them imports
another to find it (``module`` -> ``summary`` -> ``optim`` -> ``module``
would be a circle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backends import Backend, get_backend

if TYPE_CHECKING:
    from .module import Module

__all__ = ["backend_of_net"]


def backend_of_net(net: Module, modules: list | None = None) -> Backend:
    """The backend of a network's parameters (the backend in force if it has none); ``modules``
    is ``net.unique_modules()`` when the caller has it already."""
    for m in net.unique_modules() if modules is None else modules:
        m._ensure_backend()
        if m.backend is not None:
            return m.backend
    return get_backend()
