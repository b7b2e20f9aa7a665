"""Normalisation layers, channels last: BatchNorm1D, BatchNorm2D and LayerNorm.

Batch normalisation (Ioffe & Szegedy, 2015) normalises each channel with the
statistics of the batch in training mode and with running estimates of them
in evaluation mode; layer normalisation (Ba et al., 2016) normalises each
sample over its trailing axes, the same way in both modes. The semantics are
PyTorch's: the biased variance normalises, the unbiased one feeds the running
variance, ``running = (1 - momentum) * running + momentum * batch``.

The running statistics are buffers (:meth:`~backprop.Module.add_buffer`):
saved, loaded, checkpointed and moved with the parameters, never touched by
an optimizer. A forward pass in training mode updates them, as PyTorch's
does: a batch-norm module used at two places of a network updates them
twice per pass, once per use, and a forward run only to look at the output
of a network in training mode changes them too (call ``net.eval()`` first).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ._checks import flag, parameter_shape, positive_int, prod
from .backends import backend_of, get_backend
from .module import Module

if TYPE_CHECKING:
    from ._typing import Array

__all__ = ["BatchNorm1D", "BatchNorm2D", "LayerNorm"]


def _positive_eps(owner: str, eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf:
        raise ValueError(f"{owner}: eps must be a positive finite number, got {eps!r}")
    return float(eps)


def _momentum(owner: str, momentum: object) -> float:
    if (
        isinstance(momentum, bool)
        or not isinstance(momentum, (int, float))
        or not (0 <= momentum <= 1)
    ):
        raise ValueError(f"{owner}: momentum must be a number in [0, 1], got {momentum!r}")
    return float(momentum)


def _normalized_gradient(xp, xhat, inv_std, dxhat, axes, m):
    """dL/dx of ``xhat = (x - mean(x)) * inv_std`` with batch statistics over ``axes`` (``m``
    values each), given ``dxhat`` = dL/dxhat:
    ``inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))``."""
    mean_d = xp.sum(dxhat, axis=axes, keepdims=True) * (1.0 / m)
    mean_dx = xp.sum(dxhat * xhat, axis=axes, keepdims=True) * (1.0 / m)
    return (dxhat - mean_d - xhat * mean_dx) * inv_std


def _from_torch_tensor(layer: Module, converter: Any, tensor: Any, what: str):
    """A copy, owned by ``layer``, of a torch module's ``tensor`` (PyTorch updates its running
    statistics in place: sharing memory with them would change this layer behind its back)."""
    array = converter.array(tensor.detach())
    expected = tuple(layer._parameters.get(what, layer._buffers.get(what)).shape)
    if tuple(array.shape) != expected:
        raise ValueError(
            f"{type(layer).__name__}.from_torch: {what} has shape {tuple(array.shape)}, "
            f"expected {expected}"
        )
    # a real copy: JAX's arrays may alias the host memory they were made from
    return layer._backend.xp.asarray(array, copy=True)


class _Normalization(Module):
    """What the three layers share: the affine part, the per-call cache of ``xhat`` and the
    backward rules.

    Subclasses give :meth:`_check` (the input, validated) and :meth:`_normalize`
    (``(xhat, inv_std, batch statistics?)`` for an input, updating running
    statistics where forward should), the reduction axes and the parameter
    shape.
    """

    def __init__(self) -> None:
        super().__init__()
        # call path -> (input, xhat, inv_std, whether batch statistics were used) of the last
        # chain_forward at that place (a module may sit at several places of a network)
        self._saved: dict = {}

    # ---- to be given by subclasses
    def _check(self, X, method: str):
        raise NotImplementedError

    def _statistics(self, X, update: bool):
        """``(xhat, inv_std, batch)``: the normalised input, the inverse standard deviations
        (broadcastable to ``X``), and whether they are the batch's own (a training-mode
        normalisation, whose input gradient goes through the statistics)."""
        raise NotImplementedError

    def _param_axes(self, X) -> tuple:
        """The axes of ``X`` that the weight and bias do not have (their gradients sum over
        them)."""
        raise NotImplementedError

    def _stat_axes(self, X) -> tuple:
        """The axes the statistics are computed over."""
        raise NotImplementedError

    # ---- shared
    def _affine(self, xhat):
        if "weight" in self._parameters:
            xhat = xhat * self._parameters["weight"]
        if "bias" in self._parameters:
            xhat = xhat + self._parameters["bias"]
        return xhat

    def forward(self, X: Array) -> Array:
        X = self._check(X, "forward")
        xhat, _, _ = self._statistics(X, update=True)
        return self._affine(xhat)

    def chain_forward(self, X):
        X = self._check(X, "forward")
        xhat, inv_std, batch = self._statistics(X, update=True)
        self._saved[self._call_path] = (X, xhat, inv_std, batch)
        return self._affine(xhat)

    def clear_cache(self) -> None:
        self._saved = {}

    def _delta(self, input, delta, method):
        return self.check_delta(delta, tuple(input.shape), method, input=input)

    def _update_gradient(self, xhat, delta) -> None:
        if not self._parameters:
            return
        xp = self._backend.xp
        axes = self._param_axes(delta)
        if "weight" in self._parameters:
            self.accumulate_gradient("weight", xp.sum(delta * xhat, axis=axes))
        if "bias" in self._parameters:
            self.accumulate_gradient("bias", xp.sum(delta, axis=axes))

    def _input_gradient(self, xhat, inv_std, batch, delta):
        xp = self._backend.xp
        dxhat = delta * self._parameters["weight"] if "weight" in self._parameters else delta
        if not batch:
            return dxhat * inv_std
        axes = self._stat_axes(delta)
        m = prod(delta.shape[a] for a in axes)
        return _normalized_gradient(xp, xhat, inv_std, dxhat, axes, m)

    def _recomputed(self, input):
        # the public rules compute from their arguments: the statistics of this input in the
        # current mode, without touching the running statistics
        return self._statistics(input, update=False)

    def backward_update_gradient(self, input: Array, delta: Array) -> None:
        input = self._check(input, "backward_update_gradient")
        delta = self._delta(input, delta, "backward_update_gradient")
        if self._parameters:
            self._update_gradient(self._recomputed(input)[0], delta)

    def backward_delta(self, input: Array, delta: Array) -> Array:
        input = self._check(input, "backward_delta")
        delta = self._delta(input, delta, "backward_delta")
        return self._input_gradient(*self._recomputed(input), delta)

    def backward(self, input: Array, delta: Array, *, input_grad: bool = True) -> Array | None:
        input = self._check(input, "backward")
        delta = self._delta(input, delta, "backward")
        xhat, inv_std, batch = self._recomputed(input)
        self._update_gradient(xhat, delta)
        return self._input_gradient(xhat, inv_std, batch, delta) if input_grad else None

    def chain_backward(self, input, delta, input_grad: bool = True, param_grad: bool = True):
        saved = self._saved.get(self._call_path)
        if saved is not None and saved[0] is input:
            _, xhat, inv_std, batch = saved
        else:
            input = self._check(input, "backward")
            xhat, inv_std, batch = self._recomputed(input)
        delta = self._delta(input, delta, "backward")
        if param_grad:
            self._update_gradient(xhat, delta)
        return self._input_gradient(xhat, inv_std, batch, delta) if input_grad else None


class _BatchNorm(_Normalization):
    """Batch normalisation over every axis but the last (the channels)."""

    _ranks: tuple[int, ...] = ()
    _layout: str = ""
    _torch_name: str = ""

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = positive_int(name, "num_features", num_features)
        parameter_shape(name, (self.num_features,))
        self.eps = _positive_eps(name, eps)
        self.momentum = _momentum(name, momentum)
        self.affine = flag(name, "affine", affine)
        if self.affine:
            self.add_parameter("weight", [1.0] * self.num_features)
            self.add_parameter("bias", [0.0] * self.num_features)
        self.add_buffer("running_mean", [0.0] * self.num_features)
        self.add_buffer("running_var", [1.0] * self.num_features)

    def get_config(self) -> dict:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
        }

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        c = positive_int(cls.__name__, "num_features", config["num_features"])
        shapes = {"running_mean": (c,), "running_var": (c,)}
        if config.get("affine", True):
            shapes.update(weight=(c,), bias=(c,))
        return shapes

    def extra_repr(self) -> str:
        text = f"{self.num_features}"
        if self.eps != 1e-5:
            text += f", eps={self.eps:g}"
        if self.momentum != 0.1:
            text += f", momentum={self.momentum:g}"
        return text + ("" if self.affine else ", affine=False")

    def _check(self, X, method: str):
        X = self.check_array(X, method)
        shape = tuple(X.shape)
        if len(shape) not in self._ranks or shape[-1] != self.num_features:
            raise ValueError(
                self._error(
                    method,
                    f"expected input of shape {self._layout.format(C=self.num_features)}, "
                    f"got {shape}",
                )
            )
        if prod(shape) == 0:
            raise ValueError(
                self._error(
                    method, f"the input is empty (shape {shape}): no statistics to normalise with"
                )
            )
        if self.training and prod(shape[:-1]) == 1:
            # the batch variance of one value is 0 and the unbiased one undefined (PyTorch refuses
            # it too)
            raise ValueError(
                self._error(
                    method,
                    f"expected more than 1 value per channel in training mode, got input of shape "
                    f"{shape}; use a larger batch or call eval() to use the running statistics",
                )
            )
        return X

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if len(shape) not in self._ranks or shape[-1] != self.num_features:
            shown = tuple("N" if s is None else s for s in shape)
            raise ValueError(
                self._error(
                    "output_shape",
                    f"expected input of shape {self._layout.format(C=self.num_features)}, "
                    f"got {shown}",
                )
            )
        return shape

    def _stat_axes(self, X) -> tuple:
        return tuple(range(X.ndim - 1))

    _param_axes = _stat_axes

    def _statistics(self, X, update: bool):
        xp = self._backend.xp
        axes = self._stat_axes(X)
        if not self.training:
            inv_std = 1.0 / xp.sqrt(self._buffers["running_var"] + self.eps)
            return (X - self._buffers["running_mean"]) * inv_std, inv_std, False
        mean = xp.mean(X, axis=axes)
        centred = X - mean
        var = xp.mean(centred * centred, axis=axes)
        if update:
            m = prod(X.shape[a] for a in axes)
            keep = 1.0 - self.momentum
            # functional writes (JAX arrays are immutable): new arrays, stored with set_buffer
            self.set_buffer(
                "running_mean", keep * self._buffers["running_mean"] + self.momentum * mean
            )
            self.set_buffer(
                "running_var",
                keep * self._buffers["running_var"] + (self.momentum * m / (m - 1)) * var,
            )
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        return centred * inv_std, inv_std, True

    # ---- ONNX
    def export_onnx(self, graph, value):
        """A ``BatchNormalization`` node (the evaluation-mode layer: running statistics)."""
        shape = tuple(value.shape)
        if len(shape) + 1 not in self._ranks or shape[-1] != self.num_features:
            raise ValueError(
                f"export_onnx: {self._label()} expects samples of shape "
                f"{self._layout.format(C=self.num_features).replace('(N, ', '(')}, "
                f"but its input samples have shape {shape}"
            )
        if len(shape) > 1:
            value = graph.channels_first(value)  # ONNX normalises axis 1
        if self.affine:
            scale, bias = graph.param(self, "weight"), graph.param(self, "bias")
        else:
            scale = graph.floats((1.0,) * self.num_features)
            bias = graph.floats((0.0,) * self.num_features)
        out = graph.node(
            "BatchNormalization",
            [
                value.name,
                scale,
                bias,
                graph.buffer(self, "running_mean"),
                graph.buffer(self, "running_var"),
            ],
            epsilon=self.eps,
        )
        return type(value)(out, shape, value.channels_first)

    # ---- PyTorch
    @classmethod
    def from_torch(cls, module: Any, converter: Any) -> _BatchNorm:
        """The layer with ``module``'s (a ``torch.nn.BatchNorm1d/2d``) parameters, running
        statistics and mode."""
        label = f"{cls.__name__}.from_torch"
        if not module.track_running_stats or module.running_mean is None:
            raise ValueError(
                f"{label}: {module!r} does not track running statistics "
                "(track_running_stats=False), which this layer always does"
            )
        if module.momentum is None:
            raise ValueError(
                f"{label}: {module!r} uses a cumulative average (momentum=None); only an "
                "exponential one (a momentum in [0, 1]) is supported"
            )
        if not converter.is_channel_dim(1):
            raise ValueError(
                f"{label}: {module!r} normalises PyTorch's axis 1, which here is not the "
                "channels (the library's last axis): (N, L, C) sequences are (N, C, L) for "
                "PyTorch's BatchNorm1d"
            )
        layer = cls(
            module.num_features, eps=module.eps, momentum=module.momentum, affine=module.affine
        )
        if module.affine:
            for key in ("weight", "bias"):
                layer.set_parameter(
                    key, _from_torch_tensor(layer, converter, getattr(module, key), key)
                )
        for key in ("running_mean", "running_var"):
            layer.set_buffer(key, _from_torch_tensor(layer, converter, getattr(module, key), key))
        layer.train(bool(module.training))
        return layer

    def to_torch(self, converter: Any) -> Any:
        """A ``torch.nn.BatchNorm1d/2d`` with this layer's parameters, running statistics and
        mode (PyTorch's channels-first layout keeps the per-channel vectors as they are)."""
        if not converter.is_channel_dim(1):
            raise ValueError(
                f"{type(self).__name__}.to_torch: PyTorch's {self._torch_name} normalises axis "
                "1, which here would not be the channels (the library's last axis): (N, L, C) "
                "sequences are (N, C, L) for PyTorch's BatchNorm1d"
            )
        module = getattr(converter.nn, self._torch_name)(
            self.num_features, eps=self.eps, momentum=self.momentum, affine=self.affine
        )
        for key in ("weight", "bias"):
            if key in self._parameters:
                converter.set(module, key, converter.tensor(self._parameters[key]))
        for key in ("running_mean", "running_var"):
            converter.set(module, key, converter.tensor(self._buffers[key]))
        module.train(self.training)
        return module


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of features ``(N, C)`` or of channels-last sequences ``(N, L, C)``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, per channel. In
    training mode ``mean`` and ``var`` are the batch's (over ``N``, and ``L``
    for sequences; biased variance) and the running statistics are updated:
    ``running_mean = (1 - momentum) * running_mean + momentum * mean`` and
    likewise ``running_var`` with the unbiased variance. In evaluation mode
    (``module.eval()``) the running statistics are used. PyTorch's
    ``nn.BatchNorm1d`` (Torch7's ``nn.BatchNormalization`` /
    ``nn.TemporalBatchNormalization``), channels last.

    Parameters
    ----------
    num_features : int
        The number of channels C.
    eps : float, default 1e-5
        Added to the variance before its square root (> 0).
    momentum : float in [0, 1], default 0.1
        Weight of the batch in the running statistics' update.
    affine : bool, default True
        Whether the layer has a learned ``weight`` and ``bias``.

    Shape
    -----
    ``(N, C)`` -> ``(N, C)``; ``(N, L, C)`` -> ``(N, L, C)``.

    Parameters (``_parameters``)
    ----------------------------
    weight ``(C,)`` initialised to ones and bias ``(C,)`` to zeros (when
    ``affine``).

    Buffers
    -------
    running_mean ``(C,)`` initialised to zeros, running_var ``(C,)`` to ones.

    Notes
    -----
    A forward pass in training mode changes the running statistics, once per
    use of the module (a module used twice in a network is updated twice per
    pass, as in PyTorch). Training needs more than one value per channel (a
    batch of one sample without positions is refused, as PyTorch does); an
    empty input is refused in both modes. A NaN in the input makes its
    channel's output and running statistics NaN, as in PyTorch.

    The public backward rules compute from the input they are given, with the
    statistics of the mode the module is in when they are called (the batch's
    in training mode, the running ones in evaluation mode); inside a
    container the statistics of the matching forward are reused.
    """

    _ranks = (2, 3)
    _layout = "(N, {C}) or (N, L, {C})"
    _torch_name = "BatchNorm1d"
    torch_names = ("BatchNorm1d",)


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of channels-last images ``(N, H, W, C)``.

    As :class:`BatchNorm1D`, with the statistics of each channel taken over
    ``N``, ``H`` and ``W``. PyTorch's ``nn.BatchNorm2d`` (Torch7's
    ``nn.SpatialBatchNormalization``), channels last: PyTorch's parameters
    and running statistics are the same per-channel vectors.

    Parameters
    ----------
    num_features : int
        The number of channels C.
    eps : float, default 1e-5
    momentum : float in [0, 1], default 0.1
    affine : bool, default True

    Shape
    -----
    ``(N, H, W, C)`` -> ``(N, H, W, C)``.

    Parameters (``_parameters``)
    ----------------------------
    weight ``(C,)`` initialised to ones and bias ``(C,)`` to zeros (when
    ``affine``).

    Buffers
    -------
    running_mean ``(C,)`` initialised to zeros, running_var ``(C,)`` to ones.

    Notes
    -----
    See :class:`BatchNorm1D`: training-mode forwards update the running
    statistics, once per use.
    """

    _ranks = (4,)
    _layout = "(N, H, W, {C})"
    _torch_name = "BatchNorm2d"
    torch_names = ("BatchNorm2d",)


def _shape_tuple(owner: str, value: object) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError(f"{owner}: normalized_shape must not be empty")
        return tuple(positive_int(owner, "normalized_shape entries", v) for v in value)
    return (positive_int(owner, "normalized_shape", value),)


class LayerNorm(_Normalization):
    """Layer normalisation over the trailing axes of each sample.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` where ``mean`` and
    ``var`` (biased) are taken, for each sample (and each leading position),
    over the last ``len(normalized_shape)`` axes, whose sizes must be
    ``normalized_shape``. The same in training and evaluation mode; no
    running statistics. PyTorch's ``nn.LayerNorm``.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The sizes of the trailing axes normalised over.
    eps : float, default 1e-5
        Added to the variance before its square root (> 0).
    elementwise_affine : bool, default True
        Whether the layer has a learned ``weight`` (and ``bias``).
    bias : bool, default True
        Whether the affine part has a bias (with ``elementwise_affine``).

    Shape
    -----
    ``(N, *, *normalized_shape)`` -> the same.

    Parameters (``_parameters``)
    ----------------------------
    weight ``normalized_shape`` initialised to ones and bias
    ``normalized_shape`` to zeros.

    Notes
    -----
    The library is channels last: a ``LayerNorm`` converted from PyTorch
    normalises the same axes only where both layouts agree on the trailing
    axes (features ``(N, C)`` and sequences ``(N, L, C)`` with
    ``normalized_shape=C``), not over the channels-first axes of a PyTorch
    convolution's output.
    """

    torch_names = ("LayerNorm",)

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.normalized_shape = _shape_tuple("LayerNorm", normalized_shape)
        parameter_shape("LayerNorm", self.normalized_shape)
        self.eps = _positive_eps("LayerNorm", eps)
        self.elementwise_affine = flag("LayerNorm", "elementwise_affine", elementwise_affine)
        self.bias = flag("LayerNorm", "bias", bias)
        if self.elementwise_affine:
            b = get_backend()
            shape = self.normalized_shape
            self.add_parameter("weight", b.xp.ones(shape, dtype=b.dtype, device=b.device))
            if self.bias:
                self.add_parameter("bias", b.xp.zeros(shape, dtype=b.dtype, device=b.device))

    def get_config(self) -> dict:
        return {
            "normalized_shape": list(self.normalized_shape),
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
            "bias": self.bias,
        }

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        shape = _shape_tuple("LayerNorm", config["normalized_shape"])
        if not config.get("elementwise_affine", True):
            return {}
        shapes = {"weight": shape}
        if config.get("bias", True):
            shapes["bias"] = shape
        return shapes

    def extra_repr(self) -> str:
        shape = self.normalized_shape
        text = str(shape[0]) if len(shape) == 1 else str(shape)
        if self.eps != 1e-5:
            text += f", eps={self.eps:g}"
        if not self.elementwise_affine:
            text += ", elementwise_affine=False"
        elif not self.bias:
            text += ", bias=False"
        return text

    def _layout(self) -> str:
        return "(N, *, " + ", ".join(map(str, self.normalized_shape)) + ")"

    def _fits(self, shape: tuple) -> bool:
        k = len(self.normalized_shape)
        return len(shape) > k and tuple(shape[-k:]) == self.normalized_shape

    def _check(self, X, method: str):
        # without parameters (elementwise_affine=False) only a real floating array is required
        X = self.check_array(X, method)
        if not self._fits(tuple(X.shape)):
            raise ValueError(
                self._error(
                    method, f"expected input of shape {self._layout()}, got {tuple(X.shape)}"
                )  # fmt: skip
            )
        return X

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if not self._fits(shape):
            shown = tuple("N" if s is None else s for s in shape)
            raise ValueError(
                self._error(
                    "output_shape", f"expected input of shape {self._layout()}, got {shown}"
                )  # fmt: skip
            )
        return shape

    def _stat_axes(self, X) -> tuple:
        return tuple(range(X.ndim - len(self.normalized_shape), X.ndim))

    def _param_axes(self, X) -> tuple:
        return tuple(range(X.ndim - len(self.normalized_shape)))

    def _statistics(self, X, update: bool):
        xp = backend_of(X).xp
        axes = self._stat_axes(X)
        mean = xp.mean(X, axis=axes, keepdims=True)
        centred = X - mean
        var = xp.mean(centred * centred, axis=axes, keepdims=True)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        return centred * inv_std, inv_std, True

    def _input_gradient(self, xhat, inv_std, batch, delta):
        xp = backend_of(delta).xp
        dxhat = delta * self._parameters["weight"] if "weight" in self._parameters else delta
        axes = self._stat_axes(delta)
        m = prod(self.normalized_shape)
        return _normalized_gradient(xp, xhat, inv_std, dxhat, axes, m)

    # ---- ONNX
    def export_onnx(self, graph, value):
        """A ``LayerNormalization`` node (opset 17) over the trailing axes."""
        shape = tuple(value.shape)
        if not (len(shape) >= len(self.normalized_shape) and self._fits((None, *shape))):
            raise ValueError(
                f"export_onnx: {self._label()} expects samples of shape "
                f"{self._layout().replace('(N, ', '(')}, but its input samples have shape {shape}"
            )
        value = graph.channels_last(value)  # the trailing axes of the library's layout
        k = len(self.normalized_shape)
        size = prod(self.normalized_shape)

        def constant(fill: float):
            return graph.floats((fill,) * size, self.normalized_shape)

        scale = graph.param(self, "weight") if "weight" in self._parameters else constant(1.0)
        bias = graph.param(self, "bias") if "bias" in self._parameters else constant(0.0)
        out = graph.node("LayerNormalization", [value.name, scale, bias], axis=-k, epsilon=self.eps)
        return type(value)(out, shape, False)

    # ---- PyTorch
    @classmethod
    def from_torch(cls, module: Any, converter: Any) -> LayerNorm:
        """The layer with ``module``'s (a ``torch.nn.LayerNorm``) shape and parameters."""
        if converter.channel_dim() == 1:
            raise ValueError(
                f"LayerNorm.from_torch: {module!r} follows a convolution or a pooling, whose "
                "output PyTorch lays out channels first: its trailing axes are not the "
                "library's (channels last)"
            )
        has_weight = module.weight is not None
        has_bias = getattr(module, "bias", None) is not None
        layer = cls(
            tuple(module.normalized_shape),
            eps=module.eps,
            elementwise_affine=bool(module.elementwise_affine),
            bias=has_bias or not has_weight,
        )
        for key, present in (("weight", has_weight), ("bias", has_bias)):
            if present:
                layer.set_parameter(
                    key, _from_torch_tensor(layer, converter, getattr(module, key), key)
                )
        layer.train(bool(module.training))
        return layer

    def to_torch(self, converter: Any) -> Any:
        """A ``torch.nn.LayerNorm`` with this layer's shape and parameters."""
        if converter.channel_dim() == 1:
            raise ValueError(
                f"{self._label()}.to_torch: it follows a convolution or a pooling, whose output "
                "PyTorch lays out channels first: the trailing axes would not be the same"
            )
        module = converter.nn.LayerNorm(
            self.normalized_shape,
            eps=self.eps,
            elementwise_affine=self.elementwise_affine,
            bias=self.bias,
        )
        for key in ("weight", "bias"):
            if key in self._parameters:
                converter.set(module, key, converter.tensor(self._parameters[key]))
        module.train(self.training)
        return module
