"""Modules made of modules."""

from __future__ import annotations

from .backends import namespace_of
from .module import Module

__all__ = ["Concat", "Sequential", "Sequentiel"]


def _check_module(owner: str, m) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{owner}: expected a Module, got {type(m).__name__}")
    return m


class Sequentiel(Module):
    """Modules in series: the output of each is the input of the next.

    Itself a :class:`Module`, so networks nest to any depth. ``forward`` keeps
    the input of every layer; the backward rules reuse them when they are
    given the same input object, and run the forward pass again otherwise.

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
        self._inputs = None
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
        self._inputs = None

    def forward(self, X):
        inputs = []
        for m in self._modules:
            inputs.append(X)
            X = m.forward(X)
        self._inputs = inputs
        return X

    def _inputs_for(self, input) -> list:
        if self._inputs is None or not self._inputs or self._inputs[0] is not input:
            self.forward(input)
        return self._inputs

    def backward(self, input, delta, *, input_grad: bool = True):
        inputs = self._inputs_for(input)
        for i in range(len(self._modules) - 1, -1, -1):
            delta = self._modules[i].backward(inputs[i], delta, input_grad=i > 0 or input_grad)
        return delta if input_grad else None

    def backward_update_gradient(self, input, delta) -> None:
        self.backward(input, delta, input_grad=False)

    def backward_delta(self, input, delta):
        inputs = self._inputs_for(input)
        for i in range(len(self._modules) - 1, -1, -1):
            delta = self._modules[i].backward_delta(inputs[i], delta)
        return delta


#: English spelling of :class:`Sequentiel`.
Sequential = Sequentiel


class Concat(Module):
    """Parallel branches on the same input, outputs concatenated (Torch7's ``nn.Concat``).

    Every branch receives the same input; their outputs, equal in shape
    except along ``axis``, are joined along ``axis``. Backward splits delta
    along ``axis`` and sums the branches' input gradients.

    >>> Concat(Sequentiel(Conv1D(3, 1, 8), Flatten()),
    ...        Sequentiel(Transpose((1, 0)), Conv1D(3, 8, 8), Flatten()), axis=1)
    """

    def __init__(self, *branches: Module, axis: int = -1) -> None:
        super().__init__()
        if not branches:
            raise ValueError("Concat: expected at least one branch")
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise ValueError(f"Concat: axis must be a non-zero int (axis 0 is the batch), got {axis!r}")
        self._branches = self._children
        self._branches.extend(_check_module("Concat", b) for b in branches)
        self.axis = axis
        self._sizes: tuple | None = None  # (input, sizes along axis) of the last forward

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def get_config(self) -> dict:
        return {"axis": self.axis}

    @classmethod
    def from_config(cls, config: dict, children: list) -> Concat:
        return cls(*children, **config)

    def _clear_cache(self) -> None:
        self._sizes = None

    def forward(self, X):
        outs = [b.forward(X) for b in self._branches]
        first = outs[0]
        axis = self.axis % first.ndim
        for o in outs:
            same_rank = o.ndim == first.ndim
            if not same_rank or any(o.shape[i] != first.shape[i] for i in range(o.ndim) if i != axis):
                shapes = ", ".join(str(tuple(o.shape)) for o in outs)
                raise ValueError(self._error("forward", f"branch outputs must agree except along axis {self.axis}, got {shapes}"))
        self._sizes = (X, [o.shape[axis] for o in outs])
        xp = namespace_of(first)
        return xp.concat(outs, axis=axis)

    def _split(self, input, delta, method):
        if self._sizes is None or self._sizes[0] is not input:
            self.forward(input)
        sizes = self._sizes[1]
        axis = self.axis % delta.ndim
        if delta.shape[axis] != sum(sizes):
            raise ValueError(
                self._error(
                    method, f"expected delta with {sum(sizes)} entries along axis {self.axis}, got shape {tuple(delta.shape)}"
                )
            )
        parts, start = [], 0
        for size in sizes:
            index = tuple(slice(start, start + size) if i == axis else slice(None) for i in range(delta.ndim))
            parts.append(delta[index])
            start += size
        return parts

    def backward(self, input, delta, *, input_grad: bool = True):
        parts = self._split(input, delta, "backward")
        total = None
        for b, d in zip(self._branches, parts):
            g = b.backward(input, d, input_grad=input_grad)
            if input_grad:
                total = g if total is None else total + g
        return total

    def backward_update_gradient(self, input, delta) -> None:
        for b, d in zip(self._branches, self._split(input, delta, "backward_update_gradient")):
            b.backward_update_gradient(input, d)

    def backward_delta(self, input, delta):
        total = None
        for b, d in zip(self._branches, self._split(input, delta, "backward_delta")):
            g = b.backward_delta(input, d)
            total = g if total is None else total + g
        return total
