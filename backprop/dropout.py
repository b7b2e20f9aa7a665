"""Dropout: random zeroing in training mode, the identity in evaluation mode."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backends import backend_of, bernoulli, host_rng
from .module import Module

if TYPE_CHECKING:
    from ._typing import Array
    from .backends.random import RNG

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each input element with probability ``p`` in training, scaling the rest by 1 / (1 - p).

    In evaluation mode (``module.eval()``) it is the identity, so the expected
    activation is the same in both modes ("inverted" dropout).

    Parameters
    ----------
    p : float in [0, 1)
    rng : None, int or numpy Generator
        Where masks come from: the library's seeded host generator by
        default, so runs are reproducible on every backend.

    Shape
    -----
    Any -> same.

    Notes
    -----
    A mask is random and cannot be recomputed, so the
    masks of the last few training forwards are kept, keyed by the input
    object (a Dropout used several times in one network has one per use):
    backward applies the mask that forward drew for that input, and raises
    if there is none.
    """

    _KEEP = 4  # masks kept: as many uses of one Dropout per pass as a network is likely to make

    def __init__(self, p: float = 0.5, *, rng: RNG = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must lie in [0, 1), got {p!r}")
        self.p = float(p)
        self._rng = host_rng(rng) if rng is not None else None
        self._masks: list = []  # public calls: (input, mask or None), newest last
        self._calls: dict = {}  # calls inside a network, by place: (input, mask)

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return {}  # no parameters, no buffers

    torch_names = ("Dropout",)

    def get_config(self) -> dict:
        return {"p": self.p}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def export_onnx(self, graph, value):
        # the exported network is the evaluation-mode one, where dropout is the identity
        return type(value)(graph.node("Identity", [value.name]), value.shape, value.channels_first)

    def to_torch(self, converter):
        return converter.nn.Dropout(self.p)

    @classmethod
    def from_torch(cls, module, converter) -> Dropout:
        return cls(module.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def clear_cache(self) -> None:
        self._masks = []
        self._calls = {}

    def chain_forward(self, X):
        # one mask per place in the network: a Dropout used at several places keeps each
        X = self.check_array(X, "forward")
        if not self.training or self.p == 0:
            self._calls.pop(self._call_path, None)
            return X
        mask = self._draw(X)
        self._calls[self._call_path] = (X, mask)
        return X * mask

    def _draw(self, X):
        """A new mask for ``X``: kept entries scaled by ``1 / (1 - p)``."""
        keep = bernoulli(1 - self.p, tuple(X.shape), rng=self._rng, backend=backend_of(X))
        return keep * (1 / (1 - self.p))

    def chain_backward(self, input, delta, input_grad: bool = True, param_grad: bool = True):
        if not input_grad:
            return None
        call = self._calls.get(self._call_path)
        if call is not None and call[0] is input:
            input, delta = self.check_delta_like_input(input, delta, "backward")
            return delta * call[1]
        return self.backward_delta(input, delta)

    def draws_random_numbers(self) -> bool:
        return self.training and self.p > 0

    def forward(self, X: Array) -> Array:
        X = self.check_array(X, "forward")
        masks = [entry for entry in self._masks if entry[0] is not X]
        if not self.training or self.p == 0:
            self._masks = masks  # the identity: backward needs no mask
            return X
        mask = self._draw(X)
        self._masks = masks[-(self._KEEP - 1) :] + [(X, mask)]
        return X * mask

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input, delta = self.check_delta_like_input(input, delta, "backward_delta")
        for saved, mask in reversed(self._masks):
            if saved is input:
                return delta * mask
        if not self.training or self.p == 0:
            return delta
        raise ValueError(
            self._error(
                "backward_delta",
                "no dropout mask for this input: call forward on it first "
                "(the mask of a training forward is random and cannot be recomputed)",
            )
        )
