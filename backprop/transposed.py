"""Transposed convolutions and nearest-neighbour upsampling, channels last: what a convolutional
decoder grows its feature maps with.

A transposed convolution is the adjoint of a convolution: its forward pass is
a convolution's input gradient and its input gradient a convolution's forward
pass, so both are made of the same two primitives as :mod:`backprop.conv`.
Forward multiplies every input position by the weight, giving a window of
``kernel`` output values per position, and adds the windows back in place
(``overlap_add``); the input gradient takes the windows of the output
gradient (``im2col``) and multiplies them by the weight. No loop over the
batch or the positions, only the kernel offsets inside the two primitives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._checks import flag, int_tuple, kernel_state_shapes, parameter_shape, positive_int, prod
from ._windowed import _Windowed, crop_spatial, pad_spatial
from .backends import backend_of, get_backend, uniform
from .module import Module

if TYPE_CHECKING:
    from ._typing import Array
    from .backends.random import RNG

__all__ = ["ConvTranspose1D", "ConvTranspose2D", "Upsample"]


def _ints(values: tuple, d: int):
    """An int for a 1-D layer, a list for a 2-D one (JSON, as the constructor takes them)."""
    return values[0] if d == 1 else list(values)


class _ConvTransposeNd(_Windowed):
    """Transposed convolution over ``d`` spatial axes of a channels-last input ``(N, *spatial,
    C_in)``.

    The weight is ``(*kernel, chan_in, chan_out)``, the library's layout for
    convolutions: ``weight[j, c_in, c_out]`` carries input channel ``c_in`` at
    position ``i`` to output channel ``c_out`` at position ``i * stride + j -
    padding``. PyTorch stores it ``(chan_in, chan_out, *kernel)``; the
    conversions permute it.
    """

    _d = 1

    def __init__(
        self,
        k_size: int | tuple[int, ...],
        chan_in: int,
        chan_out: int,
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        output_padding: int | tuple[int, ...] = 0,
        bias: bool = True,
        *,
        rng: RNG = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self._set_window(k_size, stride)
        d = self._d
        # the output's crop on each side (not the input's padding of a convolution)
        self.padding = int_tuple(name, "padding", padding, d, minimum=0)
        self.output_padding = int_tuple(name, "output_padding", output_padding, d, minimum=0)
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(
                f"{name}: output_padding must be smaller than stride (as in PyTorch), got "
                f"output_padding {self._shown(self.output_padding)} and stride "
                f"{self._shown(self.stride)}"
            )
        self.chan_in = positive_int(name, "chan_in", chan_in)
        self.chan_out = positive_int(name, "chan_out", chan_out)
        shape = parameter_shape(name, (*self.kernel, self.chan_in, self.chan_out))
        # PyTorch's default: U(-k, k), k = 1/sqrt(fan_in) with its fan_in = chan_out * kernel
        k = 1.0 / (prod(self.kernel) * self.chan_out) ** 0.5
        backend = get_backend()
        self.add_parameter("weight", uniform(-k, k, shape, rng=rng, backend=backend))
        if flag(name, "bias", bias):
            self.add_parameter("bias", uniform(-k, k, (self.chan_out,), rng=rng, backend=backend))

    # ----------------------------------------------------------- description

    def get_config(self) -> dict:
        d = self._d
        return {
            "k_size": _ints(self.kernel, d),
            "chan_in": self.chan_in,
            "chan_out": self.chan_out,
            "stride": _ints(self.stride, d),
            "padding": _ints(self.padding, d),
            "output_padding": _ints(self.output_padding, d),
            "bias": "bias" in self._parameters,
        }

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return kernel_state_shapes(cls.__name__, config, cls._d)

    def extra_repr(self) -> str:
        text = (
            f"k={self._shown(self.kernel)}, {self.chan_in} -> {self.chan_out}, "
            f"stride={self._shown(self.stride)}"
        )
        if any(self.padding):
            text += f", padding={self._shown(self.padding)}"
        if any(self.output_padding):
            text += f", output_padding={self._shown(self.output_padding)}"
        return text + ("" if "bias" in self._parameters else ", bias=False")

    def _full_spatial(self, spatial: tuple) -> tuple:
        """Sizes before the crop: ``(S - 1) * stride + K + output_padding``."""
        return tuple(
            (s - 1) * st + k + op
            for s, st, k, op in zip(spatial, self.stride, self.kernel, self.output_padding)
        )

    def _out_spatial(self, input_shape) -> tuple:
        """``(S - 1) * stride - 2 * padding + K + output_padding`` on each spatial axis."""
        full = self._full_spatial(tuple(input_shape[1:-1]))
        return tuple(f - 2 * p for f, p in zip(full, self.padding))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple:
        """Shape of the output for an input of ``input_shape``."""
        return (input_shape[0], *self._out_spatial(input_shape), self.chan_out)

    @property
    def _crop_pads(self) -> tuple:
        return tuple((p, p) for p in self.padding)

    # -------------------------------------------------------------- checks

    def _input(self, X, method: str):
        X = self.check_array(X, method)
        if X.ndim != self._d + 2 or X.shape[-1] != self.chan_in:
            layout = f"(N, L, {self.chan_in})" if self._d == 1 else f"(N, H, W, {self.chan_in})"
            raise ValueError(
                self._error(method, f"expected input of shape {layout}, got {tuple(X.shape)}")
            )
        spatial = tuple(X.shape[1:-1])
        if any(s < 1 for s in spatial):
            raise ValueError(
                self._error(method, f"input spatial sizes must be at least 1, got {spatial}")
            )
        out = self._out_spatial(X.shape)
        if any(o < 1 for o in out):
            raise ValueError(
                self._error(
                    method,
                    f"input of spatial size {spatial} gives an output of size {out} "
                    f"(padding {self._shown(self.padding)} crops too much)",
                )
            )
        return X

    # ------------------------------------------------------------ products

    def _weight_rows(self):
        """The weight as ``(chan_in, prod(kernel) * chan_out)``: one row per input channel, its
        columns in the order of a window of the output, ``(*kernel, chan_out)``."""
        xp = self._backend.xp
        d = self._d
        W = xp.permute_dims(self._parameters["weight"], (d, *range(d), d + 1))
        return xp.reshape(W, (self.chan_in, prod(self.kernel) * self.chan_out))

    def _rows(self, X):
        """The input as ``(N * positions, chan_in)``."""
        return self._backend.xp.reshape(X, (prod(X.shape[:-1]), self.chan_in))

    def forward(self, X: Array) -> Array:
        X = self._input(X, "forward")
        b = self._backend
        xp = b.xp
        # every input position's window of output values, added back in place
        windows = xp.reshape(
            self._rows(X) @ self._weight_rows(), (*X.shape[:-1], *self.kernel, self.chan_out)
        )
        full = b.overlap_add(windows, self._full_spatial(tuple(X.shape[1:-1])), self.stride)
        Y = crop_spatial(full, self._crop_pads)
        if "bias" in self._parameters:
            Y = Y + self._parameters["bias"]
        return Y

    def _delta_columns(self, input, delta, method: str):
        """The im2col matrix of the output gradient put back to its uncropped size:
        ``(N * input positions, prod(kernel) * chan_out)``, one row per input position."""
        delta = self.check_delta(delta, self.output_shape(input.shape), method)
        b = self._backend
        if delta.shape[0] == 0:  # an empty batch (im2col's reshapes cannot size an empty matrix)
            width = prod(self.kernel) * self.chan_out
            return b.xp.zeros((0, width), dtype=delta.dtype, device=b.device_of(delta)), delta
        # the cropped padding and output_padding's tail get no gradient: zeros
        full = pad_spatial(delta, self._crop_pads)
        return self._backend.im2col(full, self.kernel, self.stride), delta

    def _update_gradient(self, input, cols, delta) -> None:
        xp = self._backend.xp
        d = self._d
        grad = self._backend.contract_rows(self._rows(input), cols)  # (chan_in, K * chan_out)
        grad = xp.reshape(grad, (self.chan_in, *self.kernel, self.chan_out))
        grad = xp.permute_dims(grad, (*range(1, d + 1), 0, d + 1))
        # through one axis: a contiguous copy, the layout optimizers' buffers then take
        shape = self._parameters["weight"].shape
        self.accumulate_gradient("weight", xp.reshape(xp.reshape(grad, (-1,)), shape))
        if "bias" in self._parameters:
            self.accumulate_gradient("bias", xp.sum(delta, axis=tuple(range(d + 1))))

    def _input_gradient(self, input, cols):
        return self._backend.xp.reshape(cols @ self._weight_rows().T, tuple(input.shape))

    def backward_update_gradient(self, input: Array, delta: Array) -> None:
        input = self._input(input, "backward_update_gradient")
        cols, delta = self._delta_columns(input, delta, "backward_update_gradient")
        self._update_gradient(input, cols, delta)

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input = self._input(input, "backward_delta")
        cols, _ = self._delta_columns(input, delta, "backward_delta")
        return self._input_gradient(input, cols)

    def chain_backward(self, input, delta, input_grad: bool, param_grad: bool = True):
        input = self._input(input, "backward")
        cols, delta = self._delta_columns(input, delta, "backward")
        if param_grad:
            self._update_gradient(input, cols, delta)
        return self._input_gradient(input, cols) if input_grad else None

    # ---------------------------------------------------------------- ONNX

    def export_onnx(self, graph, value):
        """``ConvTranspose`` (weight permuted to ONNX's ``(C_in, C_out, *kernel)``)."""
        d = self._d
        layout = f"(L, {self.chan_in})" if d == 1 else f"(H, W, {self.chan_in})"
        if len(value.shape) != d + 1 or value.shape[-1] != self.chan_in:
            graph.fail(self, f"samples of shape {layout}", value.shape)
        out = self.output_shape((None, *value.shape))[1:]
        if any(o < 1 for o in out[:-1]):
            graph.fail(
                self, f"samples of shape {layout} that its padding leaves non-empty", value.shape
            )
        v = graph.channels_first(value)
        inputs = [v.name, graph.param(self, "weight", (d, d + 1, *range(d)))]
        if "bias" in self._parameters:
            inputs.append(graph.param(self, "bias"))
        name = graph.node(
            "ConvTranspose",
            inputs,
            kernel_shape=list(self.kernel),
            strides=list(self.stride),
            pads=[*self.padding, *self.padding],
            output_padding=list(self.output_padding),
        )
        return type(v)(name, tuple(out), True)

    # ------------------------------------------------------------- PyTorch

    @classmethod
    def from_torch(cls, module, converter) -> _ConvTransposeNd:
        """The layer of a ``torch.nn.ConvTranspose1d/2d`` (zero padding, no groups, no
        dilation), with copies of its weights."""
        d = cls._d
        converter.refuse_unless(module, dilation=(1,) * d, groups=1, padding_mode="zeros")
        c_in, c_out, *kernel = module.weight.shape
        shown = (lambda v: tuple(v)) if d > 1 else (lambda v: v[0])
        layer = cls(
            shown(kernel),
            c_in,
            c_out,
            stride=shown(module.stride),
            padding=shown(module.padding),
            output_padding=shown(module.output_padding),
            bias=module.bias is not None,
        )
        # (C_in, C_out, *kernel) -> (*kernel, C_in, C_out)
        state = {"weight": converter.array(module.weight, (*range(2, d + 2), 0, 1))}
        if module.bias is not None:
            state["bias"] = converter.array(module.bias)
        layer.load_state_dict(state)
        converter.spatial()
        return layer

    def to_torch(self, converter):
        """A ``torch.nn.ConvTranspose1d/2d`` with copies of this layer's weights."""
        d = self._d
        layer = getattr(converter.nn, f"ConvTranspose{d}d")(
            self.chan_in,
            self.chan_out,
            self.kernel,
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            bias="bias" in self._parameters,
        )
        # (*kernel, C_in, C_out) -> (C_in, C_out, *kernel)
        weight = converter.tensor(self._parameters["weight"], (d, d + 1, *range(d)))
        converter.set(layer, "weight", weight)
        if "bias" in self._parameters:
            converter.set(layer, "bias", converter.tensor(self._parameters["bias"]))
        converter.spatial()
        return layer


class ConvTranspose1D(_ConvTransposeNd):
    """1-D transposed convolution over a channels-last sequence (PyTorch's ``ConvTranspose1d``;
    Torch7 had it only in 2-D, ``SpatialFullConvolution``).

    ``o[n, i * stride + j - padding, c_out] += w[j, c_in, c_out] x[n, i, c_in]``, plus
    ``b[c_out]``: each input position spreads a window of ``k_size`` outputs,
    ``stride`` apart; overlapping windows add up. It is the adjoint (input
    gradient) of a :class:`~backprop.Conv1D` with the same kernel, stride and
    padding.

    Parameters
    ----------
    k_size : int
        Kernel size K.
    chan_in, chan_out : int
        Input and output channels.
    stride : int, default 1
    padding : int, default 0
        Output positions cropped at each end.
    output_padding : int, default 0
        Extra positions at the end (smaller than ``stride``): picks one of the
        ``stride`` input lengths a strided convolution maps to the same length.
    bias : bool, default True

    Shape
    -----
    ``(N, L, chan_in)`` -> ``(N, L_out, chan_out)`` with
    ``L_out = (L - 1) * stride - 2 * padding + K + output_padding``.

    Parameters (``_parameters``)
    ----------------------------
    weight ``(k_size, chan_in, chan_out)`` (PyTorch's is ``(chan_in, chan_out,
    k_size)``) and bias ``(chan_out,)``, both U(-k, k) with
    k = 1/sqrt(k_size * chan_out), PyTorch's default.
    """

    _d = 1
    torch_names = ("ConvTranspose1d",)


class ConvTranspose2D(_ConvTransposeNd):
    """2-D transposed convolution over a channels-last image (Torch7's
    ``SpatialFullConvolution``, PyTorch's ``ConvTranspose2d``).

    The adjoint of a :class:`~backprop.Conv2D`: each input pixel spreads a
    ``kh x kw`` window of outputs, ``stride`` apart, overlaps adding up; then
    ``padding`` rows and columns are cropped on each side.

    Parameters
    ----------
    k_size : int or (int, int)
    chan_in, chan_out : int
    stride : int or (int, int), default 1
    padding : int or (int, int), default 0
    output_padding : int or (int, int), default 0
        Smaller than ``stride`` on each axis.
    bias : bool, default True

    Shape
    -----
    ``(N, H, W, chan_in)`` -> ``(N, H_out, W_out, chan_out)`` with
    ``H_out = (H - 1) * sh - 2 * ph + kh + oph`` (likewise for the width).

    Parameters (``_parameters``)
    ----------------------------
    weight ``(kh, kw, chan_in, chan_out)`` (PyTorch's is ``(chan_in, chan_out,
    kh, kw)``) and bias ``(chan_out,)``, both U(-k, k) with
    k = 1/sqrt(kh * kw * chan_out).
    """

    _d = 2
    torch_names = ("ConvTranspose2d",)


class Upsample(Module):
    """Nearest-neighbour upsampling by integer factors, channels last: each value repeated
    ``scale_factor`` times along every spatial axis (Torch7's ``SpatialUpSamplingNearest``,
    PyTorch's ``nn.Upsample(scale_factor=..., mode='nearest')``).

    Parameters
    ----------
    scale_factor : int or tuple of int
        One int for every spatial axis, or one per axis: ``(s,)`` for
        sequences, ``(sh, sw)`` for images.
    mode : {'nearest'}
        The only mode.

    Shape
    -----
    ``(N, L, C)`` -> ``(N, L * s, C)`` and ``(N, H, W, C)`` -> ``(N, H * sh, W * sw, C)``.

    The gradient of an input value is the sum of the gradients of its copies.
    """

    torch_names = ("Upsample", "UpsamplingNearest2d")

    def __init__(self, scale_factor: int | tuple[int, ...], mode: str = "nearest") -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(scale_factor, (tuple, list)):
            if len(scale_factor) not in (1, 2):
                raise ValueError(
                    f"{name}: scale_factor must be an int or 1 or 2 ints, got {scale_factor!r}"
                )
            self.scale: int | tuple[int, ...] = tuple(
                positive_int(name, "scale_factor", s) for s in scale_factor
            )
        else:
            self.scale = positive_int(name, "scale_factor", scale_factor)
        if not isinstance(mode, str) or mode != "nearest":  # an array would compare per entry
            raise ValueError(f"{name}: mode must be 'nearest' (the only mode), got {mode!r}")
        self.mode = mode

    def get_config(self) -> dict:
        scale = list(self.scale) if isinstance(self.scale, tuple) else self.scale
        return {"scale_factor": scale, "mode": self.mode}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return {}  # no parameters, no buffers

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale}"

    def _factors(self, rank: int, method: str, shape) -> tuple:
        """The factor of each spatial axis of an input of ``rank`` (ValueError when it does not
        fit)."""
        if isinstance(self.scale, int):
            if rank in (3, 4):
                return (self.scale,) * (rank - 2)
            expected = "(N, L, C) or (N, H, W, C)"
        else:
            if rank == len(self.scale) + 2:
                return self.scale
            expected = "(N, L, C)" if len(self.scale) == 1 else "(N, H, W, C)"
        raise ValueError(self._error(method, f"expected input of shape {expected}, got {shape}"))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple:
        s = self._factors(len(input_shape), "output_shape", tuple(input_shape))
        spatial = tuple(n * f for n, f in zip(input_shape[1:-1], s))
        return (input_shape[0], *spatial, input_shape[-1])

    def forward(self, X: Array) -> Array:
        X = self.check_array(X, "forward")
        s = self._factors(X.ndim, "forward", tuple(X.shape))
        xp = backend_of(X).xp
        if all(f == 1 for f in s):
            return backend_of(X).xp.asarray(X, copy=True)  # never the caller's array itself
        n, spatial, c = X.shape[0], tuple(X.shape[1:-1]), X.shape[-1]
        # (N, S1, 1, S2, 1, C) broadcast to (N, S1, s1, S2, s2, C): each value repeated in place
        split = (n, *(a for size in spatial for a in (size, 1)), c)
        wide = (n, *(a for size, f in zip(spatial, s) for a in (size, f)), c)
        Y = xp.broadcast_to(xp.reshape(X, split), wide)
        return xp.reshape(Y, self.output_shape(tuple(X.shape)))

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input = self.check_array(input, "backward_delta")
        s = self._factors(input.ndim, "backward_delta", tuple(input.shape))
        delta = self.check_delta(
            delta, self.output_shape(tuple(input.shape)), "backward_delta", input=input
        )
        xp = backend_of(input).xp
        n, spatial, c = input.shape[0], tuple(input.shape[1:-1]), input.shape[-1]
        wide = (n, *(a for size, f in zip(spatial, s) for a in (size, f)), c)
        # the sum over each value's copies
        return xp.sum(xp.reshape(delta, wide), axis=tuple(range(2, 2 * len(s) + 1, 2)))

    def export_onnx(self, graph, value):
        """``Resize`` (nearest, floor of ``i / s``): channels-last or -first alike, the channel
        axis and the batch get factor 1."""
        rank = len(value.shape) + 1
        ranks = (3, 4) if isinstance(self.scale, int) else (len(self.scale) + 2,)
        if rank not in ranks:
            expected = " or ".join({3: "(L, C)", 4: "(H, W, C)"}[r] for r in ranks)
            graph.fail(self, f"samples of shape {expected}", value.shape)
        s = self._factors(rank, "export_onnx", ("N", *value.shape))
        spatial = (*(1.0 * f for f in s),)
        scales = (1.0, 1.0, *spatial) if value.channels_first else (1.0, *spatial, 1.0)
        name = graph.node(
            "Resize",
            [value.name, "", graph.floats(scales)],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
        shape = self.output_shape((1, *value.shape))[1:]
        return type(value)(name, tuple(shape), value.channels_first)

    @classmethod
    def from_torch(cls, module, converter) -> Upsample:
        """The layer of a ``torch.nn.Upsample(scale_factor=..., mode='nearest')`` (or
        ``UpsamplingNearest2d``) with whole factors."""
        where = f"from_torch: {type(module).__name__}"
        if module.mode != "nearest" or getattr(module, "size", None) is not None:
            raise ValueError(
                f"{where} with mode={module.mode!r}, size={module.size!r} is not supported (only "
                "mode='nearest' with a scale_factor)"
            )
        factors = module.scale_factor
        many = isinstance(factors, (tuple, list))
        values = tuple(factors) if many else (factors,)
        if any(float(f) != int(f) or int(f) < 1 for f in values):
            raise ValueError(
                f"{where} with scale_factor={factors!r} is not supported (scale_factor must be "
                "whole numbers)"
            )
        ints = tuple(int(f) for f in values)
        converter.spatial()
        return cls(ints if many else ints[0])

    def to_torch(self, converter):
        """``torch.nn.Upsample(scale_factor=..., mode='nearest')``."""
        scale = (
            tuple(float(f) for f in self.scale)
            if isinstance(self.scale, tuple)
            else float(self.scale)
        )
        converter.spatial()
        return converter.nn.Upsample(scale_factor=scale, mode="nearest")
