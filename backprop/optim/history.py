"""The record of a training run and the interface of its parts: :class:`History`,
:class:`Callback`, and what a checkpoint records of the data.

Both the loop (:mod:`backprop.optim.loop`) and the checkpoints
(:mod:`backprop.optim.checkpoint`) build on this module, which imports neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._typing import Array
    from .loop import Trainer

__all__ = ["Callback", "History", "data_identity", "same_data"]


class History(list):
    """What :func:`SGD` returns: the per-epoch mean training cost as a list of floats
    (the assignment's return value), with the rest of the record as attributes.

    Attributes
    ----------
    val_loss, metric : list of float
        Per epoch, when validation data (and a metric) were given.
    time : list of float
        Seconds per epoch.
    lr : list of float
        Learning rate used in each epoch.
    best_epoch : int or None
        1-based epoch of the best validation score, when validating.
    restored_epoch : int or None
        1-based epoch whose parameters the network holds at the end because
        they were put back (``restore_best``: a later epoch scored worse on the
        validation data); None when the network holds the last epoch's.
    resumed_after : int or None
        Epochs already complete when the run was resumed from a checkpoint
        (None: not resumed).
    stopped_early : bool
    """

    def __init__(self) -> None:
        super().__init__()
        self.val_loss: list[float] = []
        self.metric: list[float] = []
        self.time: list[float] = []
        self.lr: list[float] = []
        self.best_epoch: int | None = None
        self.restored_epoch: int | None = None
        self.resumed_after: int | None = None
        self.stopped_early = False

    @property
    def train_loss(self) -> list[float]:
        """The per-epoch mean training costs (the list itself, as a plain list)."""
        return list(self)

    def as_dict(self) -> dict:
        """Everything recorded, as JSON-serialisable lists and values."""
        return {
            "train_loss": list(self),
            "val_loss": self.val_loss,
            "metric": self.metric,
            "time": self.time,
            "lr": self.lr,
            "best_epoch": self.best_epoch,
            "restored_epoch": self.restored_epoch,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, record: dict) -> History:
        history = cls()
        history.extend(float(v) for v in record.get("train_loss", []))
        for name in ("val_loss", "metric", "time", "lr"):
            setattr(history, name, [float(v) for v in record.get(name, [])])
        history.best_epoch = record.get("best_epoch")
        history.restored_epoch = record.get("restored_epoch")
        history.stopped_early = bool(record.get("stopped_early", False))
        return history


class Callback:
    """A part of the training loop. Override the hooks you need; each gets the :class:`Trainer`.

    ``on_epoch_end`` receives ``logs``, the epoch's record so far (``loss``,
    ``lr``, ``time``, and what earlier callbacks added, e.g. ``val_loss``);
    a callback may add to it. Setting ``trainer.stop = True`` ends training
    after this epoch. :meth:`state_dict` / :meth:`load_state_dict` carry a
    callback's state through a checkpoint.
    """

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def check_state(self, trainer: Trainer, state: dict) -> None:
        """ValueError when ``state`` (from a checkpoint) cannot be this callback's in
        ``trainer``; called before anything is loaded."""

    def load_state_dict(self, state: dict) -> None: ...


def data_identity(backend, X: Array, Y: Array) -> dict:
    """What a checkpoint records of the training data: the shapes, and sums of the values
    (plain and weighted by row position) that another data set, or the same rows in another
    order, would not give."""
    xp = backend.xp
    dtype = backend.dtype
    record = {"rows": int(X.shape[0])}
    for name, A in (("X", X), ("Y", Y)):
        values = xp.reshape(xp.astype(A, dtype), (A.shape[0], -1))
        weights = xp.astype(xp.arange(A.shape[0]) % 13 + 1, dtype)
        rows = xp.sum(xp.abs(values), axis=1)
        record[name] = {
            "shape": [int(s) for s in A.shape[1:]],
            "abs_sum": float(xp.sum(rows)),
            "weighted_sum": float(xp.sum(rows * weights)),
        }
    return record


def same_data(saved: dict, now: dict) -> str | None:
    """None when two :func:`data_identity` records describe the same data, else what differs."""
    if saved.get("rows") != now.get("rows"):
        return f"{saved.get('rows')} rows then, {now.get('rows')} now"
    for name in ("X", "Y"):
        a, b = saved.get(name) or {}, now.get(name) or {}
        if a.get("shape") != b.get("shape"):
            return f"{name} rows of shape {a.get('shape')} then, {b.get('shape')} now"
        for key in ("abs_sum", "weighted_sum"):
            x, y = float(a.get(key, 0.0)), float(b.get(key, 0.0))
            if not abs(x - y) <= 1e-4 * max(abs(x), abs(y)) + 1e-6:
                return f"other values in {name}"
    return None
