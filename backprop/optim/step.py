"""One training step: :class:`Optim`, an engine's gradients and the optimizer's update."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .._checks import real_number
from .._network import backend_of_net
from ..module import Loss, Module
from .engine import make_engine, validate_targets
from .rules import Optimizer, make_optimizer

if TYPE_CHECKING:
    from .._typing import Array

__all__ = ["Optim", "backend_of_net", "learning_rate", "validate_targets"]


def default_rate(optimizer: str | Optimizer | None) -> float:
    """The learning rate used when none is given: 1e-3 for Adam, 0.1 for gradient descent
    (plain, momentum, Nesterov); an :class:`Optimizer` instance keeps its own ``lr``."""
    return 1e-3 if isinstance(optimizer, str) and optimizer.lower() == "adam" else 0.1


def learning_rate(
    owner: str, eps: float | None, lr: float | None, optimizer: str | Optimizer | None
) -> float:
    """The learning rate of ``eps`` or its alias ``lr`` (the optimizer's default if neither),
    checked: the one check of that argument for :class:`Optim`, :class:`~backprop.Trainer` and
    :func:`~backprop.SGD`."""
    if eps is not None and lr is not None and eps != lr:
        raise ValueError(
            f"{owner}: eps and lr are the same learning rate; got eps={eps!r} and lr={lr!r}"
        )
    rate = lr if eps is None else eps
    if rate is None:
        return optimizer.lr if isinstance(optimizer, Optimizer) else default_rate(optimizer)
    return real_number(owner, "eps (the learning rate)", rate, low=0.0, low_open=True)


def check_compile(owner: str, compile) -> bool | str:
    """``compile`` if it is True, False or 'auto' (the one check of that argument)."""
    if compile not in (True, False, "auto") or not isinstance(compile, (bool, str)):
        raise ValueError(f"{owner}: compile must be True, False or 'auto', got {compile!r}")
    return compile


class Optim:
    """One step of gradient descent on a network: an engine's gradients, the optimizer's update.

    Parameters
    ----------
    net : Module
    loss : Loss
    eps : float, optional
        The learning rate (the assignment's name; ``lr`` is an alias). Not to
        be confused with ``Adam(eps=...)``, Adam's numerical epsilon. By
        default 0.1 for gradient descent (plain, momentum, Nesterov) and 1e-3
        for Adam.
    optimizer : None, str or Optimizer
        The update rule: plain gradient descent by default (each module's
        ``update_parameters(eps)``, the assignment's rule); ``'momentum'``,
        ``'nesterov'`` or ``'adam'`` with learning rate ``eps``; or an
        :class:`~backprop.optim.Optimizer` instance (its own ``lr`` is used).
    compile : bool or 'auto'
        Run the whole step as one compiled program where the backend can
        (``jax.jit`` on JAX; ignored elsewhere). Same parameters as the eager
        step. Target values are validated on the host before each compiled
        call, unless the caller validated them already
        (:meth:`Loss.targets_checked`, as :func:`~backprop.SGD` does). A
        network that draws random numbers in forward (Dropout in training
        mode) cannot be compiled, its masks come from the host: ``True``
        refuses it, ``'auto'`` runs such a step eagerly.
    """

    def __init__(
        self,
        net: Module,
        loss: Loss,
        eps: float | None = None,
        optimizer: str | Optimizer | None = None,
        *,
        lr: float | None = None,
        compile: bool | Literal["auto"] = False,
    ) -> None:
        if not isinstance(net, Module):
            raise TypeError(f"Optim: net must be a Module, got {type(net).__name__}")
        if not isinstance(loss, Loss):
            raise TypeError(f"Optim: loss must be a Loss, got {type(loss).__name__}")
        rate = learning_rate("Optim", eps, lr, optimizer)
        self.net, self.loss = net, loss
        self.optimizer = make_optimizer(optimizer, rate)
        self.compile = check_compile("Optim", compile)
        self.engine = make_engine(net, loss, compile)

    @property
    def eps(self) -> float:
        """The learning rate in force (the optimizer's ``lr``)."""
        return self.optimizer.lr

    @eps.setter
    def eps(self, value: float) -> None:
        self.optimizer.lr = float(value)

    lr = eps

    def step(self, batch_x: Array, batch_y: Array) -> Array:
        """Train on one batch; returns the batch mean cost as a 0-d array (no host sync)."""
        shape = getattr(batch_x, "shape", None)
        if shape is not None and len(shape) and shape[0] == 0:
            raise ValueError("Optim.step: the batch is empty (0 rows)")
        return self.engine.step(self.optimizer, batch_x, batch_y)

    def __repr__(self) -> str:
        compiled = f", compile={self.compile!r}" if self.compile else ""
        return f"Optim(loss={self.loss!r}, optimizer={self.optimizer!r}{compiled})"
