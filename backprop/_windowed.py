"""What convolutions and poolings share: a kernel, a stride and a padding over 1 or 2 spatial
axes, channels last."""

from __future__ import annotations

from ._checks import int_tuple
from .backends import backend_of
from .backends.base import offset_slices, output_shape
from .module import Module


def pad_spatial(X, pads: tuple, value: float = 0.0):
    """``X`` (``(N, *spatial, C)``) with ``pads[i] = (before, after)`` entries of ``value`` added
    on spatial axis ``i`` (``X`` itself when every pad is zero)."""
    if not any(lo or hi for lo, hi in pads):
        return X
    b = backend_of(X)
    xp = b.xp
    for axis, (lo, hi) in enumerate(pads, start=1):
        parts = []
        for size in (lo, hi):
            shape = list(X.shape)
            shape[axis] = size
            parts.append(
                xp.full(tuple(shape), value, dtype=X.dtype, device=b.device_of(X)) if size else None
            )
        X = xp.concat([p for p in (parts[0], X, parts[1]) if p is not None], axis=axis)
    return X


def crop_spatial(X, pads: tuple):
    """``X`` without ``pads[i] = (before, after)`` entries on spatial axis ``i`` (the adjoint of
    :func:`pad_spatial`)."""
    if not any(lo or hi for lo, hi in pads):
        return X
    index = tuple(slice(lo, s - hi) for (lo, hi), s in zip(pads, X.shape[1:-1]))
    return X[(slice(None), *index, slice(None))]


class _Windowed(Module):
    """A module that slides a ``kernel`` with ``stride`` over the spatial axes of ``(N, *spatial,
    C)``, padded by ``pads`` (``(before, after)`` per spatial axis)."""

    _d = 1  # number of spatial axes
    pads: tuple = ((0, 0),)
    padding: int | tuple | str = 0

    def _set_window(self, k_size, stride) -> None:
        name = type(self).__name__
        self.kernel = int_tuple(name, "k_size", k_size, self._d)
        self.stride = int_tuple(name, "stride", stride, self._d)
        self.pads = ((0, 0),) * self._d
        self.padding = (0,) * self._d

    def _set_padding(self, padding, *, same: bool = False, at_most_half: bool = False) -> None:
        """Zero (or -inf) padding on each side: an int, one int per axis, or ``'same'`` (when
        ``same``: stride 1, PyTorch's split of an even kernel's padding, the extra one after)."""
        name = type(self).__name__
        if isinstance(padding, str):
            if not same or padding != "same":
                kinds = "a non-negative int" + (f" or {self._d} ints" if self._d > 1 else "")
                raise ValueError(
                    f"{name}: padding must be {kinds}" + (" or 'same'" if same else "")
                    + f", got {padding!r}"
                )  # fmt: skip
            if any(s != 1 for s in self.stride):
                raise ValueError(
                    f"{name}: padding='same' needs stride 1 (as in PyTorch), got stride "
                    f"{self._shown(self.stride)}"
                )
            self.padding = "same"
            self.pads = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in self.kernel)
            return
        self.padding = int_tuple(name, "padding", padding, self._d, minimum=0)
        if at_most_half and any(2 * p > k for p, k in zip(self.padding, self.kernel)):
            raise ValueError(
                f"{name}: padding {self._shown(self.padding)} must be at most half the kernel "
                f"size {self._shown(self.kernel)} (as in PyTorch)"
            )
        self.pads = tuple((p, p) for p in self.padding)

    def _shown(self, values: tuple):
        """An int for 1-D layers, the tuple for 2-D ones (as the constructor takes them)."""
        return values[0] if self._d == 1 else values

    def _padded(self) -> bool:
        return any(lo or hi for lo, hi in self.pads)

    def _window_config(self) -> dict:
        """``k_size``, ``stride`` and ``padding`` as the constructor takes them,
        JSON-serialisable."""
        value = (lambda v: v[0]) if self._d == 1 else list
        padding = self.padding if isinstance(self.padding, str) else value(self.padding)
        return {"k_size": value(self.kernel), "stride": value(self.stride), "padding": padding}

    def _padding_repr(self) -> str:
        if not self._padded():
            return ""
        same = isinstance(self.padding, str)
        return f", padding={self.padding!r}" if same else f", padding={self._shown(self.padding)}"

    def _window_repr(self) -> str:
        return f"k={self._shown(self.kernel)}, stride={self._shown(self.stride)}" + (
            self._padding_repr()
        )

    def _check_layout(self, X, method: str, channels=None):
        """``X`` checked as an input ``(N, *spatial, C)`` (``C`` = ``channels`` when given) that the
        kernel fits once padded."""
        X = self.check_array(X, method)
        if X.ndim != self._d + 2 or (channels is not None and X.shape[-1] != channels):
            c = "C" if channels is None else str(channels)
            layout = f"(N, L, {c})" if self._d == 1 else f"(N, H, W, {c})"
            raise ValueError(
                self._error(method, f"expected input of shape {layout}, got {tuple(X.shape)}")
            )
        if not self._padded():
            self._check_window_fits(X, self.kernel, method)
            return X
        for axis, (size, k, (lo, hi)) in enumerate(zip(X.shape[1:-1], self.kernel, self.pads)):
            if size + lo + hi < k:
                what = "length" if self._d == 1 else ("height", "width")[axis]
                raise ValueError(
                    self._error(
                        method,
                        f"input {what} {size} with padding {lo} + {hi} is shorter than "
                        f"kernel_size {k}",
                    )
                )
        return X

    def _padded_spatial(self, input_shape) -> tuple:
        """The spatial sizes of an input of ``input_shape`` once padded."""
        return tuple(s + lo + hi for s, (lo, hi) in zip(input_shape[1:-1], self.pads))

    def _out_spatial(self, input_shape) -> tuple:
        """``(S + padding - K) // stride + 1`` on each spatial axis of an (unpadded) input of
        ``input_shape``."""
        return output_shape(self._padded_spatial(input_shape), self.kernel, self.stride)

    def _pad(self, X, value: float = 0.0):
        """``X`` with this layer's padding (``value`` in it)."""
        return pad_spatial(X, self.pads, value)

    def _crop(self, dX):
        """A gradient w.r.t. the padded input, cropped to the input's shape."""
        return crop_spatial(dX, self.pads)

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
        padded = self._padded_spatial((None, *value.shape))
        if any(s < k for s, k in zip(padded, self.kernel)):
            graph.fail(
                self,
                f"samples of shape {self._onnx_layout()} with spatial sizes of at least "
                f"{self.kernel}" + (" once padded" if self._padded() else ""),
                value.shape,
            )
        value = graph.channels_first(value)
        attributes = {"kernel_shape": list(self.kernel), "strides": list(self.stride)}
        if self._padded():
            # every axis's start, then every axis's end; the mean counts the padding (ONNX's
            # AveragePool does not by default)
            attributes["pads"] = [lo for lo, _ in self.pads] + [hi for _, hi in self.pads]
            if self._onnx_op == "AveragePool":
                attributes["count_include_pad"] = 1
        # floor mode: the windows that fit, as in the library
        out = graph.node(self._onnx_op, [value.name, *self._onnx_inputs(graph)], **attributes)
        return type(value)(out, tuple(self.output_shape((None, *value.shape))[1:]), True)

    def _slices(self, input_shape) -> list:
        """The index into the padded input of every kernel offset's strided slice, for an
        (unpadded) input of ``input_shape`` (see
        :func:`~backprop.backends.base.offset_slices`)."""
        out = self._out_spatial(input_shape)
        return [index for _, index in offset_slices(self.kernel, self.stride, out)]
