"""Max and average pooling over 1 or 2 spatial axes, channels last.

Both loop over the kernel offsets only: each offset is one strided slice of
the input holding, for every window at once, the value at that offset. The
max is an element-wise maximum of those slices; no argmax, take or put along
an axis (measured several times slower on NumPy).
"""

from __future__ import annotations

from ._windowed import _Windowed
from .backends import kind_of, namespace_of
from .backends._standard import offset_slices

__all__ = ["AvgPool1D", "AvgPool2D", "MaxPool1D", "MaxPool2D"]


class _PoolNd(_Windowed):
    def __init__(self, k_size, stride=None) -> None:
        super().__init__()
        self._set_window(k_size, k_size if stride is None else stride)
        self._cache = None

    def get_config(self) -> dict:
        return self._window_config()

    def extra_repr(self) -> str:
        return self._window_repr()

    def _input(self, X, method: str):
        return self._check_layout(X, method)

    def output_shape(self, input_shape) -> tuple:
        return (input_shape[0], *self._out_spatial(input_shape), input_shape[-1])

    def _slices(self, X) -> list:
        out = self._out_spatial(X.shape)
        return [index for _, index in offset_slices(self.kernel, self.stride, out)]

    def _overlapping(self) -> bool:
        return any(s < k for s, k in zip(self.stride, self.kernel))

    def _delta(self, input, delta, method):
        return self._check_delta(delta, self.output_shape(input.shape), method)


class _MaxPoolNd(_PoolNd):
    """Max pooling. The output of the last forward is kept (keyed by the input object) for the backward mask."""

    def forward(self, X):
        X = self._input(X, "forward")
        xp = namespace_of(X)
        slices = self._slices(X)
        if len(slices) == 1:
            Y = xp.asarray(X[slices[0]], copy=True)
        else:
            Y = xp.maximum(X[slices[0]], X[slices[1]])
            for index in slices[2:]:
                Y = xp.maximum(Y, X[index])
        self._cache = (X, Y)
        return Y

    def backward_delta(self, input, delta):
        input = self._input(input, "backward_delta")
        delta = self._delta(input, delta, "backward_delta")
        cache = self._cache
        Y = cache[1] if cache is not None and cache[0] is input else self.forward(input)
        return kind_of(input).ops.max_pool_backward(input, Y, delta, self.kernel, self.stride)


class _AvgPoolNd(_PoolNd):
    def forward(self, X):
        X = self._input(X, "forward")
        slices = self._slices(X)
        total = X[slices[0]]
        for index in slices[1:]:
            total = total + X[index]
        return total * (1.0 / len(slices))

    def backward_delta(self, input, delta):
        input = self._input(input, "backward_delta")
        delta = self._delta(input, delta, "backward_delta")
        xp = namespace_of(input)
        slices = self._slices(input)
        part = delta * (1.0 / len(slices))
        dX = xp.zeros_like(input)
        overlapping = self._overlapping()
        for index in slices:
            if overlapping:
                dX[index] += part
            else:
                dX[index] = part
        return dX


class MaxPool1D(_MaxPoolNd):
    """Max over windows of ``k_size`` positions, per channel.

    Parameters
    ----------
    k_size : int
    stride : int, optional
        Defaults to ``k_size`` (non-overlapping windows).

    Shape
    -----
    ``(N, L, C)`` -> ``(N, (L - k_size) // stride + 1, C)``.

    Backward sends each window's gradient to one element, the first maximum
    (PyTorch's rule on ties), summing where windows overlap.
    """

    _d = 1


class MaxPool2D(_MaxPoolNd):
    """Max over ``kh x kw`` windows, per channel: ``(N, H, W, C)`` -> ``(N, H_out, W_out, C)``.

    ``k_size`` and ``stride`` are ints or pairs; ``stride`` defaults to ``k_size``.
    Ties go to the first maximum in row-major order within the window.
    """

    _d = 2


class AvgPool1D(_AvgPoolNd):
    """Mean over windows of ``k_size`` positions, per channel.

    Shape: ``(N, L, C)`` -> ``(N, (L - k_size) // stride + 1, C)``; ``stride`` defaults to ``k_size``.
    """

    _d = 1


class AvgPool2D(_AvgPoolNd):
    """Mean over ``kh x kw`` windows, per channel: ``(N, H, W, C)`` -> ``(N, H_out, W_out, C)``."""

    _d = 2
