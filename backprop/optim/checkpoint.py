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

from ..backends.npz import decode_text, load_npz, save_npz_atomic
from ..serialization import architecture
from .loop import Callback, Trainer

if TYPE_CHECKING:
    from .._typing import FilePath

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
        "trainer": state,
    }
    save_npz_atomic(path, {_RECORD: json.dumps(record), **arrays})


def load_checkpoint(trainer: Trainer, path: FilePath) -> None:
    """Put ``trainer`` (its network, optimizer, schedule, callbacks, generators) back as saved in
    ``path``.

    The checkpoint must come from the same architecture and optimizer type;
    everything is checked before anything changes.
    """
    arrays = load_npz(path)
    if _RECORD not in arrays:
        raise ValueError(f"{path} is not a backprop checkpoint (no checkpoint record)")
    try:
        record = json.loads(decode_text(arrays.pop(_RECORD)))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: the checkpoint record is corrupted ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format")
    if record.get("architecture") != architecture(trainer.net):
        raise ValueError(
            f"{path}: the checkpoint was written for another architecture than this network"
        )
    if record["optimizer"].get("type") != type(trainer.optimizer).__name__:
        raise ValueError(
            f"{path}: the checkpoint was written with optimizer {record['optimizer'].get('type')}, "
            f"not {type(trainer.optimizer).__name__}"
        )
    params = {k[len(_PARAM) :]: v for k, v in arrays.items() if k.startswith(_PARAM)}
    params.update((k[len(_BUFFER) :], v) for k, v in arrays.items() if k.startswith(_BUFFER))
    opt = {k[len(_OPT) :]: v for k, v in arrays.items() if k.startswith(_OPT)}
    state = record["trainer"]
    for i, cb_state in enumerate(state.get("callbacks", [])):
        prefix = f"{_CB}{i}/"
        found = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        if found:
            cb_state["arrays"] = found
    trainer.net.load_state_dict(params)
    trainer.optimizer.load_state_dict(
        trainer.net, {**opt, "steps": record["optimizer"]["steps"], "lr": record["optimizer"]["lr"]}
    )
    trainer.load_state_dict(state)


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
        if self.resume and os.path.exists(self.path):
            load_checkpoint(trainer, self.path)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        save_checkpoint(trainer, self.path)
