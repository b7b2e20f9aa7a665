"""Update rules that plug into :class:`~backprop.Optim` and :func:`~backprop.SGD`, and learning-rate schedules.

Plain gradient descent (the seed's ``update_parameters(eps)``) stays the
default; the others keep their state (velocities, moments) as arrays on the
parameters' own backend and device.
"""

from __future__ import annotations

import math

from .module import Module

__all__ = ["Adam", "CosineLR", "GradientDescent", "Momentum", "Optimizer", "StepLR", "make_optimizer"]


def _check_rate(owner, name, value, *, allow_zero=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{owner}: {name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: ``step(net)`` updates every parameter of ``net`` from its accumulated gradient.

    Parameters
    ----------
    lr : float
        Learning rate.
    weight_decay : float, default 0
        L2 penalty: ``weight_decay * p`` is added to each gradient (PyTorch's
        convention), biases included.
    """

    def __init__(self, lr: float = 1e-3, weight_decay: float = 0.0) -> None:
        name = type(self).__name__
        self.lr = _check_rate(name, "lr", lr)
        self.weight_decay = _check_rate(name, "weight_decay", weight_decay, allow_zero=True)
        self._state: dict = {}  # (id(module), key) -> (module, buffers); the module is kept so ids stay unique

    def _gradient(self, module: Module, key: str):
        g = module._gradient[key]
        if self.weight_decay:
            g = g + self.weight_decay * module._parameters[key]
        return g

    def _buffers(self, module: Module, key: str, count: int):
        entry = self._state.get((id(module), key))
        if entry is None:
            xp = module._backend.xp
            entry = (module, [xp.zeros_like(module._parameters[key]) for _ in range(count)])
            self._state[(id(module), key)] = entry
        return entry[1]

    def step(self, net: Module) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the state (velocities, moments)."""
        self._state.clear()

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self._options().items())
        return f"{type(self).__name__}(lr={self.lr}{extra})"

    def _options(self) -> dict:
        return {"weight_decay": self.weight_decay} if self.weight_decay else {}


class GradientDescent(Optimizer):
    """``p <- p - lr * g``: the seed's update. Without weight decay it calls each module's own
    :meth:`~backprop.Module.update_parameters`, so modules that redefine it keep their rule.
    """

    def step(self, net: Module) -> None:
        if not self.weight_decay:
            net.update_parameters(self.lr)
            return
        for m, key in net.parameter_slots():
            m._parameters[key] -= self.lr * self._gradient(m, key)


class Momentum(Optimizer):
    """Gradient descent with momentum (PyTorch's formulation, no dampening).

    ``v <- momentum * v + g``; then ``p <- p - lr * v``, or with ``nesterov=True``
    ``p <- p - lr * (g + momentum * v)``.
    """

    def __init__(self, lr: float = 1e-2, momentum: float = 0.9, *, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        self.momentum = _check_rate("Momentum", "momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"Momentum: momentum must be below 1, got {momentum!r}")
        self.nesterov = bool(nesterov)

    def _options(self) -> dict:
        return {"momentum": self.momentum, **({"nesterov": True} if self.nesterov else {}), **super()._options()}

    def step(self, net: Module) -> None:
        for m, key in net.parameter_slots():
            g = self._gradient(m, key)
            (v,) = self._buffers(m, key, 1)
            v *= self.momentum
            v += g
            m._parameters[key] -= self.lr * (g + self.momentum * v if self.nesterov else v)


class Adam(Optimizer):
    """Adam (Kingma and Ba), with bias correction, as in ``torch.optim.Adam``.

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.
    """

    def __init__(self, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        b1, b2 = betas
        for name, b in (("betas[0]", b1), ("betas[1]", b2)):
            if not (isinstance(b, (int, float)) and 0 <= b < 1):
                raise ValueError(f"Adam: {name} must lie in [0, 1), got {b!r}")
        self.betas = (float(b1), float(b2))
        self.eps = _check_rate("Adam", "eps", eps)
        self.t = 0

    def _options(self) -> dict:
        return {"betas": self.betas, "eps": self.eps, **super()._options()}

    def reset(self) -> None:
        super().reset()
        self.t = 0

    def step(self, net: Module) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for m, key in net.parameter_slots():
            xp = m._backend.xp
            g = self._gradient(m, key)
            mean, sq = self._buffers(m, key, 2)
            mean *= b1
            mean += (1 - b1) * g
            sq *= b2
            sq += (1 - b2) * (g * g)
            m._parameters[key] -= (self.lr / c1) * mean / (xp.sqrt(sq) / math.sqrt(c2) + self.eps)


_NAMES = {"sgd": GradientDescent, "gd": GradientDescent, "momentum": Momentum, "adam": Adam}


def make_optimizer(spec, lr: float) -> Optimizer:
    """An optimizer from a name (``'sgd'``, ``'momentum'``, ``'nesterov'``, ``'adam'``) or an instance."""
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
    raise ValueError(f"unknown optimizer {spec!r}; use one of sgd, momentum, nesterov, adam or an Optimizer instance")


class _Schedule:
    """Sets ``optimizer.lr`` from the epoch; :func:`~backprop.SGD` calls :meth:`step` after each epoch."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def rate(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> float:
        """Advance one epoch; returns the new learning rate."""
        self.epoch += 1
        self.optimizer.lr = self.rate(self.epoch)
        return self.optimizer.lr


class StepLR(_Schedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        self.step_size, self.gamma = step_size, _check_rate("StepLR", "gamma", gamma)

    def rate(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(_Schedule):
    """Cosine annealing from the initial rate to ``min_lr`` over ``total_epochs``."""

    def __init__(self, optimizer: Optimizer, total_epochs: int, min_lr: float = 0.0) -> None:
        super().__init__(optimizer)
        if isinstance(total_epochs, bool) or not isinstance(total_epochs, int) or total_epochs < 1:
            raise ValueError(f"CosineLR: total_epochs must be a positive int, got {total_epochs!r}")
        self.total_epochs, self.min_lr = total_epochs, _check_rate("CosineLR", "min_lr", min_lr, allow_zero=True)

    def rate(self, epoch: int) -> float:
        t = min(epoch, self.total_epochs) / self.total_epochs
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * t))
