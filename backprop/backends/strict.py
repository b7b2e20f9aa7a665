"""array-api-strict: the standard and nothing else, with its three devices.

Every primitive is the base class's standard-only version: running the suite
here shows the library uses nothing outside the standard, and ``device1``
catches data moved between devices by mistake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import array_api_strict
import numpy as np

from .base import Backend

if TYPE_CHECKING:
    from .._typing import Array


class StrictBackend(Backend):
    """array-api-strict arrays (``device`` ``CPU_DEVICE``, ``device1``, ``device2``)."""

    name = "array_api_strict"
    xp = array_api_strict
    array_type = type(array_api_strict.asarray(0.0))

    @classmethod
    def resolve_device(cls, spec: array_api_strict.Device | str | None) -> array_api_strict.Device:
        if spec is None:
            return array_api_strict.Device("CPU_DEVICE")
        if isinstance(spec, array_api_strict.Device):
            return spec
        try:
            return array_api_strict.Device(str(spec))
        except ValueError:
            names = ", ".join(repr(str(d)) for d in cls.devices())
            raise ValueError(
                f"backend 'array_api_strict': unknown device {spec!r}; valid devices are: {names}"
            ) from None

    @classmethod
    def to_host(cls, x: Array) -> np.ndarray:
        return np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))
