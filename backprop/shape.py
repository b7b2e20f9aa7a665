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

__all__ = ["Flatten", "Identity", "Reshape", "Select", "Transpose"]


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

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return {}  # no parameters, no buffers

    def forward(self, X: Array) -> Array:
        X = self.check_array(X, "forward")
        if X.ndim < 2:
            raise ValueError(
                self._error(
                    "forward", f"expected input of shape (N, d1, ...), got {tuple(X.shape)}"
                )
            )
        return namespace_of(X).reshape(X, (X.shape[0], prod(X.shape[1:])))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[0], prod(input_shape[1:]))

    def export_onnx(self, graph, value):
        value = graph.channels_last(value)
        if not value.shape:
            graph.fail(self, "samples with at least one axis", value.shape)
        return type(value)(graph.node("Flatten", [value.name], axis=1), (prod(value.shape),))

    torch_names = ("Flatten",)

    def to_torch(self, converter):
        converter.flattened()
        return converter.nn.Flatten()

    @classmethod
    def from_torch(cls, module, converter) -> Flatten:
        if (module.start_dim, module.end_dim) != (1, -1):
            raise ValueError(
                f"from_torch: Flatten(start_dim={module.start_dim}, end_dim={module.end_dim}) is "
                "not supported (only the default, which keeps the batch axis)"
            )
        converter.flattened()
        return cls()

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input = self.check_array(input, "backward_delta")
        expected = (input.shape[0], prod(input.shape[1:]))
        delta = self.check_delta(delta, expected, "backward_delta", input=input)
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

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return {}  # no parameters, no buffers

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
        X = self.check_array(X, "forward")
        if X.ndim < 1 or prod(X.shape[1:]) != prod(self.shape):
            raise ValueError(
                self._error(
                    "forward",
                    f"expected samples of {prod(self.shape)} values (shape (N, *{self.shape})), "
                    f"got input of shape {tuple(X.shape)}",
                )
            )
        return namespace_of(X).reshape(X, (X.shape[0], *self.shape))

    def input_shape(self) -> tuple[int, ...]:
        return (prod(self.shape),)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if prod(input_shape[1:]) != prod(self.shape):
            raise ValueError(
                self._error(
                    "forward",
                    f"expected samples of {prod(self.shape)} values, got {input_shape[1:]}",
                )
            )
        return (input_shape[0], *self.shape)

    def export_onnx(self, graph, value):
        value = graph.channels_last(value)
        if prod(value.shape) != prod(self.shape):
            graph.fail(self, f"samples of {prod(self.shape)} values", value.shape)
        # 0 copies the batch size from the input: the batch axis stays dynamic
        shape = graph.int64s((0, *self.shape))
        return type(value)(graph.node("Reshape", [value.name, shape]), tuple(self.shape))

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input = self.check_array(input, "backward_delta")
        delta = self.check_delta(
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

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return {}  # no parameters, no buffers

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
        X = self.check_array(X, "forward")
        self._check_rank(X, "forward")
        return namespace_of(X).permute_dims(X, (0, *(a + 1 for a in self.axes)))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != len(self.axes) + 1:
            raise ValueError(
                self._error(
                    "forward", f"expected samples with {len(self.axes)} axes, got {input_shape[1:]}"
                )
            )
        return (input_shape[0], *(input_shape[a + 1] for a in self.axes))

    def export_onnx(self, graph, value):
        value = graph.channels_last(value)
        if len(value.shape) != len(self.axes):
            graph.fail(self, f"samples with {len(self.axes)} axes", value.shape)
        shape = tuple(value.shape[a] for a in self.axes)
        perm = [0, *(a + 1 for a in self.axes)]
        return type(value)(graph.node("Transpose", [value.name], perm=perm), shape)

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input = self.check_array(input, "backward_delta")
        self._check_rank(input, "backward_delta")
        expected = (input.shape[0], *(input.shape[a + 1] for a in self.axes))
        delta = self.check_delta(delta, expected, "backward_delta", input=input)
        return namespace_of(delta).permute_dims(delta, (0, *(a + 1 for a in self._inverse)))


class Identity(Module):
    """The identity: ``Y = X``, ``dL/dX = delta`` (PyTorch's ``nn.Identity``, Torch7's
    ``nn.Identity``). A placeholder, or the skip branch of a :class:`~backprop.Sum`.

    Shape
    -----
    any -> same.
    """

    torch_names = ("Identity",)

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return {}  # no parameters, no buffers

    def forward(self, X: Array) -> Array:
        return self.check_array(X, "forward")

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input, delta = self.check_delta_like_input(input, delta, "backward_delta")
        return delta

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def export_onnx(self, graph, value):
        return type(value)(graph.node("Identity", [value.name]), value.shape, value.channels_first)

    def to_torch(self, converter):
        return converter.nn.Identity()

    @classmethod
    def from_torch(cls, module, converter) -> Identity:
        return cls()


class Select(Module):
    """Take one index along one axis of each sample, dropping that axis (Torch7's ``nn.Select``):
    ``Select(1, -1)`` keeps the last time step of ``(N, L, C)``.

    Parameters
    ----------
    axis : int
        An axis of the input, batch included (not 0, the batch); negative
        counts from the end.
    index : int
        The position along ``axis``; negative counts from the end.

    Shape
    -----
    ``(N, ..., d_axis, ...)`` -> ``(N, ...)`` without ``axis``. Backward puts
    delta back at ``index`` and zeros elsewhere.
    """

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return {}  # no parameters, no buffers

    def __init__(self, axis: int, index: int) -> None:
        super().__init__()
        for name, value in (("axis", axis), ("index", index)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Select: {name} must be an int, got {value!r}")
        if axis == 0:
            raise ValueError("Select: axis 0 is the batch; choose a sample axis")
        self.axis, self.index = axis, index

    def get_config(self) -> dict:
        return {"axis": self.axis, "index": self.index}

    def extra_repr(self) -> str:
        return f"axis={self.axis}, index={self.index}"

    def _where(self, shape: tuple, method: str) -> tuple[int, int]:
        rank = len(shape)
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(
                self._error(method, f"axis {self.axis} is not a sample axis of input {shape}")
            )
        axis = self.axis % rank
        size = shape[axis]
        if not -size <= self.index < size:
            raise ValueError(
                self._error(
                    method,
                    f"index {self.index} is out of range for axis {self.axis} of size {size}",
                )
            )
        return axis, self.index % size

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        axis, _ = self._where(tuple(input_shape), "forward")
        return tuple(s for i, s in enumerate(input_shape) if i != axis)

    def forward(self, X: Array) -> Array:
        X = self.check_array(X, "forward")
        axis, index = self._where(tuple(X.shape), "forward")
        return X[(slice(None),) * axis + (index, ...)]

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input = self.check_array(input, "backward_delta")
        axis, index = self._where(tuple(input.shape), "backward_delta")
        delta = self.check_delta(
            delta, self.output_shape(tuple(input.shape)), "backward_delta", input=input
        )
        xp = namespace_of(delta)
        parts = []
        before, after = index, input.shape[axis] - index - 1
        zero_shape = list(input.shape)
        if before:
            zero_shape[axis] = before
            parts.append(xp.zeros(tuple(zero_shape), dtype=delta.dtype, device=delta.device))
        parts.append(xp.expand_dims(delta, axis=axis))
        if after:
            zero_shape[axis] = after
            parts.append(xp.zeros(tuple(zero_shape), dtype=delta.dtype, device=delta.device))
        return xp.concat(parts, axis=axis) if len(parts) > 1 else parts[0]

    def export_onnx(self, graph, value):
        value = graph.channels_last(value)
        axis, index = self._where((None, *value.shape), "export_onnx")
        out = graph.node("Gather", [value.name, graph.int64s((index,))], axis=axis)
        squeezed = graph.node("Squeeze", [out, graph.int64s((axis,))])
        return type(value)(squeezed, self.output_shape((None, *value.shape))[1:])
