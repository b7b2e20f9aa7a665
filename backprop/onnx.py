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

Requires the ``onnx`` package (``pip install 'backprop-nn[onnx]'``, which also
brings ONNX Runtime).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._install import install_hint
from .backends import namespace_of, to_numpy
from .backends.npz import _short_name
from .module import Module

if TYPE_CHECKING:
    import onnx

    from ._typing import FilePath

__all__ = ["OPSET", "OnnxGraph", "OnnxValue", "export_onnx", "infer_input_shape"]

#: the ONNX operator set the graph is written for (ONNX Runtime >= 1.13 runs it)
OPSET = 17
#: IR version 8 goes with opset 17: older runtimes refuse files that claim a newer one
IR_VERSION = 8


@dataclass(frozen=True)
class OnnxValue:
    """A tensor of the graph: its name, the shape of one sample in the library's (channels-last)
    terms, and whether it is physically stored channels-first (``(N, C, *spatial)``).

    What a layer's ``export_onnx(graph, value)`` receives and returns.
    """

    name: str
    shape: tuple
    channels_first: bool = False


class OnnxGraph:
    """Nodes and initializers under construction: what a layer's ``export_onnx(graph, value)``
    appends its nodes to.

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
        """The float32 initializer of parameter ``key`` of ``module`` (permuted by ``axes``),
        made once."""
        return self._initializer(module, key, module._parameters[key], axes)

    def buffer(self, module: Module, key: str, axes: tuple | None = None) -> str:
        """The float32 initializer of buffer ``key`` of ``module`` (permuted by ``axes``)."""
        return self._initializer(module, key, module._buffers[key], axes)

    def _initializer(self, module: Module, key: str, array, axes) -> str:
        cache_key = (id(module), key, axes)
        name = self._params.get(cache_key)
        if name is not None:
            return name
        path = self._paths.get(id(module))
        base = f"{path}.{key}" if path else key
        name = base if path is not None else f"{base}_{len(self._params)}"
        if axes is not None:
            name += "_onnx_layout"
        host = to_numpy(array)
        xp = namespace_of(host)
        host = xp.astype(host, xp.float32)
        if axes is not None:
            host = xp.permute_dims(host, axes)
        self.initializers.append(self.numpy_helper.from_array(host, name))
        self._params[cache_key] = name
        return name

    def floats(self, values: tuple, shape: tuple | None = None) -> str:
        """A float32 constant initializer holding ``values`` (shaped ``shape``, 1-D by default)."""
        self._count += 1
        name = f"const_{self._count}"
        values = list(values)
        self.initializers.append(
            self.helper.make_tensor(
                name, self.TensorProto.FLOAT, list(shape or (len(values),)), values
            )
        )
        return name

    def export(self, module: Module, value: OnnxValue) -> OnnxValue:
        """Append ``module``'s nodes after ``value`` (its ``export_onnx``); returns the output.

        A module whose class computes its forward pass in a class below the one
        that wrote its ``export_onnx`` (a subclass that changed forward but not
        the export) is refused: the file would compute something else.
        """
        cls = type(module)
        if not cls._defines_at_least_as_late("export_onnx", "forward", "chain_forward"):
            raise ValueError(
                f"export_onnx: cannot export {module._label()} (type {cls.__module__}."
                f"{cls.__qualname__}): it defines its own forward but not export_onnx"
            )
        return module.export_onnx(self, value)

    def fail(self, module: Module, expected: str, shape: tuple):
        """Raise the ValueError that says ``module`` expects ``expected`` but got samples of
        ``shape``."""
        raise ValueError(
            f"export_onnx: {module._label()} expects {expected}, "
            f"but its input samples have shape {shape}"
        )

    def int64s(self, values: tuple) -> str:
        self._count += 1
        name = f"const_{self._count}"
        self.initializers.append(
            self.helper.make_tensor(name, self.TensorProto.INT64, [len(values)], list(values))
        )
        return name

    def channels_last(self, v: OnnxValue) -> OnnxValue:
        if not v.channels_first:
            return v
        rank = len(v.shape) + 1
        return OnnxValue(self.node("Transpose", [v.name], perm=[0, *range(2, rank), 1]), v.shape)

    def channels_first(self, v: OnnxValue) -> OnnxValue:
        if v.channels_first:
            return v
        rank = len(v.shape) + 1
        return OnnxValue(
            self.node("Transpose", [v.name], perm=[0, rank - 1, *range(1, rank - 1)]), v.shape, True
        )


def _first_layer(net: Module) -> Module:
    m = net
    while m.children():
        m = m.children()[0]
    return m


def infer_input_shape(net: Module) -> tuple | None:
    """The sample shape ``net`` takes when its first layer fixes it (Linear, Reshape), else None.

    A network that starts with a convolution or a pooling accepts any length
    (or image size) large enough for its kernels: there is no single answer.
    """
    return net.input_shape()


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
        raise ImportError(f"export_onnx needs the onnx package: {install_hint('onnx')}") from None
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

    g = OnnxGraph(onnx, net)
    out = g.channels_last(g.export(net, OnnxValue("input", shape)))
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
    # the temporary name is cut to the file system's limit: a legal long name must not fail
    prefix = f".{_short_name(os.path.basename(path), directory)}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
