"""Validation of constructor arguments, shared by the layers."""

from __future__ import annotations

import math
import numbers
import operator
import warnings
from collections.abc import Iterable

#: the most elements a parameter may have: 2**34 float32 values are 64 GiB
MAX_ELEMENTS = 2**34


def positive_int(owner: str, name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer (NumPy integers too) of at least ``minimum``,
    else a ValueError naming ``owner`` and ``name``."""
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if isinstance(value, bool) or number is None or number < minimum:
        kind = {1: "a positive int", 0: "a non-negative int"}.get(minimum, f"an int >= {minimum}")
        raise ValueError(f"{owner}: {name} must be {kind}, got {value!r}")
    return number


def real_number(
    owner: str,
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float if it is a real number (Python, NumPy scalars such as
    ``np.float32``, anything registered as :class:`numbers.Real`) within the bounds, else a
    ValueError naming ``owner`` and ``name``.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``. Booleans are refused.
    """
    number = None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an overflowing float() is refused below
            number = float(value)
    if (
        number is None
        or not math.isfinite(number)
        or (low is not None and (number < low or (low_open and number == low)))
        or (high is not None and (number > high or (high_open and number == high)))
    ):
        if low == 0 and high is None:
            what = "be a positive number" if low_open else "be a non-negative number"
        elif low is None and high is None:
            what = "be a finite number"
        else:
            lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
            hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
            what = f"lie in {lo}, {hi}"
        raise ValueError(f"{owner}: {name} must {what}, got {value!r} ({type(value).__name__})")
    return number


def flag(owner: str, name: str, value: object) -> bool:
    """``value`` if it is a bool, else a TypeError naming ``owner`` and ``name``."""
    if not isinstance(value, bool):
        raise TypeError(
            f"{owner}: {name} must be True or False, got {value!r} ({type(value).__name__})"
        )
    return value


def parameter_shape(owner: str, shape: tuple) -> tuple:
    """``shape`` if a parameter of that shape can exist, else a ValueError naming ``owner``."""
    if prod(shape) > MAX_ELEMENTS:
        raise ValueError(
            f"{owner}: a parameter of shape {shape} would hold {prod(shape):.3g} values, "
            f"more than {MAX_ELEMENTS:.3g}"
        )
    return shape


def int_tuple(owner: str, name: str, value: object, d: int, minimum: int = 1) -> tuple[int, ...]:
    """An int or a d-tuple of ints of at least ``minimum`` (positive by default), as a d-tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != d:
            raise ValueError(f"{owner}: {name} must be an int or {d} ints, got {value!r}")
        return tuple(positive_int(owner, name, v, minimum) for v in value)
    return (positive_int(owner, name, value, minimum),) * d


def prod(values: Iterable[int]) -> int:
    result = 1
    for v in values:
        result *= v
    return result


def kernel_state_shapes(owner: str, config: dict, d: int) -> dict:
    """The parameter shapes of a convolution-like layer's config: ``weight`` ``(*kernel, chan_in,
    chan_out)`` and ``bias`` ``(chan_out,)`` (unless ``bias`` is false)."""
    kernel = int_tuple(owner, "k_size", config["k_size"], d)
    c_in = positive_int(owner, "chan_in", config["chan_in"])
    c_out = positive_int(owner, "chan_out", config["chan_out"])
    shapes = {"weight": (*kernel, c_in, c_out)}
    if config.get("bias", True):
        shapes["bias"] = (c_out,)
    return shapes
