"""Checkpoints: a training run that can be killed at any moment and resumed exactly.

One ``.npz`` file, written atomically after every epoch (a kill during the
write leaves the previous checkpoint intact), holding the architecture, the
parameters, the optimizer's buffers and step count, and a JSON record of the
rest: epochs done, the random generators' states, the schedule, the
callbacks' state (early stopping's best score and weights) and the history.
Resuming rebuilds all of it, so the resumed run draws the same shuffles and
dropout masks and ends with the same parameters, bit for bit.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from ..backends.random import set_generator_state
from ..io.npz import decode_text, load_npz, save_npz_atomic
from ..serialization import architecture
from .history import Callback, History, same_data

if TYPE_CHECKING:
    from .._typing import FilePath
    from .loop import Trainer

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint"]

FORMAT = 1
_RECORD, _PARAM, _OPT, _CB = "__checkpoint__", "param/", "opt/", "cb/"
_BUFFER = "buffer/"


def save_checkpoint(trainer: Trainer, path: FilePath) -> None:
    """Write everything :func:`load_checkpoint` needs to continue ``trainer`` to ``path``,
    atomically."""
    state = trainer.state_dict()
    arrays = {}
    for i, cb_state in enumerate(state["callbacks"]):
        for name, value in cb_state.pop("arrays", {}).items():
            arrays[f"{_CB}{i}/{name}"] = value
    opt_state = trainer.optimizer.state_dict(trainer.net)
    scalars = {k: opt_state.pop(k) for k in ("steps", "lr")}
    arrays.update({_OPT + k: v for k, v in opt_state.items()})
    arrays.update({_PARAM + name: p for name, p in trainer.net.named_parameters()})
    # buffers (running statistics) under their own prefix; load_state_dict takes both
    arrays.update({_BUFFER + name: b for name, b in trainer.net.named_buffers()})
    record = {
        "format": FORMAT,
        "architecture": architecture(trainer.net),
        "optimizer": {"type": type(trainer.optimizer).__name__, **scalars},
        "hyperparameters": getattr(trainer, "hyperparameters", None),
        "data": trainer.data_identity() if trainer.data_identity is not None else None,
        "trainer": state,
    }
    save_npz_atomic(path, {_RECORD: json.dumps(record), **arrays})


def load_checkpoint(trainer: Trainer, path: FilePath) -> None:
    """Put ``trainer`` (its network, optimizer, schedule, callbacks, generators) back as saved in
    ``path``.

    The checkpoint must come from the same architecture, optimizer and
    settings (:attr:`Trainer.hyperparameters`), the same training data and the
    same stateful callbacks; anything else is a ValueError naming what
    differs. Loading is a transaction: everything is checked before anything
    changes, and a checkpoint that still fails while being applied leaves the
    trainer exactly as it was.
    """
    arrays = load_npz(path)
    record = _record(arrays, path)
    _check_binding(trainer, record, path)
    params = {k[len(_PARAM) :]: v for k, v in arrays.items() if k.startswith(_PARAM)}
    params.update((k[len(_BUFFER) :], v) for k, v in arrays.items() if k.startswith(_BUFFER))
    opt = {k[len(_OPT) :]: v for k, v in arrays.items() if k.startswith(_OPT)}
    state = record["trainer"]
    for i, cb_state in enumerate(state["callbacks"]):
        prefix = f"{_CB}{i}/"
        found = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        if found:
            cb_state["arrays"] = found
    before = _snapshot(trainer)
    try:
        trainer.net.load_state_dict(params)
        trainer.optimizer.load_state_dict(
            trainer.net,
            {**opt, "steps": record["optimizer"]["steps"], "lr": record["optimizer"]["lr"]},
        )
        trainer.load_state_dict(state)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        _restore(trainer, before)
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(
            f"{path}: cannot resume from this checkpoint, nothing was changed ({message})"
        ) from None


def _record(arrays: dict, path) -> dict:
    """The checkpoint's JSON record, its structure checked (ValueError naming ``path``)."""
    if _RECORD not in arrays:
        raise ValueError(f"{path} is not a backprop checkpoint (no checkpoint record)")
    try:
        record = json.loads(decode_text(arrays.pop(_RECORD)))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: the checkpoint record is corrupted ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format")

    def bad(what: str) -> ValueError:
        return ValueError(f"{path}: damaged checkpoint ({what}); nothing was changed")

    opt, state = record.get("optimizer"), record.get("trainer")
    if not isinstance(opt, dict) or not isinstance(opt.get("type"), str):
        raise bad("no optimizer record")
    if not _count(opt.get("steps")):
        raise bad(f"optimizer steps {opt.get('steps')!r}")
    lr = opt.get("lr")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 <= lr < float("inf"):
        raise bad(f"learning rate {lr!r}")
    if not isinstance(state, dict):
        raise bad("no trainer record")
    _check_trainer_record(state, bad)
    return record


def _check_trainer_record(state: dict, bad) -> None:
    epoch, history = state.get("epoch"), state.get("history")
    if not _count(epoch):
        raise bad(f"epoch {epoch!r}")
    if not isinstance(history, dict) or not isinstance(history.get("train_loss"), list):
        raise bad("no history")
    if len(history["train_loss"]) != epoch:
        raise bad(f"{epoch} epochs done but a history of {len(history['train_loss'])}")
    for key in ("rng", "library_rng"):
        if not isinstance(state.get(key), dict):
            raise bad(f"no {key} state")
    if not isinstance(state.get("callbacks"), list) or not all(
        isinstance(c, dict) for c in state["callbacks"]
    ):
        raise bad("no callback states")
    types = state.get("callback_types")
    if types is not None and (
        not isinstance(types, list)
        or len(types) != len(state["callbacks"])
        or not all(isinstance(t, str) for t in types)
    ):
        raise bad("the callback states do not match their types")
    if not isinstance(state.get("module_rngs", []), list):
        raise bad("module_rngs")
    if state.get("scheduler") is not None and not isinstance(state["scheduler"], dict):
        raise bad("scheduler state")


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_binding(trainer: Trainer, record: dict, path) -> None:
    """ValueError when ``record`` was written by another run than ``trainer``'s."""
    if record.get("architecture") != architecture(trainer.net):
        raise ValueError(
            f"{path}: the checkpoint was written for another architecture than this network"
        )
    if record["optimizer"]["type"] != type(trainer.optimizer).__name__:
        raise ValueError(
            f"{path}: the checkpoint was written with optimizer {record['optimizer']['type']}, "
            f"not {type(trainer.optimizer).__name__}"
        )
    saved, now = record.get("hyperparameters"), getattr(trainer, "hyperparameters", None)
    if isinstance(saved, dict) and isinstance(now, dict):
        now = json.loads(json.dumps(now))  # as it would be read back
        changed = [k for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
        if changed:
            shown = ", ".join(f"{k}={saved.get(k)!r} then, {now.get(k)!r} now" for k in changed)
            raise ValueError(
                f"{path}: the checkpoint was written with other settings ({shown}); resume with "
                "the settings it was written with, or start a new checkpoint"
            )
    data = record.get("data")
    if isinstance(data, dict) and trainer.data_identity is not None:
        differs = same_data(data, trainer.data_identity())
        if differs is not None:
            raise ValueError(
                f"{path}: the checkpoint was written while training on other data ({differs}); "
                "resume on the same data, or start a new checkpoint"
            )


def _snapshot(trainer: Trainer) -> tuple:
    state = trainer.state_dict()
    return (
        trainer.net.state_dict(),
        trainer.optimizer.state_dict(trainer.net),
        state,
        trainer.stop,
        trainer.scheduler,
    )


def _restore(trainer: Trainer, snapshot: tuple) -> None:
    params, opt, state, stop, scheduler = snapshot
    trainer.net.load_state_dict(params)
    trainer.optimizer.load_state_dict(trainer.net, opt)
    trainer.scheduler = scheduler
    trainer.epoch = state["epoch"]
    trainer.history = History.from_dict(state["history"])
    set_generator_state(state["library_rng"])
    set_generator_state(state["rng"], trainer.rng)
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    for c, s in zip(trainer.callbacks, state["callbacks"]):
        c.load_state_dict(s)
    rngs = [m._rng for m in trainer.net.unique_modules() if getattr(m, "_rng", None)]
    for rng, s in zip(rngs, state["module_rngs"]):
        set_generator_state(s, rng)
    trainer.stop = stop


class Checkpoint(Callback):
    """Save the run to ``path`` after every epoch; with ``resume``, continue from ``path`` if it
    exists."""

    def __init__(self, path: FilePath, *, resume: bool = False) -> None:
        self.path = os.fspath(path)
        self.resume = resume
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"Checkpoint: the directory of {self.path} does not exist")

    def on_train_begin(self, trainer: Trainer) -> None:
        # a run that ended (early stopping) is not trained further: load_checkpoint sets
        # trainer.stop, and the end of training (best weights put back) runs again
        if self.resume and os.path.exists(self.path):
            load_checkpoint(trainer, self.path)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        save_checkpoint(trainer, self.path)
