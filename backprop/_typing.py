"""Type aliases used in the annotations of the package.

The library is written against the Python Array API standard, so one
function takes the arrays of NumPy, CuPy, PyTorch, JAX or array-api-strict
alike; no common static type covers them all. These aliases name what an
annotation means without importing any array library (only
``backprop/backends/`` may import one). Modules import them under
``if TYPE_CHECKING:`` (every module has ``from __future__ import
annotations``, so annotations are never evaluated at run time).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = ["Array", "ArrayLike", "DType", "Device", "FilePath", "Metric"]

#: Any array of an Array-API library (``numpy.ndarray``, ``torch.Tensor``,
#: ``jax.Array``, ``cupy.ndarray``, an ``array_api_strict`` array...).
Array: TypeAlias = Any

#: What :func:`backprop.asarray` takes: an :data:`Array` of any supported library, a NumPy
#: array, a nested list or a number (data handed to the training loops and estimators).
ArrayLike: TypeAlias = Any

#: A score ``metric(yhat, y)`` of predictions against targets, e.g. :func:`backprop.accuracy`.
Metric: TypeAlias = Callable[[Array, Array], float]

#: A floating or integer dtype object of an array library, or its name (``"float32"``).
DType: TypeAlias = Any

#: A device object of an array library, or a spec the backend resolves (``"cpu"``, ``"cuda:0"``).
Device: TypeAlias = Any

#: A file system path: a ``str`` or a :class:`pathlib.Path` (any ``os.PathLike``).
FilePath: TypeAlias = str | os.PathLike[str]
