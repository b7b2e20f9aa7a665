"""Modules made of modules."""

from __future__ import annotations

from .module import Module

__all__ = ["Sequential", "Sequentiel"]


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
        self._modules: list[Module] = []
        self._inputs: list | None = None
        for m in modules:
            self.add(m)

    def add(self, module: Module) -> Sequentiel:
        """Append a module; returns self so calls chain."""
        self._modules.append(_check_module("Sequentiel.add", module))
        self._inputs = None
        return self

    def children(self) -> list[Module]:
        return list(self._modules)

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
