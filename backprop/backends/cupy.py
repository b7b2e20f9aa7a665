"""CuPy arrays on a CUDA device, with strided-view windows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import array_api_compat.cupy as _xp
import cupy

from . import _strided
from .base import Backend, BackendUnavailableError

if TYPE_CHECKING:
    import numpy as np


class CuPyBackend(_strided.Strided, Backend):
    """CuPy arrays (``device`` ``cuda:0``, ``0``, ...)."""

    name = "cupy"
    xp = _xp
    lib = cupy
    array_type = cupy.ndarray

    @classmethod
    def _count(cls) -> int:
        try:
            return cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError without a driver or a GPU
            raise BackendUnavailableError(
                "backend 'cupy' is installed but no CUDA device is usable here "
                f"({type(exc).__name__}: {exc})"
            ) from None

    @classmethod
    def devices(cls) -> list:
        return [cupy.cuda.Device(i) for i in range(cls._count())]

    @classmethod
    def resolve_device(cls, spec: cupy.cuda.Device | str | int | None) -> cupy.cuda.Device:
        count = cls._count()
        if count == 0:
            raise BackendUnavailableError(
                "backend 'cupy' is installed but no CUDA device is visible"
            )
        if spec is None:
            index = 0
        elif isinstance(spec, int) and not isinstance(spec, bool):
            index = spec
        elif isinstance(spec, cupy.cuda.Device):
            index = spec.id
        elif isinstance(spec, str) and (
            spec.isdigit() or spec.partition(":")[0] in ("cuda", "gpu")
        ):
            tail = spec if spec.isdigit() else spec.partition(":")[2] or "0"
            if not tail.isdigit():
                raise ValueError(f"backend 'cupy': cannot read device {spec!r}; use e.g. 'cuda:0'")
            index = int(tail)
        else:
            raise ValueError(f"backend 'cupy': cannot read device {spec!r}; use e.g. 'cuda:0'")
        if not 0 <= index < count:
            raise BackendUnavailableError(
                f"backend 'cupy': device cuda:{index} does not exist ({count} visible)"
            )
        return cupy.cuda.Device(index)

    @classmethod
    def to_host(cls, x: cupy.ndarray) -> np.ndarray:
        return cupy.asnumpy(x)

    def from_host(self, a: np.ndarray) -> cupy.ndarray:
        with self.device:
            return cupy.asarray(a)

    def to_device(self, x: cupy.ndarray) -> cupy.ndarray:
        with self.device:
            return cupy.asarray(x)

    def synchronize(self, *arrays: cupy.ndarray) -> None:
        with self.device:
            cupy.cuda.get_current_stream().synchronize()
