"""Fully connected layers."""

from __future__ import annotations

from ._checks import positive_int
from .backends import get_backend, uniform
from .module import Module

__all__ = ["Linear", "TiedLinear"]


class Linear(Module):
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

    def __init__(self, input: int, output: int, bias: bool = True, *, rng=None):
        super().__init__()
        self.in_features = positive_int("Linear", "input", input)
        self.out_features = positive_int("Linear", "output", output)
        k = 1.0 / input**0.5
        backend = get_backend()
        self._add_parameter("weight", uniform(-k, k, (input, output), rng=rng, backend=backend))
        if bias:
            self._add_parameter("bias", uniform(-k, k, (output,), rng=rng, backend=backend))

    def get_config(self) -> dict:
        return {"input": self.in_features, "output": self.out_features, "bias": "bias" in self._parameters}

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}" + ("" if "bias" in self._parameters else ", bias=False")

    def _input(self, X, method: str):
        X = self._check_array(X, method)
        if X.ndim != 2 or X.shape[1] != self.in_features:
            self._check_shape(X, (None, self.in_features), method)
        return X

    def forward(self, X):
        X = self._input(X, "forward")
        Y = X @ self._parameters["weight"]
        if "bias" in self._parameters:
            Y += self._parameters["bias"]
        return Y

    def _inputs(self, input, delta, method):
        input = self._input(input, method)
        return input, self._check_delta(delta, (input.shape[0], self.out_features), method)

    def backward_update_gradient(self, input, delta):
        input, delta = self._inputs(input, delta, "backward_update_gradient")
        self._accumulate("weight", input.T @ delta)
        if "bias" in self._parameters:
            self._accumulate("bias", self._backend.xp.sum(delta, axis=0))

    def backward_delta(self, input, delta):
        input, delta = self._inputs(input, delta, "backward_delta")
        return delta @ self._parameters["weight"].T

    def backward(self, input, delta, *, input_grad: bool = True):
        cls = type(self)
        if cls.backward_update_gradient is not Linear.backward_update_gradient or (
            cls.backward_delta is not Linear.backward_delta
        ):
            return super().backward(input, delta, input_grad=input_grad)  # a subclass redefined a rule
        # both rules with one validation of the arguments (this is the hot path of every training step)
        input, delta = self._inputs(input, delta, "backward")
        self._accumulate("weight", input.T @ delta)
        if "bias" in self._parameters:
            self._accumulate("bias", self._backend.xp.sum(delta, axis=0))
        return delta @ self._parameters["weight"].T if input_grad else None


class TiedLinear(Module):
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

    def __init__(self, linear: Linear, bias: bool = True, *, rng=None):
        super().__init__()
        if not isinstance(linear, Linear):
            raise TypeError(f"TiedLinear: expected a Linear to share weights with, got {type(linear).__name__}")
        self.linear = linear
        self._placeholder = False
        self.in_features, self.out_features = linear.out_features, linear.in_features
        self._backend = linear._backend
        if bias:
            k = 1.0 / self.in_features**0.5
            self._add_parameter("bias", uniform(-k, k, (self.out_features,), rng=rng, backend=linear._backend))

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, tied" + ("" if "bias" in self._parameters else ", bias=False")

    def get_config(self) -> dict:
        return {"input": self.in_features, "output": self.out_features, "bias": "bias" in self._parameters}

    @classmethod
    def from_config(cls, config: dict, children: list) -> TiedLinear:
        # a stand-in Linear keeps the shapes until backprop.load ties the real one (set_reference)
        with_placeholder = cls(Linear(config["output"], config["input"]), bias=config.get("bias", True))
        with_placeholder._placeholder = True
        return with_placeholder

    def get_references(self) -> dict:
        return {"linear": self.linear}

    def set_reference(self, name: str, module: Module) -> None:
        if name != "linear" or not isinstance(module, Linear):
            raise ValueError(f"{self._label()}: can only be tied to a Linear, got {name}={type(module).__name__}")
        if (module.out_features, module.in_features) != (self.in_features, self.out_features):
            raise ValueError(f"{self._label()}: cannot tie to {module._label()} (shapes differ)")
        self.linear = module
        self._placeholder = False

    def _sync_backend(self) -> None:
        # the shared weight may have moved with its owner (module.to)
        if self._backend is not self.linear._backend and not self._parameters:
            self._backend = self.linear._backend

    def _inputs(self, input, delta, method):
        self._sync_backend()
        input = self._check_array(input, method)
        if input.ndim != 2 or input.shape[1] != self.in_features:
            self._check_shape(input, (None, self.in_features), method)
        return input, self._check_delta(delta, (input.shape[0], self.out_features), method)

    def forward(self, X):
        self._sync_backend()
        X = self._check_array(X, "forward")
        if X.ndim != 2 or X.shape[1] != self.in_features:
            self._check_shape(X, (None, self.in_features), "forward")
        Y = X @ self.linear._parameters["weight"].T
        if "bias" in self._parameters:
            Y += self._parameters["bias"]
        return Y

    def backward_update_gradient(self, input, delta):
        input, delta = self._inputs(input, delta, "backward_update_gradient")
        self.linear._accumulate("weight", delta.T @ input)
        if "bias" in self._parameters:
            self._accumulate("bias", self._backend.xp.sum(delta, axis=0))

    def backward_delta(self, input, delta):
        input, delta = self._inputs(input, delta, "backward_delta")
        return delta @ self.linear._parameters["weight"]
