"""Validation of constructor arguments, shared by the layers."""

from __future__ import annotations


def positive_int(owner: str, name: str, value) -> int:
    """``value`` if it is a positive int, else a ValueError naming ``owner`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


def int_tuple(owner: str, name: str, value, d: int) -> tuple[int, ...]:
    """An int or a d-tuple of positive ints, as a d-tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != d:
            raise ValueError(f"{owner}: {name} must be an int or {d} ints, got {value!r}")
        return tuple(positive_int(owner, name, v) for v in value)
    return (positive_int(owner, name, value),) * d


def prod(values) -> int:
    result = 1
    for v in values:
        result *= v
    return result
