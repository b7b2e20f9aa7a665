"""Modules that only rearrange each sample: Flatten, Reshape, Transpose."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._checks import prod
from .backends import namespace_of
from .module import Module

if TYPE_CHECKING:
    from ._typing import Array

__all__ = ["Flatten", "Reshape", "Transpose"]


def _int_sequence(owner: str, name: str, value, *, scalar_ok: bool) -> tuple:
    """``value`` as a tuple of Python ints (each through ``operator.index``), or a TypeError.

    Integer-like values (NumPy integers) are accepted; floats, text and
    booleans are not.
    """
    if scalar_ok:
        try:
            return (_index(value),)
        except TypeError:
            pass
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError
        return tuple(_index(v) for v in value)
    except TypeError:
        expected = "an int or a sequence of ints" if scalar_ok else "a sequence of ints"
        raise TypeError(f"{owner}: {name} must be {expected}, got {value!r}") from None


def _index(value) -> int:
    if isinstance(value, bool):
        raise TypeError
    return operator.index(value)


class Flatten(Module):
    """Flatten each sample to a vector; backward restores the input's shape.

    Shape
    -----
    ``(N, d1, d2, ...)`` -> ``(N, d1 * d2 * ...)``; the assignment's
    ``(batch, length, chan_in)`` -> ``(batch, length * chan_in)``.
    """

    def forward(self, X: Array) -> Array:
        X = self._check_array(X, "forward")
        if X.ndim < 2:
            raise ValueError(
                self._error(
                    "forward", f"expected input of shape (N, d1, ...), got {tuple(X.shape)}"
                )
            )
        return namespace_of(X).reshape(X, (X.shape[0], prod(X.shape[1:])))

    def backward_delta(self, input: Array, delta: Array) -> Array:
        expected = (input.shape[0], prod(input.shape[1:]))
        delta = self._check_delta(delta, expected, "backward_delta", input=input)
        return namespace_of(delta).reshape(delta, tuple(input.shape))


class Reshape(Module):
    """Reshape each sample: ``(N, ...)`` -> ``(N, *shape)`` (sizes must agree).

    Parameters
    ----------
    shape : int or sequence of ints
        The shape of each sample, positive sizes (integer-like values such as
        NumPy integers are accepted).

    Shape
    -----
    ``(N, d1, ...)`` -> ``(N, *shape)`` with ``d1 * ... == prod(shape)``;
    ``Reshape((64, 1))`` turns ``(N, 64)`` into ``(N, 64, 1)``.
    """

    def __init__(self, shape: int | Sequence[int]) -> None:
        super().__init__()
        self.shape = _int_sequence("Reshape", "shape", shape, scalar_ok=True)
        if not self.shape or any(s < 1 for s in self.shape):
            raise ValueError(f"Reshape: shape must be positive ints, got {shape!r}")

    def get_config(self) -> dict:
        return {"shape": list(self.shape)}

    def extra_repr(self) -> str:
        return str(self.shape)

    def forward(self, X: Array) -> Array:
        X = self._check_array(X, "forward")
        if X.ndim < 1 or prod(X.shape[1:]) != prod(self.shape):
            raise ValueError(
                self._error(
                    "forward",
                    f"expected samples of {prod(self.shape)} values (shape (N, *{self.shape})), "
                    f"got input of shape {tuple(X.shape)}",
                )
            )
        return namespace_of(X).reshape(X, (X.shape[0], *self.shape))

    def backward_delta(self, input: Array, delta: Array) -> Array:
        delta = self._check_delta(
            delta, (input.shape[0], *self.shape), "backward_delta", input=input
        )
        return namespace_of(delta).reshape(delta, tuple(input.shape))


class Transpose(Module):
    """Permute the axes of each sample: ``axes`` indexes the sample's axes (the batch axis stays
    first).

    Parameters
    ----------
    axes : tuple of int
        A permutation of ``0 .. k - 1`` for samples with ``k`` axes.

    Shape
    -----
    ``(N, d_0, ..., d_{k-1})`` -> ``(N, d_axes[0], ..., d_axes[k-1])``;
    ``Transpose((1, 0))`` turns ``(N, H, W)`` into ``(N, W, H)``.
    """

    def __init__(self, axes: Sequence[int]) -> None:
        super().__init__()
        axes = _int_sequence("Transpose", "axes", axes, scalar_ok=False)
        if sorted(axes) != list(range(len(axes))):
            raise ValueError(
                f"Transpose: axes must be a permutation of 0..{len(axes) - 1}, got {axes!r}"
            )
        self.axes = axes
        self._inverse = tuple(axes.index(i) for i in range(len(axes)))

    def get_config(self) -> dict:
        return {"axes": list(self.axes)}

    def extra_repr(self) -> str:
        return str(self.axes)

    def _check_rank(self, X, method):
        if X.ndim != len(self.axes) + 1:
            raise ValueError(
                self._error(
                    method,
                    f"expected input with {len(self.axes)} axes per sample, got shape "
                    f"{tuple(X.shape)}",
                )
            )

    def forward(self, X: Array) -> Array:
        X = self._check_array(X, "forward")
        self._check_rank(X, "forward")
        return namespace_of(X).permute_dims(X, (0, *(a + 1 for a in self.axes)))

    def backward_delta(self, input: Array, delta: Array) -> Array:
        expected = (input.shape[0], *(input.shape[a + 1] for a in self.axes))
        delta = self._check_delta(delta, expected, "backward_delta", input=input)
        return namespace_of(delta).permute_dims(delta, (0, *(a + 1 for a in self._inverse)))
