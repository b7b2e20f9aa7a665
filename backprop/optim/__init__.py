"""Training: the step, the update rules, the schedules, and the loop with its callbacks.

``rules``: :class:`Optimizer` and its subclasses; ``schedules``: learning-rate
schedules; ``step``: :class:`Optim`, one step; ``loop``: :class:`Trainer`, the
callbacks and :func:`SGD`; ``checkpoint``: resumable runs.
"""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .loop import (
    SGD,
    Callback,
    DivergenceError,
    DivergenceGuard,
    EarlyStopping,
    EpochLog,
    History,
    ProgressBar,
    Trainer,
    Validation,
    batch_bounds,
    evaluate,
)
from .rules import Adam, AdamW, GradientDescent, Momentum, Optimizer, RMSprop, make_optimizer
from .schedules import CosineLR, StepLR, make_schedule
from .step import Optim, validate_targets

__all__ = [
    "SGD", "Adam", "AdamW", "Callback", "Checkpoint", "CosineLR", "DivergenceError",
    "DivergenceGuard", "EarlyStopping", "EpochLog", "GradientDescent", "History", "Momentum",
    "Optim", "Optimizer",
    "ProgressBar", "RMSprop", "StepLR", "Trainer",
    "Validation", "batch_bounds", "evaluate", "load_checkpoint", "make_optimizer", "make_schedule",
    "save_checkpoint", "validate_targets",
]  # fmt: skip
