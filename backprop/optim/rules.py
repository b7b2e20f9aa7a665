"""Update rules: plain gradient descent (the assignment's), momentum, Nesterov, Adam, AdamW,
RMSprop.

An :class:`Optimizer` reads each parameter and its gradient through the
module's public accessors and writes the new value with
:meth:`~backprop.Module.set_parameter`. Every write goes through the
backend (:meth:`~backprop.backends.Backend.sub_` and friends), so one code
path updates in place on NumPy, CuPy and PyTorch and functionally on JAX.
The state (velocities, moments) lives in the optimizer, in one place, on the
parameters' own backend and device.

No subnormal numbers
--------------------
Adam, AdamW and RMSprop keep running averages that decay geometrically
where the gradients are small or zero (dead units, rare features, a model
near convergence). In float32 such entries reach the subnormal range (below
``1.18e-38``), where CPU arithmetic on them is more than ten times slower: an
optimizer whose buffers fill with subnormals makes late epochs much slower
than early ones. These optimizers therefore *flush to zero* every entry of
their buffers and of the update they subtract whose magnitude is below the
dtype's smallest normal number (:meth:`~backprop.backends.Backend.flush_`).
Nothing else changes: for normal values the trajectory is the one of
``torch.optim``; an entry below ``1.18e-38`` (``2.2e-308`` in float64) is
replaced by zero, a change far below the optimizer's ``eps``.

The flushes are extra passes over every buffer. Where the backend fuses them
(NumPy: :meth:`~backprop.backends.Backend.adam_update_all_`), Adam and AdamW
update all the parameters of a network in one set of passes over one flat
buffer, each parameter's moments being views of it: a step then costs about
as much as the unflushed update parameter by parameter, and gives the same
bits as the flushed one. A moment array replaced from outside (a loaded
state, an assignment) is copied into a new flat buffer at the next step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._checks import positive_int, real_number
from ..backends import backend_of
from ..module import Module

if TYPE_CHECKING:
    from .._typing import Array
    from ..backends import Backend

__all__ = [
    "Adam", "AdamW", "GradientDescent", "Momentum", "Optimizer", "RMSprop", "make_optimizer",
]  # fmt: skip


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
        # what a backend's fused update keeps between steps (one flat buffer for the buffers of
        # every parameter: Backend.adam_update_all_); rebuilt whenever a state array is replaced
        self._fused: dict = {}

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
        self._fused = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self._fused:
            # the buffers are views of one flat buffer: each is written on its own (a tensor
            # view would carry the whole flat storage), and the flat buffer is rebuilt at the
            # next step
            state["_state"] = {
                key: (m, {name: backend_of(value).copy(value) for name, value in buffers.items()})
                for key, (m, buffers) in self._state.items()
            }
            state["_fused"] = {}
        return state

    def reset(self) -> None:
        """Forget the state (velocities, moments, step count)."""
        self._state.clear()
        self._fused = {}
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
        known = {f"{name}/{b}" for name in names for b in self.buffers}
        foreign = sorted(k for k in state if k not in ("steps", "lr") and k not in known)
        if foreign:
            raise ValueError(
                f"{owner}: the state holds {foreign[:3]}{'...' if len(foreign) > 3 else ''}, "
                f"which this optimizer (buffers {list(self.buffers)}) and network do not have"
            )
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
        self._fused = {}
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


def _betas(owner, betas) -> tuple[float, float]:
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: betas must be two numbers, got {betas!r}") from None
    return tuple(
        real_number(owner, name, b, low=0.0, high=1.0, high_open=True)
        for name, b in (("betas[0]", b1), ("betas[1]", b2))
    )


def _average_(backend: Backend, buffer: Array, decay: float, value: Array) -> Array:
    """``decay * buffer + value``, written into ``buffer``, subnormal entries flushed to zero."""
    return backend.flush_(backend.add_(backend.scale_(buffer, decay), value))


class Adam(Optimizer):
    """Adam (Kingma and Ba), with bias correction, as in ``torch.optim.Adam``.

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.

    ``weight_decay`` adds ``weight_decay * p`` to the gradient (L2 penalty, as
    ``torch.optim.Adam``); :class:`AdamW` decouples it. The moments and the
    update are flushed to zero below the dtype's smallest normal number (see
    the module's notes): no subnormal float32 value slows the late epochs.
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
        name = type(self).__name__
        self.betas = _betas(name, betas)
        self.eps = _check_rate(name, "eps", eps)

    @property
    def t(self) -> int:
        """Steps taken (the exponent of the bias correction)."""
        return self.steps

    def _options(self) -> dict:
        return {"betas": self.betas, "eps": self.eps, **super()._options()}

    def apply(self, net: Module, lr: float | Array, t: int | Array) -> None:
        if self.weight_decay or not self._apply_all(list(net.parameter_slots()), lr, t):
            super().apply(net, lr, t)

    def _apply_all(self, slots: list, lr: float | Array, t: int | Array) -> bool:
        """Every slot's update in one call of the backend's
        :meth:`~backprop.backends.Backend.adam_update_all_` (the same bits as one update per
        parameter); False, having changed nothing, where the backend does not fuse them."""
        if not slots or type(self).update is not Adam.update or self.buffers != Adam.buffers:
            return False  # a subclass with its own rule or buffers: its update, per parameter
        b = slots[0][0].backend
        if any(m.backend is not b and m.backend != b for m, _ in slots[1:]):
            return False
        b1, b2 = self.betas
        c1, c2 = 1 - b1**t, 1 - b2**t
        params = [m.get_parameter(k) for m, k in slots]
        grads = [m.get_gradient(k) for m, k in slots]
        states = [self.state_of(m, k) for m, k in slots]
        if not b.adam_update_all_(
            params, grads, states, self.betas, lr / c1, c2**0.5, self.eps, self._fused
        ):
            return False
        for (m, k), p in zip(slots, params):
            m.set_parameter(k, p)  # updated in place: the version marks earlier forwards stale
        return True

    def update(
        self, backend: Backend, p: Array, g: Array, state: dict, lr: float | Array, t: int | Array
    ) -> Array:
        b1, b2 = self.betas
        c1, c2 = 1 - b1**t, 1 - b2**t
        p, state["mean"], state["square"] = backend.adam_update_(
            p, g, state["mean"], state["square"], self.betas, lr / c1, c2**0.5, self.eps
        )
        return p


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as ``torch.optim.AdamW``.

    ``p <- p (1 - lr * weight_decay)``, then Adam's update of ``p`` from the
    gradient alone (the decay is not added to the gradient, so it does not
    pass through the moments).

    Parameters
    ----------
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 1e-2
        Decoupled decay rate (PyTorch's default).
    """

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(lr, betas, eps, weight_decay)

    def _options(self) -> dict:
        return {"betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}

    def apply(self, net: Module, lr: float | Array, t: int | Array) -> None:
        decay = self.weight_decay
        slots = list(net.parameter_slots())
        if decay:
            for m, key in slots:
                m.set_parameter(key, m.backend.scale_(m.get_parameter(key), 1 - lr * decay))
        if self._apply_all(slots, lr, t):
            return
        for m, key in slots:
            b, p = m.backend, m.get_parameter(key)
            new = self.update(b, p, m.get_gradient(key), self.state_of(m, key), lr, t)
            m.set_parameter(key, new)


class RMSprop(Optimizer):
    """RMSprop (Tieleman and Hinton), as ``torch.optim.RMSprop``.

    ``v <- alpha v + (1 - alpha) g^2``; with ``centered=True`` also
    ``a <- alpha a + (1 - alpha) g`` and the denominator
    ``sqrt(v - a^2) + eps``, otherwise ``sqrt(v) + eps``. Without momentum
    ``p <- p - lr g / denominator``; with it ``b <- momentum b + g / denominator``
    and ``p <- p - lr b``. ``weight_decay`` adds ``weight_decay * p`` to the
    gradient first. The buffers and the update are flushed to zero below the
    dtype's smallest normal number (see the module's notes).

    Parameters
    ----------
    lr : float, default 1e-2
    alpha : float, default 0.99
        Smoothing constant, in [0, 1).
    eps : float, default 1e-8
    weight_decay : float, default 0
    momentum : float, default 0
        In [0, 1).
    centered : bool, default False
    """

    def __init__(
        self,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(lr, weight_decay)
        for name, value in (("alpha", alpha), ("momentum", momentum)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (ok and 0 <= value < 1):
                raise ValueError(f"RMSprop: {name} must lie in [0, 1), got {value!r}")
        if not isinstance(centered, bool):
            raise TypeError(f"RMSprop: centered must be True or False, got {centered!r}")
        self.alpha, self.momentum, self.centered = float(alpha), float(momentum), centered
        self.eps = _check_rate("RMSprop", "eps", eps)
        # the buffers this configuration keeps (a checkpoint must hold the same)
        self.buffers = (
            ("square",)
            + (("grad_mean",) if centered else ())
            + (("momentum",) if self.momentum else ())
        )

    def _options(self) -> dict:
        return {
            "alpha": self.alpha,
            "eps": self.eps,
            **({"momentum": self.momentum} if self.momentum else {}),
            **({"centered": True} if self.centered else {}),
            **super()._options(),
        }

    def update(
        self, backend: Backend, p: Array, g: Array, state: dict, lr: float | Array, t: int | Array
    ) -> Array:
        a, xp = self.alpha, backend.xp
        sq = state["square"] = _average_(backend, state["square"], a, (1 - a) * (g * g))
        if self.centered:
            mean = state["grad_mean"] = _average_(backend, state["grad_mean"], a, (1 - a) * g)
            # v - a^2 >= 0 in exact arithmetic; rounding may leave -1 ulp, which sqrt turns to NaN
            zero = xp.zeros((), dtype=sq.dtype, device=backend.device_of(sq))
            denom = xp.sqrt(xp.maximum(sq - mean * mean, zero)) + self.eps
        else:
            denom = xp.sqrt(sq) + self.eps
        if self.momentum:
            buf = _average_(backend, state["momentum"], self.momentum, g / denom)
            state["momentum"] = buf
            return backend.sub_(p, backend.flush_(lr * buf))
        return backend.sub_(p, backend.flush_(backend.scale_(g / denom, lr)))


_NAMES = {
    "sgd": GradientDescent, "gd": GradientDescent, "momentum": Momentum, "adam": Adam,
    "adamw": AdamW, "rmsprop": RMSprop,
}  # fmt: skip


def make_optimizer(spec: str | Optimizer | None, lr: float) -> Optimizer:
    """An optimizer from a name (``'sgd'``, ``'momentum'``, ``'nesterov'``, ``'adam'``,
    ``'adamw'``, ``'rmsprop'``) or an instance.
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
        f"unknown optimizer {spec!r}; use one of sgd, momentum, nesterov, adam, adamw, rmsprop "
        "or an Optimizer instance"
    )
