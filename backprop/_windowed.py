"""What convolutions and poolings share: a kernel and a stride over 1 or 2 spatial axes, channels
last."""

from __future__ import annotations

from ._checks import int_tuple
from .backends.base import offset_slices, output_shape
from .module import Module


class _Windowed(Module):
    """A module that slides a ``kernel`` with ``stride`` over the spatial axes of ``(N, *spatial,
    C)``."""

    _d = 1  # number of spatial axes

    def _set_window(self, k_size, stride) -> None:
        name = type(self).__name__
        self.kernel = int_tuple(name, "k_size", k_size, self._d)
        self.stride = int_tuple(name, "stride", stride, self._d)

    def _shown(self, values: tuple):
        """An int for 1-D layers, the tuple for 2-D ones (as the constructor takes them)."""
        return values[0] if self._d == 1 else values

    def _window_config(self) -> dict:
        """``k_size`` and ``stride`` as the constructor takes them, JSON-serialisable."""
        value = (lambda v: v[0]) if self._d == 1 else list
        return {"k_size": value(self.kernel), "stride": value(self.stride)}

    def _window_repr(self) -> str:
        return f"k={self._shown(self.kernel)}, stride={self._shown(self.stride)}"

    def _check_layout(self, X, method: str, channels=None):
        """``X`` checked as an input ``(N, *spatial, C)`` (``C`` = ``channels`` when given) that the
        kernel fits."""
        X = self.check_array(X, method)
        if X.ndim != self._d + 2 or (channels is not None and X.shape[-1] != channels):
            c = "C" if channels is None else str(channels)
            layout = f"(N, L, {c})" if self._d == 1 else f"(N, H, W, {c})"
            raise ValueError(
                self._error(method, f"expected input of shape {layout}, got {tuple(X.shape)}")
            )
        self._check_window_fits(X, self.kernel, method)
        return X

    def _out_spatial(self, input_shape) -> tuple:
        """``(S - K) // stride + 1`` on each spatial axis."""
        return output_shape(tuple(input_shape[1:-1]), self.kernel, self.stride)

    #: the ONNX operator of this layer
    _onnx_op = ""

    def _onnx_inputs(self, graph) -> list:
        """The initializers the ONNX operator takes after the input (a convolution's weights)."""
        return []

    def _onnx_layout(self) -> str:
        channels = str(self.chan_in) if hasattr(self, "chan_in") else "C"
        return f"(L, {channels})" if self._d == 1 else f"(H, W, {channels})"

    def export_onnx(self, graph, value):
        d = len(self.kernel)
        channels = getattr(self, "chan_in", None)
        if len(value.shape) != d + 1 or (channels is not None and value.shape[-1] != channels):
            graph.fail(self, f"samples of shape {self._onnx_layout()}", value.shape)
        if any(s < k for s, k in zip(value.shape[:-1], self.kernel)):
            graph.fail(
                self,
                f"samples of shape {self._onnx_layout()} with spatial sizes of at least "
                f"{self.kernel}",
                value.shape,
            )
        value = graph.channels_first(value)
        # no padding and floor mode: the windows that fit, as in the library
        out = graph.node(
            self._onnx_op,
            [value.name, *self._onnx_inputs(graph)],
            kernel_shape=list(self.kernel),
            strides=list(self.stride),
        )
        return type(value)(out, tuple(self.output_shape((None, *value.shape))[1:]), True)

    def _slices(self, input_shape) -> list:
        """The index of every kernel offset's strided slice (see
        :func:`~backprop.backends.base.offset_slices`)."""
        out = self._out_spatial(input_shape)
        return [index for _, index in offset_slices(self.kernel, self.stride, out)]
