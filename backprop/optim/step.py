"""One training step: :class:`Optim` (forward, cost, backward, update), eager or compiled."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..backends import Backend, asarray, backend_of, get_backend
from ..module import _TARGETS_CHECKED, Loss, Module
from .rules import Optimizer, make_optimizer

if TYPE_CHECKING:
    from .._typing import Array

__all__ = ["Optim", "backend_of_net"]


def backend_of_net(net: Module) -> Backend:
    """The backend of a network's parameters (the backend in force if it has none)."""
    for m in net.unique_modules():
        m._ensure_backend()
        if m.backend is not None:
            return m.backend
    return get_backend()


class Optim:
    """One step of gradient descent on a network: forward, cost, backward, update.

    Parameters
    ----------
    net : Module
    loss : Loss
    eps : float
        The learning rate (the assignment's name; ``lr`` is an alias). Not to
        be confused with ``Adam(eps=...)``, Adam's numerical epsilon.
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
        if eps is not None and lr is not None and eps != lr:
            raise ValueError(
                f"Optim: eps and lr are the same learning rate; got eps={eps!r} and lr={lr!r}"
            )
        rate = 1e-3 if eps is None and lr is None else (lr if eps is None else eps)
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float))
            or not rate > 0
            or rate != rate
        ):
            raise ValueError(
                f"Optim: the learning rate (eps) must be a positive number, got {rate!r}"
            )
        self.net, self.loss = net, loss
        self.optimizer = make_optimizer(optimizer, float(rate))
        if compile not in (True, False, "auto"):
            raise ValueError(f"Optim: compile must be True, False or 'auto', got {compile!r}")
        self.compile = compile
        self._compiled = None  # (slots, compiled function)

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
        b = backend_of_net(self.net)
        if self.compile and b.compiles:
            drawing = self._drawing_module()
            if drawing is None:
                return self._compiled_step(b, batch_x, batch_y)
            if self.compile is True:  # 'auto' runs such a step eagerly
                raise ValueError(
                    f"Optim(compile=True): {drawing._label()} draws random numbers on the host "
                    "in forward and cannot be compiled; use compile=False or 'auto', or put the "
                    "network in eval mode"
                )
        net = self.net
        net.zero_grad()
        yhat = net.chain_forward(batch_x)
        per_row, delta = self.loss.forward_backward(batch_y, yhat)
        net.chain_backward(batch_x, delta, False)
        self.optimizer.step(net)
        return backend_of(per_row).xp.sum(per_row) * (1.0 / per_row.shape[0])

    # ------------------------------------------------------------ compiled

    def _drawing_module(self) -> Module | None:
        """The first module whose forward draws host random numbers now (None: compilable)."""
        return next((m for m in self.net.unique_modules() if m.draws_random_numbers()), None)

    def _compiled_step(self, b, batch_x, batch_y):
        net, opt = self.net, self.optimizer
        state_slots = _buffer_slots(net)
        if (
            self._compiled is None
            or self._compiled[0] != list(net.parameter_slots())
            or self._compiled[2] != state_slots
        ):
            slots = list(net.parameter_slots())
            self._compiled = (slots, b.compile(self._pure_step(slots, state_slots)), state_slots)
        slots, fn, _ = self._compiled
        batch_x = asarray(batch_x, backend=b)
        batch_y = asarray(batch_y, backend=b) if not b.owns(batch_y) else batch_y
        if not _TARGETS_CHECKED.get():
            self._validate_targets(batch_x, batch_y)
        params = [m.get_parameter(k) for m, k in slots]
        buffers = [dict(opt.state_of(m, k)) for m, k in slots]
        states = [m._buffers[k] for m, k in state_slots]
        opt.steps += 1
        # Python numbers: the compiled function takes them as traced scalars of the parameters'
        # precision (no new trace when they change), without the cost of making arrays here
        lr, t = float(opt.lr), float(opt.steps)
        try:
            new_params, grads, new_buffers, new_states, cost = fn(
                params, buffers, states, lr, t, batch_x, batch_y
            )
        except BaseException:
            opt.steps -= 1
            new_params, new_buffers, grads = params, buffers, [m.get_gradient(k) for m, k in slots]
            new_states = states
            raise
        finally:
            for m in net.unique_modules():
                m.clear_cache()  # they hold values of the trace, not arrays
            for (m, k), p, bufs in zip(slots, new_params, new_buffers):
                m._parameters[k] = p
                opt.state_of(m, k).update(bufs)
            for (m, k), value in zip(state_slots, new_states):
                m._buffers[k] = value
        for (m, k), p, g in zip(slots, new_params, grads):
            m.set_parameter(k, p)
            m._gradient[k] = g
            m._zero_keys.discard(k)
        return cost

    def _pure_step(self, slots, state_slots):
        net, loss, opt = self.net, self.loss, self.optimizer

        def step(params, buffers, states, lr, t, x, y):
            for (m, k), p, bufs in zip(slots, params, buffers):
                m._parameters[k] = p
                opt.state_of(m, k).update(bufs)
            for (m, k), value in zip(state_slots, states):
                m._buffers[k] = value
            with Loss.targets_checked():
                net.zero_grad()
                yhat = net.chain_forward(x)
                per_row, delta = loss.forward_backward(y, yhat)
                net.chain_backward(x, delta, False)
            opt.apply(net, lr, t)
            new_params = [m.get_parameter(k) for m, k in slots]
            grads = [m.get_gradient(k) for m, k in slots]
            new_buffers = [dict(opt.state_of(m, k)) for m, k in slots]
            new_states = [m._buffers[k] for m, k in state_slots]
            xp = backend_of(per_row).xp
            cost = xp.sum(per_row) * (1.0 / per_row.shape[0])
            return new_params, grads, new_buffers, new_states, cost

        return step

    def _validate_targets(self, x, y) -> None:
        """Run the loss's checks on ``y`` eagerly, against the network's output for one row."""
        validate_targets(self.net, self.loss, x, y)

    def __repr__(self) -> str:
        compiled = f", compile={self.compile!r}" if self.compile else ""
        return f"Optim(loss={self.loss!r}, optimizer={self.optimizer!r}{compiled})"


def _buffer_slots(net: Module) -> list:
    """``(module, key)`` of every buffer (running statistics): the compiled step threads them
    through as inputs and outputs, like the parameters."""
    return [(m, k) for m in net.unique_modules() for k in m._buffers]


def validate_targets(net: Module, loss: Loss, X: Array, Y: Array) -> None:
    """Check every target of ``Y`` with the loss's own checks, once, without a full forward pass.

    The network's output for the first row (in evaluation mode, so no
    random numbers are drawn) is broadcast to all rows: the loss then
    validates the shapes, dtypes and values of ``Y`` as it would in a step.
    """
    modes = [(m, m.training) for m in net.unique_modules()]
    net.eval()
    try:
        row = net.forward(X[:1, ...])
    finally:
        for m, mode in modes:
            m.training = mode
    xp = backend_of(row).xp
    probe = xp.broadcast_to(row, (Y.shape[0], *row.shape[1:])) if Y.ndim else row
    loss.forward(Y, probe)
