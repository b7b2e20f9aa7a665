"""Update rules: plain gradient descent (the assignment's), momentum, Nesterov, Adam.

An :class:`Optimizer` reads each parameter and its gradient through the
module's public accessors and writes the new value with
:meth:`~backprop.Module.set_parameter`. Every write goes through the
backend (:meth:`~backprop.backends.Backend.sub_` and friends), so one code
path updates in place on NumPy, CuPy and PyTorch and functionally on JAX.
The state (velocities, moments) lives in the optimizer, in one place, on the
parameters' own backend and device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._checks import positive_int, real_number
from ..module import Module

if TYPE_CHECKING:
    from .._typing import Array
    from ..backends import Backend

__all__ = ["Adam", "GradientDescent", "Momentum", "Optimizer", "make_optimizer"]


def _check_rate(owner, name, value, *, allow_zero=False):
    # NumPy scalars (np.float32 rates from a grid) are numbers too
    return real_number(owner, name, value, low=0.0, low_open=not allow_zero)


class Optimizer:
    """Base class: ``step(net)`` updates every parameter of ``net`` from its accumulated gradient.

    Parameters
    ----------
    lr : float
        Learning rate.
    weight_decay : float, default 0
        L2 penalty: ``weight_decay * p`` is added to each gradient (PyTorch's
        convention), biases included.

    Notes
    -----
    A subclass names its per-parameter buffers in :attr:`buffers` and
    implements :meth:`update`; the base class keeps the buffers, counts the
    steps and writes the results.
    """

    #: names of the per-parameter state arrays (each starts at zeros)
    buffers: tuple[str, ...] = ()

    def __init__(self, lr: float = 1e-3, weight_decay: float = 0.0) -> None:
        name = type(self).__name__
        self.lr = _check_rate(name, "lr", lr)
        self.weight_decay = _check_rate(name, "weight_decay", weight_decay, allow_zero=True)
        self.steps = 0  # steps taken (Adam's t)
        # (id(module), key) -> (module, {buffer: array}); the module keeps ids unique
        self._state: dict = {}

    def update(
        self, backend: Backend, p: Array, g: Array, state: dict, lr: float | Array, t: int | Array
    ) -> Array:
        """The new value of parameter ``p`` from gradient ``g``; updates ``state`` (its buffers).

        ``lr`` and ``t`` (the 1-based step count) are numbers, or 0-d arrays
        inside a compiled step: write them into array expressions only.
        """
        raise NotImplementedError

    def step(self, net: Module) -> None:
        """One update of every parameter of ``net`` (each shared parameter once)."""
        self.steps += 1
        self.apply(net, self.lr, self.steps)

    def apply(self, net: Module, lr: float | Array, t: int | Array) -> None:
        """The update of :meth:`step` with an explicit learning rate and step count (no
        counting).
        """
        for m, key in net.parameter_slots():
            b, p = m.backend, m.get_parameter(key)
            g = m.get_gradient(key)
            if self.weight_decay:
                g = g + self.weight_decay * p
            m.set_parameter(key, self.update(b, p, g, self.state_of(m, key), lr, t))

    def state_of(self, module: Module, key: str) -> dict:
        """The buffers of one parameter (created at zeros on first use)."""
        entry = self._state.get((id(module), key))
        if entry is None:
            p = module.get_parameter(key)
            entry = (module, {name: module.backend.xp.zeros_like(p) for name in self.buffers})
            self._state[(id(module), key)] = entry
        return entry[1]

    def __setstate__(self, state: dict) -> None:
        # the buffers are keyed by id(module): after a copy or unpickling the modules have new
        # ids, which each entry's own module gives back
        self.__dict__.update(state)
        self._state = {(id(m), key): (m, buffers) for (_, key), (m, buffers) in self._state.items()}

    def reset(self) -> None:
        """Forget the state (velocities, moments, step count)."""
        self._state.clear()
        self.steps = 0

    # ---------------------------------------------------------- checkpoints

    def state_dict(self, net: Module) -> dict:
        """The state as ``{"steps": int, "<parameter name>/<buffer>": array}`` (copies, on their
        backend).
        """
        state = {"steps": self.steps, "lr": self.lr}
        names = [n for n, _ in net.named_parameters()]
        for name, (m, key) in zip(names, net.parameter_slots()):
            entry = self._state.get((id(m), key))
            if entry is not None:
                for buffer, value in entry[1].items():
                    state[f"{name}/{buffer}"] = m.backend.copy(value)
        return state

    def load_state_dict(self, net: Module, state: dict) -> None:
        """Restore what :meth:`state_dict` returned, for the same architecture (checked first)."""
        owner = f"{type(self).__name__}.load_state_dict"
        names = [n for n, _ in net.named_parameters()]
        staged = {}
        for name, (m, key) in zip(names, net.parameter_slots()):
            found = {b: state[f"{name}/{b}"] for b in self.buffers if f"{name}/{b}" in state}
            if not found:
                continue
            if len(found) != len(self.buffers):
                raise ValueError(
                    f"{owner}: parameter {name!r} has buffers {sorted(found)}, "
                    f"expected {list(self.buffers)}"
                )
            shape = tuple(m.get_parameter(key).shape)
            for b, value in found.items():
                if tuple(value.shape) != shape:
                    raise ValueError(
                        f"{owner}: {name}/{b} has shape {tuple(value.shape)}, expected {shape}"
                    )
            staged[(id(m), key)] = (m, {b: m.backend.copy(_on(m, v)) for b, v in found.items()})
        steps = positive_int(owner, "steps", state.get("steps", 0), minimum=0)
        self._state = staged
        self.steps = steps
        if "lr" in state:
            # a schedule may end at 0
            self.lr = _check_rate(owner, "lr", state["lr"], allow_zero=True)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self._options().items())
        return f"{type(self).__name__}(lr={self.lr}{extra})"

    def _options(self) -> dict:
        return {"weight_decay": self.weight_decay} if self.weight_decay else {}


def _on(module: Module, value):
    from ..backends import asarray

    return asarray(value, backend=module.backend)


class GradientDescent(Optimizer):
    """``p <- p - lr * g``: the assignment's update.

    Without weight decay it is :meth:`~backprop.Module.update_parameters`: a
    module (or network) that redefines that method is updated by its own
    rule, every other parameter by ``p <- p - lr * g`` written in place
    through :meth:`~backprop.backends.Backend.axpy_` (no temporary the size
    of the parameter).
    """

    def apply(self, net: Module, lr: float | Array, t: int | Array) -> None:
        if self.weight_decay:
            super().apply(net, lr, t)
        else:
            net.update_parameters(lr)

    def update(
        self, backend: Backend, p: Array, g: Array, state: dict, lr: float | Array, t: int | Array
    ) -> Array:
        return backend.axpy_(p, -lr, g)


class Momentum(Optimizer):
    """Gradient descent with momentum (PyTorch's formulation, no dampening).

    ``v <- momentum * v + g``; then ``p <- p - lr * v``, or with ``nesterov=True``
    ``p <- p - lr * (g + momentum * v)``.
    """

    buffers = ("velocity",)

    def __init__(
        self,
        lr: float = 1e-2,
        momentum: float = 0.9,
        *,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay)
        self.momentum = real_number(
            "Momentum", "momentum", momentum, low=0.0, high=1.0, high_open=True
        )
        self.nesterov = bool(nesterov)

    def _options(self) -> dict:
        return {
            "momentum": self.momentum,
            **({"nesterov": True} if self.nesterov else {}),
            **super()._options(),
        }

    def update(
        self, backend: Backend, p: Array, g: Array, state: dict, lr: float | Array, t: int | Array
    ) -> Array:
        v = state["velocity"] = backend.add_(backend.scale_(state["velocity"], self.momentum), g)
        return backend.axpy_(p, -lr, g + self.momentum * v if self.nesterov else v)


class Adam(Optimizer):
    """Adam (Kingma and Ba), with bias correction, as in ``torch.optim.Adam``.

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.
    """

    buffers = ("mean", "square")

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay)
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"Adam: betas must be two numbers, got {betas!r}") from None
        self.betas = tuple(
            real_number("Adam", name, b, low=0.0, high=1.0, high_open=True)
            for name, b in (("betas[0]", b1), ("betas[1]", b2))
        )
        self.eps = _check_rate("Adam", "eps", eps)

    @property
    def t(self) -> int:
        """Steps taken (the exponent of the bias correction)."""
        return self.steps

    def _options(self) -> dict:
        return {"betas": self.betas, "eps": self.eps, **super()._options()}

    def update(
        self, backend: Backend, p: Array, g: Array, state: dict, lr: float | Array, t: int | Array
    ) -> Array:
        b1, b2 = self.betas
        c1, c2 = 1 - b1**t, 1 - b2**t
        mean = state["mean"] = backend.add_(backend.scale_(state["mean"], b1), (1 - b1) * g)
        sq = state["square"] = backend.add_(backend.scale_(state["square"], b2), (1 - b2) * (g * g))
        return backend.axpy_(p, -(lr / c1), mean / (backend.xp.sqrt(sq) / c2**0.5 + self.eps))


_NAMES = {"sgd": GradientDescent, "gd": GradientDescent, "momentum": Momentum, "adam": Adam}


def make_optimizer(spec: str | Optimizer | None, lr: float) -> Optimizer:
    """An optimizer from a name (``'sgd'``, ``'momentum'``, ``'nesterov'``, ``'adam'``) or an
    instance.
    """
    if isinstance(spec, Optimizer):
        return spec
    if spec is None:
        return GradientDescent(lr)
    if isinstance(spec, str):
        name = spec.lower()
        if name == "nesterov":
            return Momentum(lr, nesterov=True)
        if name in _NAMES:
            return _NAMES[name](lr)
    raise ValueError(
        f"unknown optimizer {spec!r}; use one of sgd, momentum, nesterov, adam "
        "or an Optimizer instance"
    )
