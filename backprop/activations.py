"""Element-wise and row-wise transfer functions (modules without parameters).

Activations whose derivative is cheapest from their output (tanh, sigmoid,
softmax) recompute it from the input in the public ``backward_delta``. Inside
a container (the internal ``chain_forward``/``chain_backward`` pair, whose input is the
library's own array) they keep the output of the last forward and reuse it
when backward comes for that same input: the container holds both arrays
anyway, so this costs no memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backends import backend_of, namespace_of
from .module import Module

if TYPE_CHECKING:
    from ._typing import Array

__all__ = ["LogSoftmax", "ReLU", "Sigmoid", "Softmax", "TanH"]


class _Activation(Module):
    """Shared plumbing: check the input; keep ``(input, output)`` on the internal path."""

    def __init__(self, *args, **kwargs) -> None:
        if args or kwargs:
            given = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
            raise TypeError(f"{type(self).__name__} takes no arguments, got ({given})")
        super().__init__()
        self._saved = None

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return {}  # no parameters, no buffers

    #: the ONNX operator computing this activation
    _onnx_op = ""

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def export_onnx(self, graph, value):
        if self._min_ndim:  # along the last axis, the library's layout
            value = graph.channels_last(value)
            if not value.shape:
                graph.fail(self, "samples with at least one axis", value.shape)
            return type(value)(graph.node(self._onnx_op, [value.name], axis=-1), value.shape)
        # element-wise: either layout
        out = graph.node(self._onnx_op, [value.name])
        return type(value)(out, value.shape, value.channels_first)

    def to_torch(self, converter):
        layer = getattr(converter.nn, self.torch_names[0])
        return layer(dim=converter.channel_dim()) if self._min_ndim else layer()

    @classmethod
    def from_torch(cls, module, converter) -> _Activation:
        # the library's runs over the last axis, the channels
        if cls._min_ndim and not converter.is_channel_dim(module.dim):
            raise ValueError(
                f"from_torch: {type(module).__name__}(dim={module.dim}) does not run over the "
                "channels, as the library's does (dim=1 after convolutions, -1 on (N, C) or "
                "after recurrent layers; pass input_shape when the rank is not known)"
            )
        return cls()

    def _compute(self, xp, X):
        raise NotImplementedError

    def _rule(self, xp, Y, delta):
        """dL/dinput from the output ``Y`` and ``delta``."""
        raise NotImplementedError

    #: the fewest axes an input may have (the softmaxes work along the last one)
    _min_ndim = 0

    def _checked(self, X, method: str):
        X = self.check_array(X, method)
        if X.ndim < self._min_ndim:
            raise ValueError(
                self._error(method, f"expected input of shape (N, C), got {tuple(X.shape)}")
            )
        return X

    def forward(self, X: Array) -> Array:
        X = self._checked(X, "forward")
        return self._compute(namespace_of(X), X)

    def chain_forward(self, X):
        Y = self.forward(X)
        self._saved = (X, Y)
        return Y

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input, delta = self.check_delta_like_input(
            self._checked(input, "backward_delta"), delta, "backward_delta"
        )
        xp = namespace_of(input)
        return self._rule(xp, self._compute(xp, input), delta)

    def chain_backward(self, input, delta, input_grad: bool, param_grad: bool = True):
        if not input_grad:
            return None
        if type(self).backward_delta is not _Activation.backward_delta:
            return self.backward_delta(input, delta)  # a subclass with its own rule
        input, delta = self.check_delta_like_input(input, delta, "backward")
        xp = namespace_of(input)
        saved = self._saved
        Y = saved[1] if saved is not None and saved[0] is input else self._compute(xp, input)
        return self._rule(xp, Y, delta)

    def clear_cache(self) -> None:
        self._saved = None


class TanH(_Activation):
    """Hyperbolic tangent, element-wise. Shape: any -> same.

    Backward: ``delta * (1 - tanh(x)^2)``.
    """

    _onnx_op = "Tanh"
    torch_names = ("Tanh",)

    def _compute(self, xp, X):
        return xp.tanh(X)

    def _rule(self, xp, Y, delta):
        return delta * (1 - Y * Y)


class Sigmoid(_Activation):
    """Logistic function ``1 / (1 + exp(-x))``, element-wise. Shape: any -> same.

    Computed from ``e = exp(-|x|)``, which never overflows: no warning at
    +-1000. Backward: ``delta * s * (1 - s)``.
    """

    _onnx_op = "Sigmoid"
    torch_names = ("Sigmoid",)

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

    def _rule(self, xp, S, delta):
        return delta * S * (1 - S)


class ReLU(_Activation):
    """Rectified linear unit ``max(0, x)``, element-wise. Shape: any -> same.

    The derivative at 0 is taken as 0 (PyTorch's convention).
    """

    _onnx_op = "Relu"
    torch_names = ("ReLU",)

    def _compute(self, xp, X):
        return xp.maximum(X, 0)

    def chain_forward(self, X):
        return self.forward(X)  # the rule needs the input only

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input, delta = self.check_delta_like_input(input, delta, "backward_delta")
        # a multiply by the 0/1 mask, not where() (see Sigmoid); a backend may make the mask
        # its own way (Backend.relu_backward)
        return backend_of(input).relu_backward(input, delta)

    def chain_backward(self, input, delta, input_grad: bool, param_grad: bool = True):
        return self.backward_delta(input, delta) if input_grad else None


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

    _onnx_op = "Softmax"
    torch_names = ("Softmax",)

    _min_ndim = 1

    def _compute(self, xp, X):
        return _softmax(xp, X)

    def _rule(self, xp, S, delta):
        return S * (delta - xp.sum(delta * S, axis=-1, keepdims=True))


class LogSoftmax(_Activation):
    """Logarithm of the softmax over the last axis. Shape: ``(N, C)`` -> ``(N, C)``.

    Computed as ``z - max - log(sum(exp(z - max)))``, stable for logits of
    any magnitude. Backward: ``delta - softmax(z) * sum(delta)`` per row.
    """

    _onnx_op = "LogSoftmax"
    torch_names = ("LogSoftmax",)

    _min_ndim = 1

    def _compute(self, xp, X):
        return _log_softmax(xp, X)

    def _rule(self, xp, Y, delta):
        return delta - xp.exp(Y) * xp.sum(delta, axis=-1, keepdims=True)
