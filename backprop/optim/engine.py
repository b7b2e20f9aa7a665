"""Engines: what computes the cost and the gradients of a batch at the current parameters.

The step of every training loop is ``engine.step(optimizer, x, y)``: the
engine leaves the gradient of the batch mean cost in each parameter's
gradient slot and the optimizer applies the update
(:meth:`Optimizer.step <backprop.optim.Optimizer.step>`, the one place where
parameters change). :func:`make_engine` chooses:

- :class:`EagerEngine`: the library's modules, forward, cost, backward, on
  every backend;
- :class:`CompiledEngine`: the same computation and the optimizer's own
  update (:meth:`Optimizer.apply`) traced as one program where the backend
  compiles (``jax.jit``), so no intermediate leaves the device;
- the data-parallel engine of :mod:`backprop.distributed`: the eager
  gradients of a worker's rows, summed over the workers by an all-reduce
  before the same optimizer step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .._network import backend_of_net
from ..backends import Backend, asarray, backend_of
from ..module import _TARGETS_CHECKED, Loss, Module

if TYPE_CHECKING:
    from .._typing import Array
    from .rules import Optimizer

__all__ = ["CompiledEngine", "EagerEngine", "Engine", "make_engine"]


class Engine:
    """Computes the cost and the gradients of a batch at the current parameters of ``net``.

    Subclasses implement :meth:`gradients`; :meth:`step` adds the optimizer's update.
    """

    def __init__(self, net: Module, loss: Loss) -> None:
        self.net, self.loss = net, loss

    def gradients(self, x: Array, y: Array) -> Array:
        """Leave the gradient of the batch mean cost in every parameter's gradient slot;
        return the batch's **sum** of per-row costs as a 0-d array (no host sync)."""
        raise NotImplementedError

    def step(self, optimizer: Optimizer, x: Array, y: Array) -> Array:
        """One training step on ``(x, y)``; returns the batch mean cost (0-d array)."""
        total = self.gradients(x, y)
        optimizer.step(self.net)
        return total * (1.0 / x.shape[0])


class EagerEngine(Engine):
    """Forward, cost and backward with the library's own modules, on any backend."""

    def gradients(self, x: Array, y: Array) -> Array:
        net = self.net
        b = backend_of_net(net)
        x, y = b.detached(x), b.detached(y)
        net.zero_grad()
        yhat = net.chain_forward(x)
        per_row, delta = self.loss.forward_backward(y, yhat)
        net.chain_backward(x, delta, False)
        return backend_of(per_row).xp.sum(per_row)


class CompiledEngine(EagerEngine):
    """Gradients and the optimizer's update traced as one program (``jax.jit`` on JAX).

    Same parameters as :class:`EagerEngine` followed by
    :meth:`Optimizer.step`: the traced update *is* :meth:`Optimizer.apply`.
    A network that draws random numbers in forward (Dropout in training
    mode) cannot be traced (its masks come from the host): ``strict`` refuses
    it, otherwise such a step runs eagerly; so does a step on a backend
    that does not compile.
    """

    def __init__(self, net: Module, loss: Loss, strict: bool = False) -> None:
        super().__init__(net, loss)
        self.strict = strict
        self._compiled = None  # (slots, compiled function)
        self._traced = False  # whether the last compiled call traced the modules

    def step(self, optimizer: Optimizer, x: Array, y: Array) -> Array:
        mods = self.net.unique_modules()  # one walk a step, shared by what follows
        b = backend_of_net(self.net, mods)
        if b.compiles:
            drawing = self.drawing_module(mods)
            if drawing is None:
                return self._compiled_step(b, optimizer, mods, x, y)
            if self.strict:
                raise ValueError(
                    f"Optim(compile=True): {drawing._label()} draws random numbers on the host "
                    "in forward and cannot be compiled; use compile=False or 'auto', or put the "
                    "network in eval mode"
                )
        return super().step(optimizer, x, y)

    def drawing_module(self, modules: list | None = None) -> Module | None:
        """The first module whose forward draws host random numbers now (None: compilable);
        ``modules`` is ``net.unique_modules()`` when the caller has it already."""
        mods = self.net.unique_modules() if modules is None else modules
        return next((m for m in mods if m.draws_random_numbers()), None)

    def _compiled_step(self, b: Backend, opt: Optimizer, mods: list, batch_x, batch_y):
        net = self.net
        # the buffers (running statistics) a training forward updates go in and come out like the
        # parameters: a value stored during the trace would be a value of the trace; the modes
        # are part of the trace (batch or running statistics); so is the optimizer
        for m in mods:
            m._ensure_backend()  # a module filled by hand gets its backend before the trace
        key = (
            [(m, k) for m in mods for k in m._parameters],
            [(m, k) for m in mods for k in m._buffers],
            [m.training for m in mods],
            id(opt),
        )
        if self._compiled is None or self._compiled[0] != key:
            self._compiled = (key, b.compile(self._pure_step(opt, key[0], key[1])))
        (slots, buffer_slots, _, _), fn = self._compiled
        batch_x = asarray(batch_x, backend=b)
        batch_y = asarray(batch_y, backend=b) if not b.owns(batch_y) else batch_y
        if not _TARGETS_CHECKED.get():
            validate_targets(net, self.loss, batch_x, batch_y)
        params = [m._parameters[k] for m, k in slots]
        buffers = [dict(opt.state_of(m, k)) for m, k in slots]
        module_buffers = [m.get_buffer(k) for m, k in buffer_slots]
        new_module_buffers = module_buffers
        opt.steps += 1
        # Python numbers: the compiled function takes them as traced scalars of the parameters'
        # precision (no new trace when they change), without the cost of making arrays here
        lr, t = float(opt.lr), float(opt.steps)
        self._traced = False
        try:
            new_params, grads, new_buffers, new_module_buffers, cost = fn(
                params, buffers, module_buffers, lr, t, batch_x, batch_y
            )
        except BaseException:
            opt.steps -= 1
            new_params, new_buffers, grads = params, buffers, [m.get_gradient(k) for m, k in slots]
            new_module_buffers = module_buffers
            raise
        finally:
            if self._traced:  # the modules ran on the trace's values: none may keep one
                for m in mods:
                    m.clear_cache()
            for (m, k), p, bufs in zip(slots, new_params, new_buffers):
                m._parameters[k] = p
                opt.state_of(m, k).update(bufs)
            for (m, k), value in zip(buffer_slots, new_module_buffers):
                m.set_buffer(k, value)
        for (m, k), p, g in zip(slots, new_params, grads):
            m.set_parameter(k, p)
            m._gradient[k] = g
            m._zero_keys.discard(k)
        return cost

    def _pure_step(self, opt: Optimizer, slots, buffer_slots):
        net, loss = self.net, self.loss

        def step(params, buffers, module_buffers, lr, t, x, y):
            self._traced = True  # runs only while the backend traces (or on every call
            # where it does not compile)
            for (m, k), p, bufs in zip(slots, params, buffers):
                m._parameters[k] = p
                opt.state_of(m, k).update(bufs)
            for (m, k), value in zip(buffer_slots, module_buffers):
                m.set_buffer(k, value)
            with Loss.targets_checked():
                net.zero_grad()
                yhat = net.chain_forward(x)
                per_row, delta = loss.forward_backward(y, yhat)
                net.chain_backward(x, delta, False)
            opt.apply(net, lr, t)
            new_params = [m.get_parameter(k) for m, k in slots]
            grads = [m.get_gradient(k) for m, k in slots]
            new_buffers = [dict(opt.state_of(m, k)) for m, k in slots]
            new_module_buffers = [m.get_buffer(k) for m, k in buffer_slots]
            xp = backend_of(per_row).xp
            cost = xp.sum(per_row) * (1.0 / per_row.shape[0])
            return new_params, grads, new_buffers, new_module_buffers, cost

        return step


def make_engine(net: Module, loss: Loss, compile: bool | Literal["auto"] = False) -> Engine:
    """The engine for ``compile`` (checked by the caller): eager for False, compiled otherwise
    (``True`` refuses a network that draws random numbers; ``'auto'`` runs it eagerly)."""
    if compile is False:
        return EagerEngine(net, loss)
    return CompiledEngine(net, loss, strict=compile is True)


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
