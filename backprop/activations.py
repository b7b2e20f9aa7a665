"""Element-wise and row-wise transfer functions (modules without parameters).

Activations whose derivative is cheapest from their output (tanh, sigmoid,
softmax) keep the last ``(input, output)`` pair: when ``backward_delta`` is
given that same input object, the output is reused instead of recomputing a
transcendental function; any other input is recomputed from scratch. In a
:class:`~backprop.Sequentiel` both arrays are held by the network anyway, so
the cache costs no memory.
"""

from __future__ import annotations

from .backends import namespace_of
from .module import Module

__all__ = ["LogSoftmax", "ReLU", "Sigmoid", "Softmax", "TanH"]


class _Activation(Module):
    """Shared plumbing: check the input, cache ``(input, output)``."""

    def __init__(self) -> None:
        super().__init__()
        self._cache = None

    def _compute(self, xp, X):
        raise NotImplementedError

    def forward(self, X):
        X = self._check_array(X, "forward")
        Y = self._compute(namespace_of(X), X)
        self._cache = (X, Y)
        return Y

    def _output_for(self, input):
        cache = self._cache
        if cache is not None and cache[0] is input:
            return cache[1]
        return self._compute(namespace_of(input), input)

    def _backward_inputs(self, input, delta):
        return self._check_delta_like_input(input, delta, "backward_delta")


class TanH(_Activation):
    """Hyperbolic tangent, element-wise. Shape: any -> same.

    Backward: ``delta * (1 - tanh(x)^2)``.
    """

    def _compute(self, xp, X):
        return xp.tanh(X)

    def backward_delta(self, input, delta):
        input, delta = self._backward_inputs(input, delta)
        Y = self._output_for(input)
        return delta * (1 - Y * Y)


class Sigmoid(_Activation):
    """Logistic function ``1 / (1 + exp(-x))``, element-wise. Shape: any -> same.

    Computed from ``e = exp(-|x|)``, which never overflows: no warning at
    +-1000. Backward: ``delta * s * (1 - s)``.
    """

    def _compute(self, xp, X):
        # s = 1 / (1 + e) for x >= 0 and e / (1 + e) below, with e = exp(-|x|) <= 1:
        # the numerator is max(e, [x >= 0]). Arithmetic instead of where():
        # a select on an unpredictable mask is several times slower on NumPy.
        e = xp.abs(X)
        e *= -1.0
        e = xp.exp(e)  # exp(-|x|), never overflows
        s = xp.maximum(e, xp.astype(X >= 0, X.dtype))
        e += 1.0
        s /= e
        return s

    def backward_delta(self, input, delta):
        input, delta = self._backward_inputs(input, delta)
        S = self._output_for(input)
        return delta * S * (1 - S)


class ReLU(_Activation):
    """Rectified linear unit ``max(0, x)``, element-wise. Shape: any -> same.

    The derivative at 0 is taken as 0 (PyTorch's convention).
    """

    def forward(self, X):
        X = self._check_array(X, "forward")
        return namespace_of(X).maximum(X, 0)

    def backward_delta(self, input, delta):
        input, delta = self._backward_inputs(input, delta)
        xp = namespace_of(input)
        # a multiply by the 0/1 mask, not where(): see Sigmoid
        return delta * xp.astype(input > 0, delta.dtype)


def _log_softmax(xp, Z):
    # subtract the row max before exp: exp(1e4) overflows
    shifted = Z - xp.max(Z, axis=-1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))


def _softmax(xp, Z):
    e = xp.exp(Z - xp.max(Z, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


class Softmax(_Activation):
    """Softmax over the last axis: ``exp(z_i) / sum_k exp(z_k)``. Shape: ``(N, C)`` -> ``(N, C)``.

    Stable for logits of any magnitude (the row max is subtracted first).
    Backward: ``s * (delta - sum(delta * s))`` per row.
    """

    def _compute(self, xp, X):
        return _softmax(xp, X)

    def backward_delta(self, input, delta):
        input, delta = self._backward_inputs(input, delta)
        xp = namespace_of(input)
        S = self._output_for(input)
        return S * (delta - xp.sum(delta * S, axis=-1, keepdims=True))


class LogSoftmax(_Activation):
    """Logarithm of the softmax over the last axis. Shape: ``(N, C)`` -> ``(N, C)``.

    Computed as ``z - max - log(sum(exp(z - max)))``, stable for logits of
    any magnitude. Backward: ``delta - softmax(z) * sum(delta)`` per row.
    """

    def _compute(self, xp, X):
        return _log_softmax(xp, X)

    def backward_delta(self, input, delta):
        input, delta = self._backward_inputs(input, delta)
        xp = namespace_of(input)
        S = xp.exp(self._output_for(input))
        return delta - S * xp.sum(delta, axis=-1, keepdims=True)
