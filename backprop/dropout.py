"""Dropout: random zeroing in training mode, the identity in evaluation mode."""

from __future__ import annotations

from .backends import backend_like, bernoulli, host_rng
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each input element with probability ``p`` during training, scaling the rest by ``1 / (1 - p)``.

    In evaluation mode (``module.eval()``) it is the identity, so the expected
    activation is the same in both modes ("inverted" dropout).

    Parameters
    ----------
    p : float in [0, 1)
    rng : None, int or numpy Generator
        Where masks come from: the library's seeded host generator by
        default, so runs are reproducible on every backend.

    Shape: any -> same. The mask of the last training forward is kept
    (keyed by the input object): backward applies the same mask.
    """

    def __init__(self, p: float = 0.5, *, rng=None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must lie in [0, 1), got {p!r}")
        self.p = float(p)
        self._rng = host_rng(rng) if rng is not None else None
        self._cache = None

    def get_config(self) -> dict:
        return {"p": self.p}

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, X):
        X = self._check_array(X, "forward")
        if not self.training or self.p == 0:
            self._cache = (X, None)
            return X
        keep = bernoulli(1 - self.p, tuple(X.shape), rng=self._rng, backend=backend_like(X))
        mask = keep * (1 / (1 - self.p))
        self._cache = (X, mask)
        return X * mask

    def backward_delta(self, input, delta):
        input, delta = self._check_delta_like_input(input, delta, "backward_delta")
        cache = self._cache
        if cache is None or cache[0] is not input:
            if not self.training or self.p == 0:
                return delta
            raise ValueError(
                self._error(
                    "backward_delta",
                    "no dropout mask for this input: call forward on it first "
                    "(the mask of a training forward is random and cannot be recomputed)",
                )
            )
        return delta if cache[1] is None else delta * cache[1]
