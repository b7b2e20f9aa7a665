"""``torch`` itself, for :mod:`backprop.interop`'s conversion of ``torch.nn`` modules.

The rest of the library reaches PyTorch only through the array backend; converting
networks to and from ``torch.nn`` needs the module classes as well, and this is the
one place that hands them out.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_torch"]


def load_torch() -> Any:
    """The ``torch`` package; an ImportError saying how to install it when it is missing."""
    try:
        import torch
    except ImportError:
        raise ImportError(
            "converting to or from PyTorch needs the torch package: pip install torch "
            "(or the project's 'torch' extra)"
        ) from None
    return torch
