"""Modules made of modules: :class:`Sequentiel` and :class:`Concat`.

What a container keeps between forward and backward (the rule is written out
in ``docs/architecture.md``): the public :meth:`~_Container.forward` works on
a private copy of the caller's input and hands back a copy of the output, so
every array the children keep is the library's own. Backward must then be
given the very input object of the last forward; it computes every gradient
at the values of that forward (changing the input in place in between has no
effect) and raises a clear error, never re-running forward behind the
caller's back, when it cannot: another input, no forward yet, or parameters
written since (an update, ``load_state_dict``, ``to``).

Inside a container or the training step, the internal ``_forward`` /
``_backward`` pair skips both copies: no user code runs between them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backends import backend_of
from .module import _STRUCTURE, Module, _fresh_copy, _structure_changed

if TYPE_CHECKING:
    from ._typing import Array

__all__ = ["Concat", "Sequential", "Sequentiel"]


def _check_module(owner: str, m) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{owner}: expected a Module, got {type(m).__name__}")
    return m


class _Container(Module):
    """The public pair of a container, built on its internal ``_forward`` / ``_backward``."""

    def __init__(self) -> None:
        super().__init__()
        # (the caller's input object, our copy of it) of the last public forward
        self._public = None
        self._last_input = None  # the input of the last _forward
        self._versions = None  # parameter versions at the last _forward
        self._facts = None  # (structure version, modules with parameters)

    def _clear_cache(self) -> None:
        self._public = self._last_input = self._versions = None

    def _param_modules(self) -> list[Module]:
        facts = self._facts
        if facts is None or facts[0] != _STRUCTURE[0]:
            mods = [
                m
                for m in self.unique_modules()
                if not isinstance(m, _Container) and m._has_parameters()
            ]
            facts = self._facts = (_STRUCTURE[0], mods)
        return facts[1]

    def _has_parameters(self) -> bool:
        return bool(self._param_modules())

    def _remember(self, X) -> None:
        self._last_input = X
        self._versions = [m._version for m in self._param_modules()]

    def _check_fresh(self, input, method: str) -> None:
        """Raise unless ``input`` is the input of the last forward and no parameter changed
        since."""
        if self._last_input is None or self._last_input is not input:
            raise ValueError(
                self._error(
                    method,
                    "backward needs the input of the last forward pass (the same array object): "
                    "call forward(input) first (backward never re-runs forward: a Dropout would "
                    "draw a new mask)",
                )
            )
        if self._versions != [m._version for m in self._param_modules()]:
            raise ValueError(
                self._error(
                    method,
                    "parameters changed since the last forward pass (an update, load_state_dict or "
                    "to()): call forward(input) again before backward",
                )
            )

    def forward(self, X: Array) -> Array:
        try:
            own = backend_of(X).copy(X)  # the children may keep it; the caller may change X
        except TypeError as exc:
            raise TypeError(self._error("forward", f"input: {exc}")) from None
        Y = self._forward(own)
        self._public = (X, own)
        return _fresh_copy(Y)  # the caller may change it; the children may keep it

    def _own_input(self, input, method: str):
        public = self._public
        if public is None or public[0] is not input:
            self._check_fresh(None, method)
        return public[1]

    def backward(self, input: Array, delta: Array, *, input_grad: bool = True) -> Array | None:
        return self._backward(self._own_input(input, "backward"), delta, input_grad)

    def backward_update_gradient(self, input: Array, delta: Array) -> None:
        self._backward(self._own_input(input, "backward_update_gradient"), delta, False)

    def backward_delta(self, input: Array, delta: Array) -> Array:
        return self._backward(
            self._own_input(input, "backward_delta"), delta, True, param_grad=False
        )


class Sequentiel(_Container):
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
        self._inputs: list | None = None
        for m in modules:
            self.add(m)

    def add(self, module: Module) -> Sequentiel:
        """Append a module; returns self so calls chain."""
        self._modules.append(_check_module("Sequentiel.add", module))
        self._clear_cache()
        _structure_changed()
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

    def _clear_cache(self) -> None:
        super()._clear_cache()
        self._inputs = None

    def _forward(self, X):
        inputs = []
        for m in self._modules:
            inputs.append(X)
            X = m._forward(X)
        self._inputs = inputs
        self._remember(inputs[0] if inputs else None)
        return X

    def _first_with_parameters(self) -> int:
        for i, m in enumerate(self._modules):
            if m._has_parameters():
                return i
        return len(self._modules)

    def _backward(self, input, delta, input_grad: bool, param_grad: bool = True):
        self._check_fresh(input, "backward")
        inputs = self._inputs
        first = self._first_with_parameters() if param_grad else len(self._modules)
        for i in range(len(self._modules) - 1, -1, -1):
            # an input gradient is needed if the caller wants it or a layer before this one has
            # parameters
            need = input_grad or i > first
            delta = self._modules[i]._backward(inputs[i], delta, need, param_grad)
            if not need:
                break
        return delta if input_grad else None


#: English spelling of :class:`Sequentiel`.
Sequential = Sequentiel


class Concat(_Container):
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
        self._branches.extend(_check_module("Concat", b) for b in branches)
        _structure_changed()
        self.axis = axis
        self._sizes: list | None = None  # sizes along axis of the last forward's outputs

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def _parallel_children(self) -> bool:
        return True

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

    def _forward(self, X):
        outs = [b._forward(X) for b in self._branches]
        first = outs[0]
        axis = self._axis(first.ndim, "forward")
        for o in outs:
            if o.ndim != first.ndim or any(
                o.shape[i] != first.shape[i] for i in range(o.ndim) if i != axis
            ):
                shapes = ", ".join(str(tuple(o.shape)) for o in outs)
                raise ValueError(
                    self._error(
                        "forward",
                        f"branch outputs must agree except along axis {self.axis}, got {shapes}",
                    )
                )
        self._sizes = [o.shape[axis] for o in outs]
        self._remember(X)
        return backend_of(first).xp.concat(outs, axis=axis)

    def _backward(self, input, delta, input_grad: bool, param_grad: bool = True):
        self._check_fresh(input, "backward")
        sizes = self._sizes
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
        for b, size in zip(self._branches, sizes):
            index = tuple(
                slice(start, start + size) if i == axis else slice(None) for i in range(delta.ndim)
            )
            start += size
            g = b._backward(input, delta[index], input_grad, param_grad)
            if input_grad:
                total = g if total is None else total + g
        return total
