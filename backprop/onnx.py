"""Export a network to ONNX, so that it runs outside the library (ONNX Runtime, browsers...).

:func:`export_onnx` writes the evaluation-mode network as an ONNX graph
(opset 17, float32) with a dynamic batch axis ``N``. Parameters are brought to
the host with :func:`backprop.to_numpy` first, so a network exported from any
backend gives the same file, byte for byte.

The library's convolutions and poolings are channels-last (``(N, L, C)``,
``(N, H, W, C)``) while ONNX's are channels-first: the exporter inserts a
``Transpose`` before a run of convolutions, poolings and element-wise
activations and one after it, not around every layer. The library's pools
drop the tail that no window covers, which is ONNX's floor mode without
padding, so the output sizes agree.

Requires the ``onnx`` package (``pip install 'backprop[onnx]'``, which also
brings ONNX Runtime).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._checks import prod
from .activations import LogSoftmax, ReLU, Sigmoid, Softmax, TanH
from .backends import namespace_of, to_numpy
from .containers import Concat, Sequentiel
from .conv import Conv1D, Conv2D
from .dropout import Dropout
from .linear import Linear, TiedLinear
from .module import Module
from .pooling import AvgPool1D, AvgPool2D, MaxPool1D, MaxPool2D
from .shape import Flatten, Reshape, Transpose

if TYPE_CHECKING:
    import onnx

    from ._typing import FilePath

__all__ = ["OPSET", "export_onnx", "infer_input_shape"]

#: the ONNX operator set the graph is written for (ONNX Runtime >= 1.13 runs it)
OPSET = 17
#: IR version 8 goes with opset 17: older runtimes refuse files that claim a newer one
IR_VERSION = 8

_ELEMENTWISE = {ReLU: "Relu", TanH: "Tanh", Sigmoid: "Sigmoid"}
_ROW_WISE = {Softmax: "Softmax", LogSoftmax: "LogSoftmax"}
_CONVS = (Conv1D, Conv2D)
_POOLS = {
    MaxPool1D: "MaxPool",
    MaxPool2D: "MaxPool",
    AvgPool1D: "AveragePool",
    AvgPool2D: "AveragePool",
}


@dataclass(frozen=True)
class _Value:
    """A tensor of the graph: its name, the shape of one sample in the library's (channels-last)
    terms, and whether it is physically stored channels-first (``(N, C, *spatial)``)."""

    name: str
    shape: tuple
    channels_first: bool = False


class _Graph:
    """Nodes and initializers under construction.

    Names are deterministic: the file must not depend on the run.
    """

    def __init__(self, onnx, net: Module) -> None:
        self.helper = onnx.helper
        self.numpy_helper = onnx.numpy_helper
        self.TensorProto = onnx.TensorProto
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0
        self._params: dict[tuple, str] = {}
        self._paths = {id(m): path for path, m in net.named_modules()}

    def node(self, op: str, inputs: list, **attributes) -> str:
        self._count += 1
        output = f"{op.lower()}_{self._count}"
        self.nodes.append(
            self.helper.make_node(op, inputs, [output], name=f"{op}_{self._count}", **attributes)
        )
        return output

    def param(self, module: Module, key: str, axes: tuple | None = None) -> str:
        """The float32 initializer of parameter ``key`` (permuted by ``axes``), made once."""
        cache_key = (id(module), key, axes)
        name = self._params.get(cache_key)
        if name is not None:
            return name
        path = self._paths.get(id(module))
        base = f"{path}.{key}" if path else key
        name = base if path is not None else f"{base}_{len(self._params)}"
        if axes is not None:
            name += "_onnx_layout"
        host = to_numpy(module._parameters[key])
        xp = namespace_of(host)
        host = xp.astype(host, xp.float32)
        if axes is not None:
            host = xp.permute_dims(host, axes)
        self.initializers.append(self.numpy_helper.from_array(host, name))
        self._params[cache_key] = name
        return name

    def int64s(self, values: tuple) -> str:
        self._count += 1
        name = f"const_{self._count}"
        self.initializers.append(
            self.helper.make_tensor(name, self.TensorProto.INT64, [len(values)], list(values))
        )
        return name

    def channels_last(self, v: _Value) -> _Value:
        if not v.channels_first:
            return v
        rank = len(v.shape) + 1
        return _Value(self.node("Transpose", [v.name], perm=[0, *range(2, rank), 1]), v.shape)

    def channels_first(self, v: _Value) -> _Value:
        if v.channels_first:
            return v
        rank = len(v.shape) + 1
        return _Value(
            self.node("Transpose", [v.name], perm=[0, rank - 1, *range(1, rank - 1)]), v.shape, True
        )


def _fail(module: Module, expected: str, shape: tuple):
    raise ValueError(
        f"export_onnx: {module._label()} expects {expected}, "
        f"but its input samples have shape {shape}"
    )


def _export(g: _Graph, m: Module, v: _Value) -> _Value:
    """Append ``m``'s nodes after ``v``; returns the output value."""
    t = type(m)  # the exact type: a subclass may compute something else
    if t is Sequentiel:
        for child in m.children():
            v = _export(g, child, v)
        return v
    if t in _ELEMENTWISE:
        return _Value(g.node(_ELEMENTWISE[t], [v.name]), v.shape, v.channels_first)
    if t is Dropout:
        # the exported network is the evaluation-mode one, where dropout is the identity
        return _Value(g.node("Identity", [v.name]), v.shape, v.channels_first)
    if t in _CONVS or t in _POOLS:
        return _windowed(g, m, v)
    v = g.channels_last(v)
    if t in _ROW_WISE:
        if not v.shape:
            _fail(m, "samples with at least one axis", v.shape)
        return _Value(g.node(_ROW_WISE[t], [v.name], axis=-1), v.shape)
    if t is Linear or t is TiedLinear:
        return _gemm(g, m, v)
    if t is Flatten or t is Reshape or t is Transpose:
        return _reshaped(g, m, v)
    if t is Concat:
        return _concat(g, m, v)
    names = sorted(c.__name__ for c in (*_ELEMENTWISE, *_ROW_WISE, *_CONVS, *_POOLS))
    names += [
        "Concat",
        "Dropout",
        "Flatten",
        "Linear",
        "Reshape",
        "Sequentiel",
        "TiedLinear",
        "Transpose",
    ]
    raise ValueError(
        f"export_onnx: cannot export {m._label()} (type {t.__module__}.{t.__qualname__}): "
        f"ONNX export knows the library's own layers only: {', '.join(sorted(names))}"
    )


def _reshaped(g: _Graph, m, v: _Value) -> _Value:
    t = type(m)
    if t is Flatten:
        if not v.shape:
            _fail(m, "samples with at least one axis", v.shape)
        return _Value(g.node("Flatten", [v.name], axis=1), (prod(v.shape),))
    if t is Reshape:
        if prod(v.shape) != prod(m.shape):
            _fail(m, f"samples of {prod(m.shape)} values", v.shape)
        # 0 copies the batch size from the input: the batch axis stays dynamic
        return _Value(g.node("Reshape", [v.name, g.int64s((0, *m.shape))]), tuple(m.shape))
    if len(v.shape) != len(m.axes):
        _fail(m, f"samples with {len(m.axes)} axes", v.shape)
    shape = tuple(v.shape[a] for a in m.axes)
    return _Value(g.node("Transpose", [v.name], perm=[0, *(a + 1 for a in m.axes)]), shape)


def _gemm(g: _Graph, m, v: _Value) -> _Value:
    t = type(m)
    if v.shape != (m.in_features,):
        _fail(m, f"samples of shape ({m.in_features},)", v.shape)
    inputs = [v.name, g.param(m.linear, "weight") if t is TiedLinear else g.param(m, "weight")]
    if "bias" in m._parameters:
        inputs.append(g.param(m, "bias"))
    # TiedLinear multiplies by the transpose of the shared weight: one initializer serves both
    return _Value(g.node("Gemm", inputs, transB=int(t is TiedLinear)), (m.out_features,))


def _windowed(g: _Graph, m, v: _Value) -> _Value:
    d = len(m.kernel)
    conv = type(m) in _CONVS
    channels = str(m.chan_in) if conv else "C"
    layout = f"(L, {channels})" if d == 1 else f"(H, W, {channels})"
    if len(v.shape) != d + 1 or (conv and v.shape[-1] != m.chan_in):
        _fail(m, f"samples of shape {layout}", v.shape)
    padded = m._padded_spatial((None, *v.shape))
    if any(s < k for s, k in zip(padded, m.kernel)):
        _fail(
            m,
            f"samples of shape {layout} with spatial sizes of at least {m.kernel} once padded",
            v.shape,
        )
    attributes = {"kernel_shape": list(m.kernel), "strides": list(m.stride)}
    if m._padded():
        # ONNX pads: every axis's start, then every axis's end; the mean counts the padding
        attributes["pads"] = [lo for lo, _ in m.pads] + [hi for _, hi in m.pads]
        if type(m) in (AvgPool1D, AvgPool2D):
            attributes["count_include_pad"] = 1
    v = g.channels_first(v)
    if conv:
        # (*kernel, C_in, C_out) -> ONNX's (C_out, C_in, *kernel)
        inputs = [v.name, g.param(m, "weight", (d + 1, d, *range(d)))]
        if "bias" in m._parameters:
            inputs.append(g.param(m, "bias"))
        out = g.node("Conv", inputs, **attributes)
    else:
        # floor mode: the windows that fit, as in the library
        out = g.node(_POOLS[type(m)], [v.name], **attributes)
    return _Value(out, tuple(m.output_shape((None, *v.shape))[1:]), True)


def _batch_shape(shape: tuple) -> str:
    return "(" + ", ".join(map(str, ("N", *shape))) + ")"


def _concat(g: _Graph, m: Concat, v: _Value) -> _Value:
    outs = [g.channels_last(_export(g, b, v)) for b in m.children()]
    rank = len(outs[0].shape) + 1
    axis = m.axis % rank if -rank <= m.axis < rank else None
    if axis in (None, 0) or any(len(o.shape) != rank - 1 for o in outs):
        shapes = ", ".join(_batch_shape(o.shape) for o in outs)
        raise ValueError(
            f"export_onnx: {m._label()} cannot join branch outputs {shapes} along axis {m.axis}"
        )
    for o in outs:
        if any(o.shape[i - 1] != outs[0].shape[i - 1] for i in range(1, rank) if i != axis):
            shapes = ", ".join(_batch_shape(o.shape) for o in outs)
            raise ValueError(
                f"export_onnx: {m._label()}: branch outputs {shapes} differ outside axis {m.axis}"
            )
    shape = list(outs[0].shape)
    shape[axis - 1] = sum(o.shape[axis - 1] for o in outs)
    return _Value(g.node("Concat", [o.name for o in outs], axis=axis), tuple(shape))


def _first_layer(net: Module) -> Module:
    m = net
    while type(m) in (Sequentiel, Concat) and m.children():
        m = m.children()[0]
    return m


def infer_input_shape(net: Module) -> tuple | None:
    """The sample shape ``net`` takes when its first layer fixes it (Linear, Reshape), else None.

    A network that starts with a convolution or a pooling accepts any length
    (or image size) large enough for its kernels: there is no single answer.
    """
    m = _first_layer(net)
    if type(m) in (Linear, TiedLinear):
        return (m.in_features,)
    if type(m) is Reshape:
        return (prod(m.shape),)
    return None


def _sample_shape(net: Module, input_shape) -> tuple:
    if input_shape is None:
        shape = infer_input_shape(net)
        if shape is None:
            raise ValueError(
                f"export_onnx: the network starts with {_first_layer(net)._label()}, which does "
                "not fix the input shape; pass input_shape (--input-shape on the command line), "
                "the shape of one sample without the batch axis, e.g. (64, 1)"
            )
        return shape
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    if shape and shape[0] is None:  # (None, ...) written with the batch axis
        shape = shape[1:]
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(
            "export_onnx: input_shape must be the shape of one sample (positive ints, "
            f"no batch axis), e.g. (64,) or (8, 8, 1); got {input_shape!r}"
        )
    return shape


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "export_onnx needs the onnx package: pip install 'backprop[onnx]'"
        ) from None
    return onnx


def export_onnx(
    net: Module, path: FilePath | None, input_shape: int | tuple[int, ...] | None = None
) -> onnx.ModelProto:
    """Write ``net`` (in evaluation mode) to ``path`` as an ONNX model; returns the ``ModelProto``.

    Parameters
    ----------
    net : Module
        A network made of the library's layers: Linear, TiedLinear, TanH,
        Sigmoid, ReLU, Softmax, LogSoftmax, Dropout (exported as the
        identity), Conv1D, Conv2D, MaxPool1D/2D, AvgPool1D/2D, Flatten,
        Reshape, Transpose, Concat and nested Sequentiel. Any other module
        (a user's own layer, or a subclass of these) is a ValueError naming it.
    path : str, path or None
        Where to write the model (atomically); None only returns it.
    input_shape : int or tuple of int, optional
        Shape of one sample, without the batch axis: ``(64,)`` for the MLP,
        ``(64, 1)`` for a Conv1D on sequences of 64 values. Inferred when the
        network starts with a Linear or a Reshape.

    Shape
    -----
    The graph's input ``input`` is ``(N, *input_shape)`` float32 with a
    dynamic batch axis ``N``; its output ``output`` is ``(N, *output_shape)``.

    Notes
    -----
    Parameters are written as float32 whatever the network's dtype, and
    tied weights (a TiedLinear and its Linear) are stored once. The model
    passes ``onnx.checker.check_model(model, full_check=True)``.

    >>> export_onnx(net, "mlp.onnx", (64,))        # doctest: +SKIP
    """
    if not isinstance(net, Module):
        raise TypeError(f"export_onnx: expected a Module, got {type(net).__name__}")
    shape = _sample_shape(net, input_shape)
    onnx = _import_onnx()
    from . import __version__

    g = _Graph(onnx, net)
    out = g.channels_last(_export(g, net, _Value("input", shape)))
    if (
        not g.nodes or g.nodes[-1].output[0] != out.name
    ):  # an empty network: the output must come from a node
        g.node("Identity", [out.name])
    g.nodes[-1].output[0] = "output"  # the last node feeds no other
    helper, T = onnx.helper, onnx.TensorProto
    graph = helper.make_graph(
        g.nodes,
        "backprop",
        [helper.make_tensor_value_info("input", T.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info("output", T.FLOAT, ["N", *out.shape])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="backprop",
        producer_version=__version__,
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        _write_atomic(path, model.SerializeToString())
    return model


def _write_atomic(path, data: bytes) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
