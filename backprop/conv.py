"""Convolutions: Conv1D and Conv2D, channels last.

The layer checks its arguments and calls two backend methods,
:meth:`~backprop.backends.Backend.conv` and
:meth:`~backprop.backends.Backend.conv_backward`, on its (padded) input. The
standard version is im2col: the windows of the input laid out as a
``(N * positions, kernel * C_in)`` matrix (plus a column of ones that carries
the bias) times the weight, one matmul; the weight and bias gradients are one
contraction of that matrix with delta; the input gradient is one matmul
followed by an overlap-add (col2im) that loops over the kernel offsets only.
NumPy chooses its layouts by measurement; PyTorch and JAX call their native
convolutions (see their backends).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._checks import flag, kernel_state_shapes, parameter_shape, positive_int, prod
from ._windowed import _Windowed
from .backends import get_backend, uniform

if TYPE_CHECKING:
    from ._typing import Array
    from .backends.random import RNG

__all__ = ["Conv1D", "Conv2D"]


class _ConvNd(_Windowed):
    """Convolution over ``d`` spatial axes of a channels-last input ``(N, *spatial, C_in)``.

    Inside a container, what the backend's forward keeps for the gradients
    (the im2col matrix on the standard path) is kept with the input object
    of the last forward. The public backward rules rebuild it from their input.
    """

    _d = 1

    def __init__(
        self,
        k_size: int | tuple[int, ...],
        chan_in: int,
        chan_out: int,
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        bias: bool = True,
        *,
        rng: RNG = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self._set_window(k_size, stride)
        self._set_padding(padding, same=True)
        self.chan_in = positive_int(name, "chan_in", chan_in)
        self.chan_out = positive_int(name, "chan_out", chan_out)
        shape = parameter_shape(name, (*self.kernel, self.chan_in, self.chan_out))
        k = 1.0 / (prod(self.kernel) * self.chan_in) ** 0.5
        backend = get_backend()
        self.add_parameter("weight", uniform(-k, k, shape, rng=rng, backend=backend))
        if flag(name, "bias", bias):
            self.add_parameter("bias", uniform(-k, k, (self.chan_out,), rng=rng, backend=backend))
        self._saved = None  # (input, what the backend kept) of the last internal forward

    def get_config(self) -> dict:
        return {
            **self._window_config(),
            "chan_in": self.chan_in,
            "chan_out": self.chan_out,
            "bias": "bias" in self._parameters,
        }

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return kernel_state_shapes(cls.__name__, config, cls._d)

    def extra_repr(self) -> str:
        text = (
            f"k={self._shown(self.kernel)}, {self.chan_in} -> {self.chan_out}, "
            f"stride={self._shown(self.stride)}{self._padding_repr()}"
        )
        return text + ("" if "bias" in self._parameters else ", bias=False")

    def _input(self, X, method: str):
        return self._check_layout(X, method, self.chan_in)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple:
        """Shape of the output for an input of ``input_shape``."""
        return (input_shape[0], *self._out_spatial(input_shape), self.chan_out)

    _onnx_op = "Conv"

    def _onnx_inputs(self, graph) -> list:
        d = self._d
        # (*kernel, C_in, C_out) -> ONNX's (C_out, C_in, *kernel)
        inputs = [graph.param(self, "weight", (d + 1, d, *range(d)))]
        if "bias" in self._parameters:
            inputs.append(graph.param(self, "bias"))
        return inputs

    def to_torch(self, converter):
        d = self._d
        layer = getattr(converter.nn, f"Conv{d}d")(
            self.chan_in,
            self.chan_out,
            self.kernel,
            stride=self.stride,
            padding=self.padding,
            bias="bias" in self._parameters,
        )
        converter.set(
            layer, "weight", converter.tensor(self._parameters["weight"], (d + 1, d, *range(d)))
        )
        if "bias" in self._parameters:
            converter.set(layer, "bias", converter.tensor(self._parameters["bias"]))
        converter.spatial()
        return layer

    @classmethod
    def from_torch(cls, module, converter) -> _ConvNd:
        converter.refuse_unless(module, dilation=(1,) * cls._d, groups=1, padding_mode="zeros")
        d = cls._d
        padding = module.padding
        if padding == "valid":
            padding = 0
        elif not isinstance(padding, str):
            padding = tuple(padding) if d > 1 else padding[0]
        c_out, c_in, *kernel = module.weight.shape
        layer = cls(
            tuple(kernel) if d > 1 else kernel[0],
            c_in,
            c_out,
            tuple(module.stride) if d > 1 else module.stride[0],
            padding,
            bias=module.bias is not None,
        )
        state = {"weight": converter.array(module.weight, (*range(2, d + 2), 1, 0))}
        if module.bias is not None:
            state["bias"] = converter.array(module.bias)
        layer.load_state_dict(state)
        converter.spatial()
        return layer

    def _bias(self):
        return self._parameters.get("bias")

    def _conv(self, X):
        """``(output, saved)`` from the backend's convolution of ``X`` (checked) padded."""
        return self._backend.conv(
            self._pad(X), self._parameters["weight"], self._bias(), self.stride
        )

    def forward(self, X: Array) -> Array:
        return self._conv(self._input(X, "forward"))[0]

    def chain_forward(self, X):
        X = self._input(X, "forward")
        Y, saved = self._conv(X)
        self._saved = (X, saved)
        return Y

    def clear_cache(self) -> None:
        self._saved = None

    def _gradients(self, input, delta, method, *, input_grad, param_grad, saved=None):
        """The backend's convolution gradients; accumulates the parameter gradients, returns the
        input gradient (or None)."""
        delta = self.check_delta(delta, self.output_shape(input.shape), method)
        # the backend works on the padded input; its input gradient is cropped back
        dx, dw, db = self._backend.conv_backward(
            self._pad(input), self._parameters["weight"], delta, self.stride, saved,
            bias="bias" in self._parameters, input_grad=input_grad, param_grad=param_grad,
        )  # fmt: skip
        if param_grad:
            self.accumulate_gradient("weight", dw)
            if db is not None:
                self.accumulate_gradient("bias", db)
        return self._crop(dx) if dx is not None else None

    def backward_update_gradient(self, input: Array, delta: Array) -> None:
        input = self._input(input, "backward_update_gradient")
        self._gradients(input, delta, "backward_update_gradient", input_grad=False, param_grad=True)

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input = self._input(input, "backward_delta")
        return self._gradients(input, delta, "backward_delta", input_grad=True, param_grad=False)

    def chain_backward(self, input, delta, input_grad: bool, param_grad: bool = True):
        input = self._input(input, "backward")
        saved = self._saved
        kept = saved[1] if saved is not None and saved[0] is input else None
        return self._gradients(
            input, delta, "backward", input_grad=input_grad, param_grad=param_grad, saved=kept
        )


class Conv1D(_ConvNd):
    """1-D convolution (cross-correlation, as in Torch and PyTorch) over a channels-last sequence.

    ``o[n, i, c_out] = b[c_out] + sum_{j < k_size, c} w[j, c, c_out] x[n, i * stride + j, c]``

    Parameters
    ----------
    k_size : int
        Kernel size K.
    chan_in, chan_out : int
        Input and output channels.
    stride : int, default 1
    padding : int or 'same', default 0
        Zeros added at each end of the sequence. ``'same'`` (stride 1 only)
        keeps the length: ``K - 1`` zeros in all, the extra one at the end for
        an even kernel, as PyTorch splits them.
    bias : bool, default True

    Shape
    -----
    ``(N, L, chan_in)`` -> ``(N, L_out, chan_out)`` with
    ``L_out = (L + 2 * padding - K) // stride + 1``.

    Parameters (``_parameters``)
    ----------------------------
    weight ``(k_size, chan_in, chan_out)`` and bias ``(chan_out,)``, both
    U(-k, k) with k = 1/sqrt(k_size * chan_in).
    """

    _d = 1
    torch_names = ("Conv1d",)


class Conv2D(_ConvNd):
    """2-D convolution over a channels-last image.

    Parameters
    ----------
    k_size : int or (int, int)
        Kernel height and width.
    chan_in, chan_out : int
    stride : int or (int, int), default 1
    padding : int, (int, int) or 'same', default 0
        Zeros added on each side of each axis (``(ph, pw)``); ``'same'``
        (stride 1 only) keeps the size, as in PyTorch.
    bias : bool, default True

    Shape
    -----
    ``(N, H, W, chan_in)`` -> ``(N, H_out, W_out, chan_out)`` with
    ``H_out = (H + 2 * ph - kh) // sh + 1`` and ``W_out = (W + 2 * pw - kw) // sw + 1``.

    Parameters (``_parameters``)
    ----------------------------
    weight ``(kh, kw, chan_in, chan_out)`` and bias ``(chan_out,)``, both
    U(-k, k) with k = 1/sqrt(kh * kw * chan_in).
    """

    _d = 2
    torch_names = ("Conv2d",)
