"""Fully connected layers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._checks import flag, parameter_shape, positive_int
from .backends import get_backend, uniform
from .module import Module

if TYPE_CHECKING:
    from ._typing import Array
    from .backends.random import RNG

__all__ = ["Linear", "TiedLinear"]


class _Affine(Module):
    """``Y = X W + b`` with ``W`` ``(in_features, out_features)``: the maths and checks shared by
    :class:`Linear` (which owns ``W``) and :class:`TiedLinear` (which borrows a Linear's
    ``W^T``)."""

    in_features: int
    out_features: int

    def _weight(self):
        """The ``(in_features, out_features)`` matrix of the map."""
        raise NotImplementedError

    def _accumulate_weight(self, input, delta) -> None:
        """Add ``input^T delta``, the gradient of the map's matrix, to whoever owns the weight."""
        raise NotImplementedError

    def _input(self, X, method: str):
        X = self.check_array(X, method)
        if X.ndim != 2 or X.shape[1] != self.in_features:
            self.check_shape(X, (None, self.in_features), method)
        return X

    def _inputs(self, input, delta, method):
        input = self._input(input, method)
        return input, self.check_delta(delta, (input.shape[0], self.out_features), method)

    def input_shape(self) -> tuple[int, ...]:
        return (self.in_features,)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[0], self.out_features)

    def export_onnx(self, graph, value):
        value = graph.channels_last(value)
        if value.shape != (self.in_features,):
            graph.fail(self, f"samples of shape ({self.in_features},)", value.shape)
        tied = isinstance(self, TiedLinear)
        inputs = [value.name, graph.param(self.linear if tied else self, "weight")]
        if "bias" in self._parameters:
            inputs.append(graph.param(self, "bias"))
        # TiedLinear multiplies by the transpose of the shared weight: one initializer serves both
        return type(value)(graph.node("Gemm", inputs, transB=int(tied)), (self.out_features,))

    def forward(self, X: Array) -> Array:
        X = self._input(X, "forward")
        Y = X @ self._weight()
        if "bias" in self._parameters:
            Y += self._parameters["bias"]
        return Y

    def _update_gradient(self, input, delta) -> None:
        self._accumulate_weight(input, delta)
        if "bias" in self._parameters:
            self.accumulate_gradient("bias", self._backend.xp.sum(delta, axis=0))

    def backward_update_gradient(self, input: Array, delta: Array) -> None:
        self._update_gradient(*self._inputs(input, delta, "backward_update_gradient"))

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input, delta = self._inputs(input, delta, "backward_delta")
        return delta @ self._weight().T

    def backward(self, input: Array, delta: Array, *, input_grad: bool = True) -> Array | None:
        cls = type(self)
        if cls.backward_update_gradient is not _Affine.backward_update_gradient or (
            cls.backward_delta is not _Affine.backward_delta
        ):
            # a subclass redefined a rule
            return super().backward(input, delta, input_grad=input_grad)
        # both rules with one validation of the arguments (this is the hot path of every training
        # step)
        input, delta = self._inputs(input, delta, "backward")
        self._update_gradient(input, delta)
        return delta @ self._weight().T if input_grad else None


class Linear(_Affine):
    """Affine map ``Y = X W + b``.

    Parameters
    ----------
    input, output : int
        Number of input and output features.
    bias : bool, default True
    rng : None, int or numpy Generator, optional
        Where the initial weights come from (the library's seeded host
        generator by default), so the same seed gives the same weights on
        every backend.

    Shape
    -----
    X ``(N, input)`` -> Y ``(N, output)``

    Parameters (``_parameters``)
    ----------------------------
    weight ``(input, output)`` and bias ``(output,)``, both drawn from
    U(-k, k) with k = 1/sqrt(input).
    """

    def __init__(self, input: int, output: int, bias: bool = True, *, rng: RNG = None) -> None:
        super().__init__()
        input = self.in_features = positive_int("Linear", "input", input)
        output = self.out_features = positive_int("Linear", "output", output)
        parameter_shape("Linear", (input, output))
        k = 1.0 / input**0.5
        backend = get_backend()
        self.add_parameter("weight", uniform(-k, k, (input, output), rng=rng, backend=backend))
        if flag("Linear", "bias", bias):
            self.add_parameter("bias", uniform(-k, k, (output,), rng=rng, backend=backend))

    def get_config(self) -> dict:
        return {
            "input": self.in_features,
            "output": self.out_features,
            "bias": "bias" in self._parameters,
        }

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        n_in = positive_int("Linear", "input", config["input"])
        n_out = positive_int("Linear", "output", config["output"])
        shapes = {"weight": (n_in, n_out)}
        if config.get("bias", True):
            shapes["bias"] = (n_out,)
        return shapes

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}" + (
            "" if "bias" in self._parameters else ", bias=False"
        )

    def _weight(self):
        return self._parameters["weight"]

    torch_names = ("Linear",)

    def to_torch(self, converter):
        layer = converter.nn.Linear(
            self.in_features, self.out_features, bias="bias" in self._parameters
        )
        # torch stores (out, in); the rows of ours follow the library's feature order, which the
        # converter maps to torch's after a Flatten of channels-last values
        weight = converter.linear_weight_to_torch(self._parameters["weight"])
        converter.set(layer, "weight", weight)
        if "bias" in self._parameters:
            converter.set(layer, "bias", converter.tensor(self._parameters["bias"]))
        return layer

    @classmethod
    def from_torch(cls, module, converter) -> Linear:
        layer = cls(module.in_features, module.out_features, bias=module.bias is not None)
        state = {"weight": converter.linear_weight_from_torch(module.weight)}
        if module.bias is not None:
            state["bias"] = converter.array(module.bias)
        layer.load_state_dict(state)
        return layer

    def _accumulate_weight(self, input, delta) -> None:
        self.accumulate_gradient("weight", input.T @ delta)


class TiedLinear(_Affine):
    """Decoder layer sharing the transpose of a :class:`Linear`'s weight: ``Y = X W^T + b``.

    Parameters
    ----------
    linear : Linear
        The layer whose weight ``W`` ``(in, out)`` is shared; it must be part
        of the same network, which owns and updates ``W``.
    bias : bool, default True
        This layer's own bias ``(in,)``, drawn like a Linear's.

    Shape
    -----
    X ``(N, linear.out_features)`` -> Y ``(N, linear.in_features)``.

    The gradient of ``W`` is accumulated into ``linear._gradient["weight"]``,
    so the shared weight receives the sum of both layers' gradients and one
    ``update_parameters`` per step stays correct. ``_parameters`` holds the
    bias only: the weight is counted, saved and updated once, by its owner.
    """

    def __init__(self, linear: Linear, bias: bool = True, *, rng: RNG = None) -> None:
        super().__init__()
        if not isinstance(linear, Linear):
            raise TypeError(
                f"TiedLinear: expected a Linear to share weights with, got {type(linear).__name__}"
            )
        self.linear = linear
        self.in_features, self.out_features = linear.out_features, linear.in_features
        if flag("TiedLinear", "bias", bias):
            k = 1.0 / self.in_features**0.5
            self.add_parameter(
                "bias", uniform(-k, k, (self.out_features,), rng=rng, backend=linear._backend)
            )

    @property
    def _backend(self):
        # always the shared weight's, also after its owner moved (module.to)
        return self.linear._backend

    def _move_backend(self, target) -> None:
        pass  # derived from the tied Linear, which moves itself

    def has_parameters(self) -> bool:
        return True  # the tied weight's gradient, even without a bias

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, tied" + (
            "" if "bias" in self._parameters else ", bias=False"
        )

    def get_config(self) -> dict:
        return {
            "input": self.in_features,
            "output": self.out_features,
            "bias": "bias" in self._parameters,
        }

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        # the weight belongs to the tied Linear
        n_out = positive_int("TiedLinear", "output", config["output"])
        return {"bias": (n_out,)} if config.get("bias", True) else {}

    @classmethod
    def check_saved_references(cls, path: str, config: dict, targets: dict) -> None:
        owner, linear, target = targets.get("linear", (None, None, None))
        if owner is None or not issubclass(owner, Linear):
            raise ValueError(
                f"TiedLinear {path!r} must be tied to a Linear of the network, got {target!r}"
            )
        wanted = (config.get("output"), config.get("input"))
        if (linear.get("input"), linear.get("output")) != wanted:
            raise ValueError(
                f"TiedLinear {path!r} ({config.get('input')} -> {config.get('output')}) cannot "
                f"share the weight of Linear {target!r} ({linear.get('input')} -> "
                f"{linear.get('output')})"
            )

    @classmethod
    def from_config(cls, config: dict, children: list) -> TiedLinear:
        # a stand-in Linear keeps the shapes until backprop.load ties the real one (set_reference)
        return cls(Linear(config["output"], config["input"]), bias=config.get("bias", True))

    def get_references(self) -> dict:
        return {"linear": self.linear}

    def set_reference(self, name: str, module: Module) -> None:
        if name != "linear" or not isinstance(module, Linear):
            raise ValueError(
                f"{self._label()}: can only be tied to a Linear, got {name}={type(module).__name__}"
            )
        if (module.out_features, module.in_features) != (self.in_features, self.out_features):
            raise ValueError(f"{self._label()}: cannot tie to {module._label()} (shapes differ)")
        self.linear = module

    def _weight(self):
        return self.linear._parameters["weight"].T

    def _accumulate_weight(self, input, delta) -> None:
        # the owner's weight is the transpose of this map's matrix: (X^T delta)^T = delta^T X
        self.linear.accumulate_gradient("weight", delta.T @ input)
