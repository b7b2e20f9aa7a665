"""Learning-rate schedules: each sets ``optimizer.lr`` from the epoch."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeAlias

from .._checks import positive_int
from .rules import Optimizer, _check_rate

__all__ = ["CosineLR", "StepLR", "make_schedule"]


class _Schedule:
    """Sets ``optimizer.lr`` from the epoch; :func:`~backprop.SGD` calls :meth:`step` after each
    epoch."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def rate(self, epoch: int) -> float:
        """The learning rate after ``epoch`` epochs."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """``{"epoch", "base_lr"}``: what a checkpoint needs to continue the schedule."""
        return {"epoch": self.epoch, "base_lr": self.base_lr}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` (sets the optimizer's rate for that epoch)."""
        epoch = positive_int(
            f"{type(self).__name__}.load_state_dict", "epoch", state.get("epoch"), minimum=0
        )
        base = state.get("base_lr")
        self.base_lr = _check_rate(type(self).__name__, "base_lr", base)
        self.epoch = epoch
        if epoch:
            self.optimizer.lr = self.rate(epoch)

    def step(self) -> float:
        """Advance one epoch; returns the new learning rate."""
        self.epoch += 1
        self.optimizer.lr = self.rate(self.epoch)
        return self.optimizer.lr


class StepLR(_Schedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        step_size = positive_int("StepLR", "step_size", step_size)
        self.step_size, self.gamma = step_size, _check_rate("StepLR", "gamma", gamma)

    def rate(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(_Schedule):
    """Cosine annealing from the initial rate to ``min_lr`` over ``total_epochs``."""

    def __init__(self, optimizer: Optimizer, total_epochs: int, min_lr: float = 0.0) -> None:
        super().__init__(optimizer)
        total_epochs = positive_int("CosineLR", "total_epochs", total_epochs)
        self.total_epochs, self.min_lr = (
            total_epochs,
            _check_rate("CosineLR", "min_lr", min_lr, allow_zero=True),
        )

    def rate(self, epoch: int) -> float:
        t = min(epoch, self.total_epochs) / self.total_epochs
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * t))


#: what a ``scheduler`` argument takes: None, ``'cosine'``, a schedule, or a function
#: optimizer -> schedule
ScheduleSpec: TypeAlias = _Schedule | str | Callable[[Optimizer], _Schedule] | None


def make_schedule(spec: ScheduleSpec, optimizer: Optimizer, epochs: int) -> _Schedule | None:
    """A schedule from ``None``, a schedule, a function ``optimizer -> schedule``, or ``'cosine'``
    (over ``epochs``); checked before any training."""
    if spec is None or isinstance(spec, _Schedule):
        return spec
    if spec == "cosine":
        return CosineLR(optimizer, total_epochs=max(epochs, 1))
    if callable(spec):
        schedule = spec(optimizer)
        if not isinstance(schedule, _Schedule):
            raise TypeError(
                f"scheduler: the function returned {type(schedule).__name__}, expected a schedule "
                "such as CosineLR"
            )
        return schedule
    raise ValueError(
        "scheduler must be None, 'cosine', a schedule or a function optimizer -> schedule, got "
        f"{spec!r}"
    )
