"""Fully connected layers."""

from __future__ import annotations

from ._checks import positive_int
from .backends import get_backend, uniform
from .module import Module

__all__ = ["Linear"]


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
