"""Max and average pooling over 1 or 2 spatial axes, channels last.

Both loop over the kernel offsets only: each offset is one strided slice of
the input holding, for every window at once, the value at that offset. The
max is an element-wise maximum of those slices; no argmax, take or put along
an axis (measured several times slower on NumPy).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ._windowed import _Windowed
from .backends import backend_of

if TYPE_CHECKING:
    from ._typing import Array

__all__ = ["AvgPool1D", "AvgPool2D", "MaxPool1D", "MaxPool2D"]


class _PoolNd(_Windowed):
    def __init__(
        self,
        k_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
    ) -> None:
        super().__init__()
        self._set_window(k_size, k_size if stride is None else stride)
        self._set_padding(padding, at_most_half=True)

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return {}  # no parameters, no buffers

    def get_config(self) -> dict:
        return self._window_config()

    def extra_repr(self) -> str:
        return self._window_repr()

    def _input(self, X, method: str):
        return self._check_layout(X, method)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple:
        return (input_shape[0], *self._out_spatial(input_shape), input_shape[-1])

    def to_torch(self, converter):
        layer = getattr(converter.nn, self.torch_names[0])
        converter.spatial()
        return layer(
            self._shown(self.kernel),
            stride=self._shown(self.stride),
            padding=self._shown(self.padding),
        )

    @classmethod
    def from_torch(cls, module, converter) -> _PoolNd:
        converter.refuse_unless(
            module,
            dilation=1,
            ceil_mode=False,
            return_indices=False,
            count_include_pad=True,
            divisor_override=None,
        )
        converter.spatial()
        return cls(module.kernel_size, module.stride, module.padding)

    def _delta(self, input, delta, method):
        return self.check_delta(delta, self.output_shape(input.shape), method, input=input)

    def chain_backward(self, input, delta, input_grad: bool, param_grad: bool = True):
        return self.backward_delta(input, delta) if input_grad else None


class _MaxPoolNd(_PoolNd):
    """Max pooling. Inside a container, the output of the last forward is kept (keyed by the
    input object) for the backward mask; the public backward recomputes it from its input."""

    def __init__(
        self,
        k_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
    ) -> None:
        super().__init__(k_size, stride, padding)
        self._saved = None

    def forward(self, X: Array) -> Array:
        X = self._input(X, "forward")
        return backend_of(X).max_pool(self._pad(X, -math.inf), self.kernel, self.stride)

    def chain_forward(self, X):
        if type(self).forward is not _MaxPoolNd.forward:  # a subclass's own forward
            Y = self.forward(X)
            self._saved = (X, Y, None)
            return Y
        X = self._input(X, "forward")
        Y, state = backend_of(X).max_pool_with_state(
            self._pad(X, -math.inf), self.kernel, self.stride
        )
        # the backend's state (PyTorch: where the maxima are) serves the backward of this X
        self._saved = (X, Y, state)
        return Y

    def clear_cache(self) -> None:
        self._saved = None

    def _pool_gradient(self, input, delta, Y=None, state=None):
        b = backend_of(input)
        if Y is None:
            Y = b.max_pool(self._pad(input, -math.inf), self.kernel, self.stride)
        # the masks compare with NaN padding, equal to no maximum: each window's gradient goes to
        # its first maximum among the input's own values (PyTorch's rule, -inf windows included)
        if any(lo or hi for lo, hi in self.pads):
            dX = b.max_pool_backward_nan_padded(
                self._pad(input, math.nan), Y, delta, self.kernel, self.stride
            )
        else:
            dX = b.max_pool_backward(input, Y, delta, self.kernel, self.stride, state)
        return self._crop(dX)

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input = self._input(input, "backward_delta")
        delta = self._delta(input, delta, "backward_delta")
        return self._pool_gradient(input, delta)

    def chain_backward(self, input, delta, input_grad: bool, param_grad: bool = True):
        if not input_grad:
            return None
        input = self._input(input, "backward")
        delta = self._delta(input, delta, "backward")
        saved = self._saved
        if saved is None or saved[0] is not input:
            return self._pool_gradient(input, delta)
        return self._pool_gradient(input, delta, saved[1], saved[2])


class _AvgPoolNd(_PoolNd):
    def forward(self, X: Array) -> Array:
        X = self._input(X, "forward")
        slices = self._slices(X.shape)
        P = self._pad(X)  # zeros, counted in the mean (PyTorch's count_include_pad=True)
        total = P[slices[0]]
        for index in slices[1:]:
            total = total + P[index]
        return total * (1.0 / len(slices))

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input = self._input(input, "backward_delta")
        delta = self._delta(input, delta, "backward_delta")
        part = delta * (1.0 / len(self._slices(input.shape)))
        padded = (input.shape[0], *self._padded_spatial(input.shape), input.shape[-1])
        return self._crop(backend_of(input).spread(part, padded, self.kernel, self.stride))


class MaxPool1D(_MaxPoolNd):
    """Max over windows of ``k_size`` positions, per channel.

    Parameters
    ----------
    k_size : int
    stride : int, optional
        Defaults to ``k_size`` (non-overlapping windows).
    padding : int, default 0
        ``-inf`` added at each end (at most ``k_size / 2``, as in PyTorch):
        padding is never a maximum.

    Shape
    -----
    ``(N, L, C)`` -> ``(N, (L + 2 * padding - k_size) // stride + 1, C)``.

    Backward sends each window's gradient to one element, the first maximum
    (PyTorch's rule on ties, never the padding), summing where windows overlap.
    """

    _onnx_op = "MaxPool"
    torch_names = ("MaxPool1d",)

    _d = 1


class MaxPool2D(_MaxPoolNd):
    """Max over ``kh x kw`` windows, per channel: ``(N, H, W, C)`` -> ``(N, H_out, W_out, C)``.

    ``k_size``, ``stride`` and ``padding`` (``-inf`` on each side, at most half
    the kernel) are ints or pairs; ``stride`` defaults to ``k_size``. Ties go to
    the first maximum in row-major order within the window.
    """

    _onnx_op = "MaxPool"
    torch_names = ("MaxPool2d",)

    _d = 2


class AvgPool1D(_AvgPoolNd):
    """Mean over windows of ``k_size`` positions, per channel.

    Shape: ``(N, L, C)`` -> ``(N, (L + 2 * padding - k_size) // stride + 1, C)``; ``stride``
    defaults to ``k_size``. ``padding`` zeros at each end (at most ``k_size / 2``) count in
    the mean, as PyTorch's default ``count_include_pad=True``.
    """

    _onnx_op = "AveragePool"
    torch_names = ("AvgPool1d",)

    _d = 1


class AvgPool2D(_AvgPoolNd):
    """Mean over ``kh x kw`` windows, per channel: ``(N, H, W, C)`` -> ``(N, H_out, W_out, C)``.

    ``padding`` (an int or a pair, at most half the kernel) adds zeros on each
    side that count in the mean, as PyTorch's default ``count_include_pad=True``.
    """

    _onnx_op = "AveragePool"
    torch_names = ("AvgPool2d",)

    _d = 2
