"""Modules made of modules: :class:`Sequentiel`, :class:`Concat`, :class:`Sum`,
:class:`Residual`, and their base :class:`Container`.

What a container keeps between forward and backward (the rule is written out
in ``docs/architecture.md``): the public :meth:`~Container.forward` works on
a private copy of the caller's input and hands back a copy of the output, so
every array the children keep is the library's own. Backward must then be
given the very input object of the last forward; it computes every gradient
at the values of that forward (changing the input in place in between has no
effect) and raises a clear error, never re-running forward behind the
caller's back, when it cannot: another input, no forward yet, or parameters
written since (an update, ``load_state_dict``, ``to``).

Inside a container or the training step, the internal ``chain_forward`` /
``chain_backward`` pair skips both copies: no user code runs between them.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

from .backends import backend_of, kind_of
from .module import _STRUCTURE, Module, _fresh_copy

if TYPE_CHECKING:
    from ._typing import Array

__all__ = ["Concat", "Container", "Residual", "Sequential", "Sequentiel", "Sum"]


#: where summary() records each call's output shape, by path (None: not recording)
_CALLS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("backprop_calls", default=None)


def _check_module(owner: str, m) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{owner}: expected a Module, got {type(m).__name__}")
    return m


class Container(Module):
    """Base class of containers: modules made of child modules, registered with
    :meth:`~Module.add_module`.

    A subclass writes :meth:`~Module.chain_forward` and
    :meth:`~Module.chain_backward` in terms of its children's
    ``chain_forward`` / ``chain_backward``, calls :meth:`remember` at the end
    of ``chain_forward`` and :meth:`check_fresh` at the start of
    ``chain_backward``. This class provides the public ``forward`` and
    backward rules on top (the copies and checks of the state rule), as it
    does for :class:`Sequentiel`, :class:`Concat`, :class:`Sum` and
    :class:`Residual`.
    """

    def __init__(self) -> None:
        super().__init__()
        # (the caller's input object, our copy of it) of the last public forward
        self._public = None
        # per call (the place in the network, see Module._call_path): (input, parameter versions,
        # what the container kept) of the last chain_forward there
        self._calls: dict = {}
        self._facts = None  # (structure version, modules with parameters)

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return {}  # no parameters, no buffers

    def clear_cache(self) -> None:
        self._public = None
        self._calls = {}

    def _param_modules(self) -> list[Module]:
        facts = self._facts
        if facts is None or facts[0] != _STRUCTURE[0]:
            mods = [
                m
                for m in self.unique_modules()
                if not isinstance(m, Container) and m.has_parameters()
            ]
            facts = self._facts = (_STRUCTURE[0], mods)
        return facts[1]

    def has_parameters(self) -> bool:
        return bool(self._param_modules())

    @property
    def backend(self):
        """The backend of the parameters of the network (its first module with parameters)."""
        for m in self._param_modules():
            m._ensure_backend()
            if m.backend is not None:
                return m.backend
        return None

    def input_shape(self) -> tuple[int, ...] | None:
        # every container here gives its input to its first child
        return self._children[0].input_shape() if self._children else None

    def child_forward(self, index: int, X):
        """``chain_forward`` of child ``index`` on ``X``, as this call's ``index``-th place.

        A module used at several places of a network keeps what each call
        needs apart (a dropout mask per place): call children through this
        method and :meth:`child_backward`, never their methods directly.
        """
        child = self._children[index]
        child._call_path = (*self._call_path, index)
        Y = child.chain_forward(X)
        calls = _CALLS.get()
        if calls is not None:  # summary() is recording the shapes
            calls[".".join(map(str, child._call_path))] = tuple(Y.shape)
        return Y

    def child_backward(
        self, index: int, input, delta, input_grad: bool = True, param_grad: bool = True
    ):
        """``chain_backward`` of child ``index``, at the place of its :meth:`child_forward`."""
        child = self._children[index]
        child._call_path = (*self._call_path, index)
        return child.chain_backward(input, delta, input_grad, param_grad)

    def remember(self, X, kept=None) -> None:
        """Record, at the end of ``chain_forward``, its input ``X`` and what the container keeps
        for backward (``kept``); :meth:`check_fresh` gives ``kept`` back."""
        self._calls[self._call_path] = (X, [m._version for m in self._param_modules()], kept)

    def check_fresh(self, input, method: str):
        """What :meth:`remember` kept, unless ``input`` is not the input of the last forward at
        this place, or a parameter changed since: then a ValueError that says what to do."""
        call = self._calls.get(self._call_path)
        if call is None or call[0] is not input:
            raise ValueError(
                self._error(
                    method,
                    "backward needs the input of the last forward pass (that array, or one with "
                    "the same shape, dtype and values): call forward(input) first (backward never "
                    "re-runs forward: a Dropout would draw a new mask)",
                )
            )
        if call[1] != [m._version for m in self._param_modules()]:
            raise ValueError(
                self._error(
                    method,
                    "parameters changed since the last forward pass (an update, load_state_dict or "
                    "to()): call forward(input) again before backward",
                )
            )
        return call[2]

    def forward(self, X: Array) -> Array:
        try:
            b = backend_of(X)
            # the children may keep it; the caller may change X (a tensor's autograd graph stays
            # with the caller)
            own = b.copy(b.detached(X))
        except TypeError as exc:
            raise TypeError(self._error("forward", f"input: {exc}")) from None
        self._call_path = ()
        Y = self.chain_forward(own)
        self._public = (X, own)
        return _fresh_copy(Y)  # the caller may change it; the children may keep it

    def _own_input(self, input, method: str):
        self._call_path = ()
        public = self._public
        if public is not None and public[0] is not input and self._same_values(input, public[1]):
            return public[1]  # a fresh slice of the same rows: the values forward used
        if public is None or public[0] is not input:
            self.check_fresh(None, method)
        return public[1]

    def _same_values(self, input, own) -> bool:
        """Whether ``input`` (not the object forward received) holds exactly the values forward
        computed from: same library, device, shape, dtype and values (one comparison pass)."""
        try:
            kind = kind_of(input)
        except TypeError:
            return False
        if kind is not kind_of(own) or kind.device_of(input) != kind.device_of(own):
            return False
        if tuple(input.shape) != tuple(own.shape) or input.dtype != own.dtype:
            return False
        return bool(kind.xp.all(input == own))

    def backward(self, input: Array, delta: Array, *, input_grad: bool = True) -> Array | None:
        return self.chain_backward(self._own_input(input, "backward"), delta, input_grad)

    def backward_update_gradient(self, input: Array, delta: Array) -> None:
        self.chain_backward(self._own_input(input, "backward_update_gradient"), delta, False)

    def backward_delta(self, input: Array, delta: Array) -> Array:
        return self.chain_backward(
            self._own_input(input, "backward_delta"), delta, True, param_grad=False
        )


class Sequentiel(Container):
    """Modules in series: the output of each is the input of the next.

    Itself a :class:`Module`, so networks nest to any depth. Backward runs
    the children's rules in reverse, and computes an input gradient only
    where one is needed: nothing before the first layer with parameters
    (a ``Reshape``, the first ``Conv1D``'s input) gets one unless asked for.

    :meth:`backward` (both rules in one reverse sweep) is the efficient call;
    calling ``backward_update_gradient`` then ``backward_delta`` gives the
    same result with the deltas computed twice.

    >>> net = Sequentiel(Linear(64, 100), TanH(), Linear(100, 10))
    >>> net.add(LogSoftmax())
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        self._modules: list[Module] = self._children
        for m in modules:
            self.add(m)

    def add(self, module: Module) -> Sequentiel:
        """Append a module; returns self so calls chain."""
        self.add_module(_check_module("Sequentiel.add", module))
        return self

    @classmethod
    def from_config(cls, config: dict, children: list) -> Sequentiel:
        return cls(*children)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequentiel(*self._modules[index])
        return self._modules[index]

    def __iter__(self):
        return iter(self._modules)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        for m in self._modules:
            input_shape = m.output_shape(input_shape)
        return tuple(input_shape)

    def export_onnx(self, graph, value):
        for m in self._modules:
            value = graph.export(m, value)
        return value

    torch_names = ("Sequential",)

    def to_torch(self, converter):
        return converter.nn.Sequential(*(converter.export(m) for m in self._modules))

    @classmethod
    def from_torch(cls, module, converter) -> Sequentiel:
        return cls(*(converter.convert(child) for child in module))

    def chain_forward(self, X):
        inputs = []
        for i in range(len(self._modules)):
            inputs.append(X)
            X = self.child_forward(i, X)
        self.remember(inputs[0] if inputs else None, inputs)
        return X

    def _first_with_parameters(self) -> int:
        for i, m in enumerate(self._modules):
            if m.has_parameters():
                return i
        return len(self._modules)

    def chain_backward(self, input, delta, input_grad: bool, param_grad: bool = True):
        inputs = self.check_fresh(input, "backward")
        first = self._first_with_parameters() if param_grad else len(self._modules)
        for i in range(len(self._modules) - 1, -1, -1):
            # an input gradient is needed if the caller wants it or a layer before this one has
            # parameters
            need = input_grad or i > first
            delta = self.child_backward(i, inputs[i], delta, need, param_grad)
            if not need:
                break
        return delta if input_grad else None


#: English spelling of :class:`Sequentiel`.
Sequential = Sequentiel


class Concat(Container):
    """Parallel branches on the same input, outputs concatenated (Torch7's ``nn.Concat``).

    Every branch receives the same input; their outputs, equal in shape
    except along ``axis``, are joined along ``axis`` (an axis of the output,
    batch included: ``axis=1`` or ``-1`` for features; never 0, the batch).
    Backward splits delta along ``axis`` and sums the branches' input gradients.

    >>> Concat(Sequentiel(Conv1D(3, 1, 8), Flatten()),
    ...        Sequentiel(Transpose((1, 0)), Conv1D(3, 8, 8), Flatten()), axis=1)
    """

    def __init__(self, *branches: Module, axis: int = -1) -> None:
        super().__init__()
        if not branches:
            raise ValueError("Concat: expected at least one branch")
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise ValueError(
                f"Concat: axis must be a non-zero int (axis 0 is the batch), got {axis!r}"
            )
        self._branches = self._children
        for b in branches:
            self.add_module(_check_module("Concat", b))
        self.axis = axis

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def get_config(self) -> dict:
        return {"axis": self.axis}

    @classmethod
    def from_config(cls, config: dict, children: list) -> Concat:
        return cls(*children, **config)

    def _axis(self, ndim: int, method: str) -> int:
        if not -ndim <= self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(
                self._error(
                    method,
                    f"axis {self.axis} is not a non-batch axis of the branch outputs, which have "
                    f"{ndim} axes",
                )
            )
        return self.axis % ndim

    def _joined_shape(self, shapes: list, method: str) -> tuple:
        first = shapes[0]
        axis = self._axis(len(first), method)
        for shape in shapes:
            if len(shape) != len(first) or any(
                shape[i] != first[i] for i in range(len(shape)) if i != axis
            ):
                shown = ", ".join(str(tuple(s)) for s in shapes)
                raise ValueError(
                    self._error(
                        method,
                        f"branch outputs must agree except along axis {self.axis}, got {shown}",
                    )
                )
        joined = list(first)
        joined[axis] = sum(s[axis] for s in shapes)
        return tuple(joined)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self._joined_shape([b.output_shape(input_shape) for b in self._branches], "forward")

    def export_onnx(self, graph, value):
        outs = [graph.channels_last(graph.export(b, value)) for b in self._branches]
        rank = len(outs[0].shape) + 1
        axis = self.axis % rank if -rank <= self.axis < rank else None
        shapes = ", ".join("(" + ", ".join(map(str, ("N", *o.shape))) + ")" for o in outs)
        if axis in (None, 0) or any(len(o.shape) != rank - 1 for o in outs):
            raise ValueError(
                f"export_onnx: {self._label()} cannot join branch outputs {shapes} along axis "
                f"{self.axis}"
            )
        for o in outs:
            if any(o.shape[i - 1] != outs[0].shape[i - 1] for i in range(1, rank) if i != axis):
                raise ValueError(
                    f"export_onnx: {self._label()}: branch outputs {shapes} differ outside axis "
                    f"{self.axis}"
                )
        shape = list(outs[0].shape)
        shape[axis - 1] = sum(o.shape[axis - 1] for o in outs)
        return type(value)(graph.node("Concat", [o.name for o in outs], axis=axis), tuple(shape))

    def chain_forward(self, X):
        outs = [self.child_forward(i, X) for i in range(len(self._branches))]
        self._joined_shape([tuple(o.shape) for o in outs], "forward")
        axis = self.axis % outs[0].ndim
        self.remember(X, [o.shape[axis] for o in outs])
        return backend_of(outs[0]).xp.concat(outs, axis=axis)

    def chain_backward(self, input, delta, input_grad: bool, param_grad: bool = True):
        sizes = self.check_fresh(input, "backward")
        axis = self._axis(delta.ndim, "backward")
        if delta.shape[axis] != sum(sizes):
            raise ValueError(
                self._error(
                    "backward",
                    f"expected delta with {sum(sizes)} entries along axis {self.axis}, got shape "
                    f"{tuple(delta.shape)}",
                )
            )
        total, start = None, 0
        for branch, size in enumerate(sizes):
            index = tuple(
                slice(start, start + size) if i == axis else slice(None) for i in range(delta.ndim)
            )
            start += size
            g = self.child_backward(branch, input, delta[index], input_grad, param_grad)
            if input_grad:
                total = g if total is None else total + g
        return total


class Sum(Container):
    """Parallel branches on the same input, outputs added (Torch7's ``ConcatTable`` followed by
    ``CAddTable``).

    Every branch receives the input; their outputs must have the same
    shape. Backward gives every branch the whole delta and sums their input
    gradients.

    Shape
    -----
    ``(N, *)`` -> the branches' common output shape.

    >>> Sum(Linear(64, 32), Sequentiel(Linear(64, 32), ReLU()))
    """

    def __init__(self, *branches: Module) -> None:
        super().__init__()
        if not branches:
            raise ValueError("Sum: expected at least one branch")
        for b in branches:
            self.add_module(_check_module("Sum", b))

    @classmethod
    def from_config(cls, config: dict, children: list) -> Sum:
        return cls(*children)

    def _common_shape(self, shapes: list, method: str) -> tuple:
        if any(tuple(s) != tuple(shapes[0]) for s in shapes):
            shown = ", ".join(str(tuple(s)) for s in shapes)
            raise ValueError(
                self._error(method, f"branch outputs must have the same shape, got {shown}")
            )
        return tuple(shapes[0])

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self._common_shape([b.output_shape(input_shape) for b in self._children], "forward")

    def export_onnx(self, graph, value):
        outs = [graph.channels_last(graph.export(b, value)) for b in self._children]
        self._common_shape([o.shape for o in outs], "export_onnx")
        total = outs[0]
        for o in outs[1:]:
            total = type(value)(graph.node("Add", [total.name, o.name]), o.shape)
        return total

    def chain_forward(self, X):
        outs = [self.child_forward(i, X) for i in range(len(self._children))]
        self._common_shape([o.shape for o in outs], "forward")
        total = outs[0]
        for o in outs[1:]:
            total = total + o  # a new array: the branches may keep their outputs
        self.remember(X, tuple(total.shape))
        return total

    def chain_backward(self, input, delta, input_grad: bool, param_grad: bool = True):
        shape = self.check_fresh(input, "backward")
        if tuple(delta.shape) != shape:
            raise ValueError(
                self._error(
                    "backward",
                    f"expected delta of the output's shape {shape}, got {tuple(delta.shape)}",
                )
            )
        total = None
        for i in range(len(self._children)):
            g = self.child_backward(i, input, delta, input_grad, param_grad)
            if input_grad:
                total = g if total is None else total + g
        return total


class Residual(Container):
    """A residual connection: ``Y = X + module(X)`` (He et al., 2016).

    ``module`` must keep the shape of its input. Backward adds delta (the
    identity path) to the module's input gradient.

    Shape
    -----
    ``(N, *)`` -> same.

    >>> Residual(Sequentiel(Linear(64, 64), ReLU()))
    """

    def __init__(self, module: Module) -> None:
        super().__init__()
        self.add_module(_check_module("Residual", module))

    @classmethod
    def from_config(cls, config: dict, children: list) -> Residual:
        if len(children) != 1:
            raise ValueError(f"Residual: expected one child, got {len(children)}")
        return cls(children[0])

    def _same(self, shape, out, method: str) -> None:
        if tuple(out) != tuple(shape):
            raise ValueError(
                self._error(
                    method,
                    f"the module must keep its input's shape {tuple(shape)}, but gave {tuple(out)}",
                )
            )

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._same(input_shape, self._children[0].output_shape(input_shape), "forward")
        return tuple(input_shape)

    def export_onnx(self, graph, value):
        value = graph.channels_last(value)
        out = graph.channels_last(graph.export(self._children[0], value))
        if out.shape != value.shape:
            graph.fail(self, f"a module that keeps the sample shape {value.shape}", out.shape)
        return type(value)(graph.node("Add", [value.name, out.name]), value.shape)

    def chain_forward(self, X):
        out = self.child_forward(0, X)
        self._same(X.shape, out.shape, "forward")
        self.remember(X)
        return X + out

    def chain_backward(self, input, delta, input_grad: bool, param_grad: bool = True):
        self.check_fresh(input, "backward")
        if tuple(delta.shape) != tuple(input.shape):
            raise ValueError(
                self._error(
                    "backward",
                    f"expected delta of the output's shape {tuple(input.shape)}, got "
                    f"{tuple(delta.shape)}",
                )
            )
        g = self.child_backward(0, input, delta, input_grad, param_grad)
        return delta + g if input_grad else None
