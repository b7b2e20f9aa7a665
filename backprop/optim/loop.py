"""Mini-batch training built from small parts: a :class:`Trainer` and its callbacks.

The trainer owns the epoch loop (shuffle, batches, steps, the learning-rate
schedule); everything else is a :class:`Callback` with hooks at the start
and end of training and of each epoch: :class:`Validation`,
:class:`EarlyStopping`, :class:`ProgressBar`, :class:`EpochLog`,
:class:`~backprop.optim.checkpoint.Checkpoint` and
:class:`DivergenceGuard`. :func:`SGD` is the assignment's function, a thin
layer that assembles them from its arguments.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TextIO

from .._checks import positive_int
from ..backends import asarray, host_rng
from ..backends.random import generator_state, set_generator_state
from ..module import Loss, Module
from .checkpoint import Checkpoint
from .history import Callback, History, data_identity
from .rules import Optimizer, make_optimizer
from .schedules import make_schedule
from .step import Optim, backend_of_net, learning_rate, validate_targets

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike, FilePath, Metric
    from ..backends.random import RNG
    from .schedules import ScheduleSpec

__all__ = [
    "SGD", "Callback", "DivergenceError", "DivergenceGuard", "EarlyStopping", "EpochLog", "History",
    "ProgressBar", "Trainer", "Validation", "assemble_callbacks", "batch_bounds",
    "check_callback_options", "evaluate", "even_parts",
]  # fmt: skip


class DivergenceError(FloatingPointError):
    """The training loss became NaN or infinite."""


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into ``ceil(n / batch_size)`` slices whose sizes differ by at most one.

    Every row is used each epoch and no batch is tiny: 1347 rows in batches of
    32 give 43 batches of 31 or 32 rows rather than 42 of 32 and one of 3 (a
    3-row batch takes a full-size step on a very noisy gradient).
    """
    return even_parts(n, -(-n // batch_size))


def even_parts(n: int, count: int) -> list[tuple[int, int]]:
    """``range(n)`` in ``count`` consecutive ``(start, stop)`` parts whose sizes differ by at most
    one (the larger ones first)."""
    base, extra = divmod(n, count)
    bounds, start = [], 0
    for i in range(count):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def _check_data(backend, X, Y, what="SGD"):
    X = asarray(X, backend=backend)
    Y = asarray(Y, backend=backend)
    if X.ndim < 1 or Y.ndim < 1 or X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"{what}: X and Y must have the same number of rows, got X {tuple(X.shape)} and Y "
            f"{tuple(Y.shape)}"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{what}: the data set is empty")
    return X, Y


def evaluate(
    net: Module,
    loss: Loss,
    X: ArrayLike,
    Y: ArrayLike,
    batch_size: int = 1024,
    metric: Metric | None = None,
) -> tuple[float, float | None]:
    """Mean cost (and ``metric(yhat, Y)``) of ``net`` on ``(X, Y)`` in evaluation mode.

    Returns ``(cost, metric_value)``; ``metric_value`` is None without a metric.
    """
    batch_size = positive_int("evaluate", "batch_size", batch_size)
    backend = backend_of_net(net)
    X, Y = _check_data(backend, X, Y, "evaluate")
    xp = backend.xp
    modes = [(m, m.training) for m in net.unique_modules()]
    net.eval()
    try:
        outputs, total = [], None
        for start, stop in batch_bounds(X.shape[0], batch_size):
            yhat = net.chain_forward(X[start:stop, ...])
            part = xp.sum(loss.forward(Y[start:stop, ...], yhat))
            total = part if total is None else total + part
            if metric is not None:
                outputs.append(backend.copy(yhat))
    finally:
        for m, mode in modes:
            m.training = mode
        for m in net.unique_modules():
            m.clear_cache()
    value = None if metric is None else float(metric(xp.concat(outputs, axis=0), Y))
    return float(total) / X.shape[0], value


# --------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------


class DivergenceGuard(Callback):
    """Stop with :class:`DivergenceError` (naming the epoch and batch) when a batch cost is NaN or
    infinite.

    The parameters are put back as they were at the start of that epoch, so
    the network is never left holding NaN or infinite weights.
    """

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        # the optimizer's buffers too: a velocity holding NaN would make a retry diverge again
        self._snapshot = trainer.net.state_dict()
        self._optimizer_snapshot = trainer.optimizer.state_dict(trainer.net)

    def check(self, trainer: Trainer, epoch: int, costs: Array) -> None:
        xp = trainer.backend.xp
        finite = xp.isfinite(costs)
        if bool(xp.all(finite)):
            return
        batch = int(xp.argmax(xp.astype(xp.logical_not(finite), xp.int8))) + 1
        value = float(costs[batch - 1])
        trainer.net.load_state_dict(self._snapshot)
        trainer.optimizer.load_state_dict(trainer.net, self._optimizer_snapshot)
        raise DivergenceError(
            f"SGD: the cost became {value} at epoch {epoch}, batch {batch} of "
            f"{len(trainer.bounds)}; lower the learning rate (eps={trainer.optim.eps}) or check "
            "the data for NaN/inf; the parameters and the optimizer's state were restored to "
            "their values at the start of that epoch"
        )


class Validation(Callback):
    """Evaluate on ``(X_val, Y_val)`` after every epoch: adds ``val_loss`` (and ``metric``) to the
    logs."""

    def __init__(
        self,
        X_val: ArrayLike,
        Y_val: ArrayLike,
        metric: Metric | None = None,
        batch_size: int = 1024,
    ) -> None:
        self.data, self.metric = (X_val, Y_val), metric
        self.batch_size = positive_int(type(self).__name__, "batch_size", batch_size)

    @staticmethod
    def evaluate(
        net: Module,
        loss: Loss,
        X: ArrayLike,
        Y: ArrayLike,
        *,
        batch_size: int,
        metric: Metric | None,
    ) -> tuple[float, float | None]:
        """The evaluation run after every epoch: :func:`evaluate`, on data in memory
        (:class:`~backprop.streaming.StreamingValidation` reads its data chunk by chunk)."""
        return evaluate(net, loss, X, Y, batch_size=batch_size, metric=metric)

    def on_train_begin(self, trainer: Trainer) -> None:
        self.data = _check_data(trainer.backend, *self.data, what="SGD validation")
        xp = trainer.backend.xp
        for name, A in zip(("X_val", "Y_val"), self.data):
            if xp.isdtype(A.dtype, "real floating") and not bool(xp.all(xp.isfinite(A))):
                raise ValueError(
                    f"SGD validation: {name} holds NaN or infinite values; clean the data first "
                    "(a NaN validation cost would end early stopping at the first epoch)"
                )

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        val, score = self.evaluate(
            trainer.net, trainer.loss, *self.data, batch_size=self.batch_size, metric=self.metric
        )
        if not math.isfinite(val):
            raise ValueError(
                f"SGD validation: the validation cost is {val} after epoch {epoch}: the network's "
                "outputs on the validation data overflow, or that data holds NaN or infinite "
                "values; early stopping cannot compare it"
            )
        logs["val_loss"] = val
        trainer.history.val_loss.append(val)
        if score is not None:
            logs["metric"] = score
            trainer.history.metric.append(score)


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without improvement of ``monitor`` (after
    :class:`Validation`).

    ``monitor`` is ``'val_loss'`` (lower is better) or ``'metric'`` (higher is
    better). With ``restore_best`` the parameters of the best epoch are put
    back at the end, and :attr:`History.restored_epoch` says which epoch they
    are from (verbose output prints it). ``patience=None`` only tracks the best
    epoch.

    Validate on data held out from the training set (for example
    ``backprop.data.train_test_split(X_train, y_train, test_size=0.2)``), never
    on the test set: the restored network is chosen on the validation data, so
    its score there is optimistic.
    """

    def __init__(
        self, patience: int | None = None, monitor: str = "val_loss", restore_best: bool = True
    ) -> None:
        if monitor not in ("val_loss", "metric"):
            raise ValueError(
                f"EarlyStopping: monitor must be 'val_loss' or 'metric', got {monitor!r}"
            )
        self.patience, self.monitor, self.restore_best = patience, monitor, restore_best
        self.best, self.waited, self.best_state = None, 0, None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping: no {self.monitor!r} in the epoch's logs; put a Validation "
                "callback first"
            )
        current = logs["val_loss"] if self.monitor == "val_loss" else -logs["metric"]
        if self.best is None or current < self.best:
            self.best, self.waited = current, 0
            trainer.history.best_epoch = epoch
            self.best_state = trainer.net.state_dict() if self.restore_best else None
        else:
            self.waited += 1
        if self.patience is not None and self.waited >= self.patience:
            trainer.history.stopped_early = True
            trainer.stop = True

    def on_train_end(self, trainer: Trainer) -> None:
        history = trainer.history
        if self.best_state is not None and history.best_epoch != len(history):
            trainer.net.load_state_dict(self.best_state)
            history.restored_epoch = history.best_epoch

    def state_dict(self) -> dict:
        return {"best": self.best, "waited": self.waited, "arrays": self.best_state or {}}

    def check_state(self, trainer: Trainer, state: dict) -> None:
        best, waited = state.get("best"), state.get("waited", 0)
        if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))):
            raise ValueError(f"EarlyStopping: the best score {best!r} is not a number")
        positive_int("EarlyStopping", "waited", waited, minimum=0)
        arrays = state.get("arrays") or {}
        if arrays:
            # the best weights must fit this network: they are put back at the end
            shapes = {n: tuple(p.shape) for n, p in trainer.net.named_parameters()}
            got = {n: tuple(getattr(a, "shape", ())) for n, a in arrays.items()}
            if got != shapes:
                wrong = sorted(set(got.items()) ^ set(shapes.items()))[:2]
                raise ValueError(
                    f"EarlyStopping: the best weights do not fit this network ({wrong})"
                )

    def load_state_dict(self, state: dict) -> None:
        self.best, self.waited = state.get("best"), int(state.get("waited", 0))
        self.best_state = state.get("arrays") or None


class EpochLog(Callback):
    """Print one line per epoch (cost, validation cost and metric, time) to ``stream``."""

    def __init__(self, stream: TextIO | None = None, metric_name: str = "metric") -> None:
        self.stream, self.metric_name = stream, metric_name

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        print(
            f"{_line(epoch, trainer.epochs, logs, self.metric_name)}  ({logs['time']:.2f} s)",
            file=self.stream or sys.stdout,
            flush=True,
        )

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        resumed = trainer.history.resumed_after
        if resumed and epoch == resumed + 1:
            print(
                f"resumed from the checkpoint after epoch {resumed}/{trainer.epochs}",
                file=self.stream or sys.stdout,
                flush=True,
            )

    def on_train_end(self, trainer: Trainer) -> None:
        message = _restore_message(trainer.history)
        if message:
            print(message, file=self.stream or sys.stdout, flush=True)


class ProgressBar(Callback):
    """A tqdm bar over the epochs (when tqdm is installed), which stays on screen at the end."""

    def __init__(self, metric_name: str = "metric") -> None:
        self.metric_name, self.bar = metric_name, None

    def on_train_begin(self, trainer: Trainer) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self.bar = tqdm(
            total=trainer.epochs,
            initial=trainer.epoch,
            unit="epoch",
            leave=True,
            dynamic_ncols=True,
        )

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(
                _line(epoch, trainer.epochs, logs, self.metric_name).split("  ", 1)[1]
            )
            self.bar.update(1)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            message = _restore_message(trainer.history)
            if message:
                print(message, file=sys.stderr, flush=True)


def _restore_message(history: History) -> str | None:
    """The line that says the network holds an earlier epoch's parameters (None if not)."""
    epoch = history.restored_epoch
    if epoch is None:
        return None
    scores = history.metric or history.val_loss
    if len(scores) != len(history):  # a validation other than Validation's
        return (
            f"restored the parameters of epoch {epoch}, the best on the validation data "
            f"(the last epoch was {len(history)})"
        )
    what = "metric" if history.metric else "val cost"
    return (
        f"restored the parameters of epoch {epoch} (validation {what} {scores[epoch - 1]:.4f}, "
        f"against {scores[-1]:.4f} at the last epoch, {len(history)})"
    )


def _line(epoch: int, epochs: int, logs: dict, metric_name: str) -> str:
    line = f"epoch {epoch:3d}/{epochs}  cost {logs['loss']:.5f}"
    if "val_loss" in logs:
        line += f"  val cost {logs['val_loss']:.5f}"
    if "metric" in logs:
        line += f"  {metric_name} {logs['metric']:.4f}"
    return line


# --------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------


class Trainer:
    """The epoch loop: shuffle, split into batches, one :class:`Optim` step per batch, schedule,
    callbacks.

    Parameters
    ----------
    net : Module
    loss : Loss
    optimizer : None, str or Optimizer
        As for :class:`Optim`; ``eps`` (default 1e-3) is the learning rate for a name.
        With an :class:`Optimizer` instance its own ``lr`` is used, and an ``eps``
        that differs from it is refused.
    batch_size : int
    shuffle : bool
    seed : None, int or numpy Generator
        The shuffles' random stream (the library's host generator by default).
    scheduler : None, 'cosine', a schedule or a function optimizer -> schedule
    callbacks : list of Callback
        Run in order; a :class:`DivergenceGuard` is always first.
    compile : bool or 'auto'
        Compiled steps where the backend can (see :class:`Optim`); ``'auto'``
        compiles unless the network draws random numbers in forward.

    Notes
    -----
    Batch costs stay on the device during an epoch and are read once at its
    end; targets are validated once, up front, so after that a GPU step
    never waits for the host.
    """

    def __init__(
        self,
        net: Module,
        loss: Loss,
        optimizer: str | Optimizer | None = None,
        *,
        eps: float | None = None,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: RNG = None,
        scheduler: ScheduleSpec = None,
        callbacks: Iterable[Callback] = (),
        compile: bool | Literal["auto"] = "auto",
    ) -> None:
        batch_size = _positive_int("batch_size", batch_size)
        rate = learning_rate(self.loop_name, eps, None, optimizer)
        if isinstance(optimizer, Optimizer) and eps is not None and rate != optimizer.lr:
            raise ValueError(
                f"{self.loop_name}: eps={eps!r} and optimizer={optimizer!r} name two learning "
                "rates; the optimizer's own lr is the one used: drop eps or make them agree"
            )
        self.optim = Optim(net, loss, optimizer=make_optimizer(optimizer, rate), compile=compile)
        self.hyperparameters = _hyperparameters(
            self.optim.optimizer, batch_size, shuffle, scheduler
        )
        self.net, self.loss, self.batch_size, self.shuffle = net, loss, batch_size, bool(shuffle)
        self.rng = host_rng(seed)
        self.backend = backend_of_net(net)
        self.guard = DivergenceGuard()
        self.callbacks = [self.guard]
        self.add_callbacks(callbacks)
        self._scheduler_spec = scheduler
        self.scheduler = (
            make_schedule(scheduler, self.optim.optimizer, 1) if scheduler != "cosine" else None
        )
        self.history = History()
        self.epoch = 0  # epochs completed
        self.epochs = 0
        self.stop = False
        #: during :meth:`fit`, a function giving what identifies the data (for checkpoints)
        self.data_identity: Callable[[], dict] | None = None

    #: the name :func:`SGD`'s argument errors give when it drives this loop
    loop_name = "SGD"

    @property
    def optimizer(self) -> Optimizer:
        return self.optim.optimizer

    def add_callbacks(self, callbacks: Iterable[Callback]) -> None:
        """Append ``callbacks`` (run after those already there)."""
        callbacks = list(callbacks)
        for c in callbacks:
            if not isinstance(c, Callback):
                raise TypeError(
                    f"{type(self).__name__}: callbacks must be Callback instances, "
                    f"got {type(c).__name__}"
                )
        self.callbacks.extend(callbacks)

    def validation_callback(
        self, X_val: ArrayLike, Y_val: ArrayLike, metric: Metric | None = None
    ) -> Callback:
        """The callback that validates on ``(X_val, Y_val)`` for this loop's kind of data."""
        return Validation(X_val, Y_val, metric=metric)

    def close(self) -> None:
        """Release what the loop holds beyond the network (nothing here; a cluster client
        in :class:`~backprop.distributed.DataParallelTrainer`)."""

    def fit(self, X: ArrayLike, Y: ArrayLike, epochs: int) -> History:
        """Train until ``epochs`` epochs are complete (counting those already done); returns the
        history."""
        epochs = _positive_int("epochs", epochs, minimum=0)
        X, Y = _check_data(self.backend, X, Y)
        validate_targets(self.net, self.loss, X, Y)
        n = X.shape[0]
        bounds = batch_bounds(n, self.batch_size)
        sizes = [float(b - a) for a, b in bounds]
        self.data_identity = run_once(lambda: data_identity(self.backend, X, Y))
        try:
            return self.run_epochs(
                epochs, n, len(bounds), lambda: (self._run_epoch(X, Y, bounds), sizes)
            )
        finally:
            self.data_identity = None

    def run_epochs(
        self,
        epochs: int,
        n: int,
        batches: int,
        run_epoch: Callable[[], tuple[Array, Sequence[float]]],
    ) -> History:
        """The epoch loop of :meth:`Trainer.fit <backprop.Trainer.fit>` around ``run_epoch()``.

        ``run_epoch()`` trains one epoch and returns ``(costs, sizes)``: the batch
        mean costs as a 1-D array of the network's backend and the batch sizes.
        ``batches`` is the number of batches per epoch (named in divergence
        errors). Callbacks, divergence guard, schedule and history behave as in
        :class:`~backprop.Trainer`.
        """
        epochs = positive_int(f"{type(self).__name__}.fit", "epochs", epochs, minimum=0)
        self.epochs = epochs = min(epochs, max_epochs() or epochs)
        if self._scheduler_spec == "cosine" and self.scheduler is None:
            self.scheduler = make_schedule("cosine", self.optim.optimizer, epochs)
        self.bounds = range(batches)  # the guard names "batch i of len(bounds)"
        xp = self.backend.xp
        modes = [(m, m.training) for m in self.net.unique_modules()]
        self.net.train()
        self.stop = False
        try:
            for c in self.callbacks:
                c.on_train_begin(self)
            while self.epoch < epochs and not self.stop:
                epoch = self.epoch + 1
                for c in self.callbacks:
                    c.on_epoch_begin(self, epoch)
                t0 = time.perf_counter()
                lr = self.optim.eps
                costs, sizes = run_epoch()
                self.guard.check(self, epoch, costs)
                weights = asarray(sizes, backend=self.backend)
                logs = {"loss": float(xp.sum(costs * weights)) / n, "lr": lr}
                self.history.append(logs["loss"])
                self.history.lr.append(lr)
                if self.scheduler is not None:
                    self.scheduler.step()
                self.epoch = epoch
                logs["time"] = time.perf_counter() - t0
                self.history.time.append(logs["time"])
                for c in self.callbacks:
                    c.on_epoch_end(self, epoch, logs)
        finally:
            for m, mode in modes:
                m.training = mode
            for c in self.callbacks:
                c.on_train_end(self)
        return self.history

    def _run_epoch(self, X, Y, bounds):
        xp = self.backend.xp
        if self.shuffle:
            order = asarray(self.rng.permutation(X.shape[0]), backend=self.backend)
            X, Y = xp.take(X, order, axis=0), xp.take(Y, order, axis=0)
        with Loss.targets_checked():
            return xp.stack([self.optim.step(X[a:b, ...], Y[a:b, ...]) for a, b in bounds])

    # ---------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        """Everything a resumed run needs besides the parameters (see
        :class:`~backprop.optim.checkpoint.Checkpoint`)."""
        return {
            "epoch": self.epoch,
            "rng": generator_state(self.rng),
            "library_rng": generator_state(),
            "history": self.history.as_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "callbacks": [c.state_dict() for c in self.callbacks],
            "callback_types": [type(c).__name__ for c in self.callbacks],
            "module_rngs": [
                generator_state(m._rng)
                for m in self.net.unique_modules()
                if getattr(m, "_rng", None)
            ],
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        set_generator_state(state["library_rng"])
        set_generator_state(state["rng"], self.rng)
        self.history = History.from_dict(state["history"])
        self.history.resumed_after = self.epoch
        if state.get("scheduler") is not None:
            if self.scheduler is None and self._scheduler_spec == "cosine":
                self.scheduler = make_schedule("cosine", self.optim.optimizer, max(self.epochs, 1))
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
        pairs = self.pair_callback_states(state)
        for c, s in pairs:
            c.check_state(self, s)
        for c, s in pairs:
            c.load_state_dict(s)
        if self.history.stopped_early:
            self.stop = True  # a finished run: nothing more to train
        rngs = [m._rng for m in self.net.unique_modules() if getattr(m, "_rng", None)]
        for rng, s in zip(rngs, state.get("module_rngs", [])):
            set_generator_state(s, rng)

    def pair_callback_states(self, state: dict) -> list[tuple[Callback, dict]]:
        """``(callback, saved state)`` pairs: the k-th callback of a type gets the k-th state
        saved for that type (callbacks without state, a progress bar, may come and go).

        ValueError when a saved state has no callback of its type here, or a callback that
        keeps state has none saved: resuming would not continue the same run.
        """
        states = list(state.get("callbacks", []))
        types = state.get("callback_types")
        if types is None:  # written before the types were recorded: by position
            return list(zip(self.callbacks, states))
        saved: dict = {}
        for name, s in zip(types, states):
            if s:
                saved.setdefault(name, []).append(s)
        pairs = []
        for c in self.callbacks:
            name = type(c).__name__
            if saved.get(name):
                pairs.append((c, saved[name].pop(0)))
            elif c.state_dict():
                raise ValueError(
                    f"the checkpoint holds no state for this run's {name}: it was written by a "
                    "run without it (resume with the same validation and callbacks)"
                )
        left = [name for name, rest in saved.items() if rest]
        if left:
            raise ValueError(
                f"the checkpoint holds the state of {', '.join(left)}, which this run does not "
                "have (resume with the same validation and callbacks)"
            )
        return pairs


def run_once(compute: Callable[[], dict]) -> Callable[[], dict]:
    """``compute`` run once, on the first call."""
    done: list = []

    def get() -> dict:
        if not done:
            done.append(compute())
        return done[0]

    return get


def _hyperparameters(optimizer: Optimizer, batch_size, shuffle, scheduler) -> dict:
    """What a checkpoint binds of the training's settings: the optimizer's type and options
    (its learning rate as given, before any schedule), the batch size, the shuffling and the
    schedule."""
    options = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in sorted(vars(optimizer).items())
        if not k.startswith("_") and k != "steps" and isinstance(v, (bool, int, float, str, tuple))
    }
    if scheduler is None or isinstance(scheduler, str):
        schedule = scheduler
    else:
        schedule = getattr(scheduler, "__qualname__", type(scheduler).__name__)
    return {
        "optimizer": type(optimizer).__name__,
        **options,
        "batch_size": int(batch_size),
        "shuffle": bool(shuffle),
        "scheduler": schedule,
    }


def max_epochs() -> int | None:
    """The cap ``BACKPROP_MAX_EPOCHS`` puts on every training's epochs (None: no cap).

    For smoke runs of code written for long trainings (the README's blocks, the
    notebook, the examples): ``BACKPROP_MAX_EPOCHS=2`` runs each training for at
    most 2 epochs, whatever its ``epochs``.
    """
    text = os.environ.get("BACKPROP_MAX_EPOCHS", "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"BACKPROP_MAX_EPOCHS must be a positive integer, got {text!r}")
    return int(text)


def _positive_int(name, value, minimum=1):
    return positive_int("SGD", name, value, minimum)


def SGD(
    net: Module,
    loss: Loss,
    X: ArrayLike,
    Y: ArrayLike,
    batch_size: int = 32,
    epochs: int = 10,
    eps: float | None = None,
    shuffle: bool = True,
    seed: RNG = None,
    verbose: bool = False,
    *,
    lr: float | None = None,
    optimizer: str | Optimizer | None = None,
    scheduler: ScheduleSpec = None,
    validation: tuple[ArrayLike, ArrayLike] | None = None,
    metric: Metric | None = None,
    patience: int | None = None,
    monitor: str = "val_loss",
    restore_best: bool = True,
    progress: bool = False,
    callbacks: Iterable[Callback] = (),
    checkpoint: FilePath | None = None,
    resume: bool = False,
    compile: bool | str = "auto",
    trainer: type[Trainer] | None = None,
    **trainer_options: Any,
) -> History:
    """Mini-batch gradient descent; returns the per-epoch mean training cost (a :class:`History`).

    The assignment's function, assembled from a :class:`Trainer` and its callbacks.

    Parameters
    ----------
    net : Module
        The network to train, in place.
    loss : Loss
        The cost, e.g. :class:`~backprop.CELogSoftmax` on raw scores.
    X : array or host data
        Inputs ``(n, ...)``; moved to the network's backend.
    Y : array or host data
        Targets ``(n, ...)`` (integer labels ``(n,)`` for the classification losses).
    batch_size : int
        Largest batch; the rows of an epoch are split into ``ceil(n / batch_size)``
        batches of nearly equal size (see :func:`batch_bounds`).
    epochs : int
        Passes over the data (``BACKPROP_MAX_EPOCHS``, when set, caps it).
    eps : float, optional
        Learning rate (the assignment's name; ``lr`` is an alias). Not Adam's
        numerical epsilon. By default 0.1 for gradient descent (plain,
        momentum, Nesterov) and 1e-3 for Adam: with the
        other defaults, 10 epochs in batches of 32, the assignment's MLP
        reaches about 0.94 on the digits.
    shuffle : bool
        Draw a new order of the rows every epoch.
    seed : None, int or numpy Generator
        Order of the shuffles (the library's host generator by default).
    verbose : bool
        Print one line per epoch.
    optimizer : None, str or Optimizer
        As for :class:`Optim` (plain gradient descent by default).
    scheduler : None, 'cosine', a schedule, or a function optimizer -> schedule
        Stepped after every epoch.
    validation : (X_val, Y_val), optional
        Evaluated after every epoch in evaluation mode.
    metric : callable, optional
        ``metric(yhat, y) -> float`` on the validation data, e.g. :func:`backprop.accuracy`.
    patience : int, optional
        Early stopping after ``patience`` epochs without improvement. Needs ``validation``.
    monitor : {'val_loss', 'metric'}
    restore_best : bool
        With validation, put back the parameters of the best epoch at the end;
        :attr:`History.restored_epoch` says which (verbose output prints it).
        Validate on rows held out from the training data, not on the test set.
    progress : bool
        Show a tqdm progress bar (when tqdm is installed).
    callbacks : list of Callback
        More parts of the loop, run after the ones above.
    checkpoint : path, optional
        Write the model, optimizer, schedule, epoch, early-stopping state and
        random generators atomically after every epoch.
    resume : bool
        Continue from ``checkpoint`` if it exists (a fresh start otherwise):
        a run killed at any point and resumed ends with the same parameters,
        bit for bit, as one that was never interrupted.
    compile : bool or 'auto'
        Compiled steps where the backend can (``jax.jit`` on JAX); the default
        ``'auto'`` compiles unless the network draws random numbers in forward
        (Dropout in training mode), whose steps run eagerly. Same parameters
        either way.
    trainer : Trainer subclass, optional
        The loop to run (:class:`Trainer` by default): for example
        :class:`~backprop.streaming.StreamingTrainer` for data read chunk by
        chunk, or :class:`~backprop.distributed.DataParallelTrainer` on a Dask
        cluster. It validates with its own :meth:`Trainer.validation_callback`
        and is closed at the end.
    **trainer_options
        The trainer's own keyword arguments (``client=``, ``chunk_rows=``...).

    Raises
    ------
    DivergenceError
        When a batch cost is NaN or infinite (names the epoch and the batch;
        the parameters are restored to the start of that epoch).
    """
    if lr is not None:
        if eps is not None and eps != lr:
            raise ValueError(
                f"SGD: eps and lr are the same learning rate; got eps={eps!r} and lr={lr!r}"
            )
        eps = lr
    elif isinstance(optimizer, Optimizer) and eps == _SGD_EPS:
        eps = None  # the default rate: the instance's own lr rules
    epochs = _positive_int("epochs", epochs, minimum=0)
    if patience is not None:
        patience = _positive_int("patience", patience)
    trainer = Trainer if trainer is None else trainer
    if not (isinstance(trainer, type) and issubclass(trainer, Trainer)):
        raise TypeError(f"SGD: trainer must be a Trainer subclass, got {trainer!r}")
    options = {
        "validation": validation, "metric": metric, "patience": patience, "monitor": monitor,
        "restore_best": restore_best, "verbose": verbose, "progress": progress,
        "callbacks": callbacks, "checkpoint": checkpoint, "resume": resume,
    }  # fmt: skip
    check_callback_options(trainer.loop_name, **options)  # before a trainer holds resources
    loop = trainer(
        net, loss, optimizer, eps=eps, batch_size=batch_size, shuffle=shuffle, seed=seed,
        scheduler=scheduler, compile=compile, **trainer_options,
    )  # fmt: skip
    try:
        loop.add_callbacks(assemble_callbacks(loop, **options))
        return loop.fit(X, Y, epochs)
    finally:
        loop.close()


def check_callback_options(
    owner: str,
    *,
    validation: tuple[ArrayLike, ArrayLike] | None,
    metric: Metric | None,
    patience: int | None,
    monitor: str,
    checkpoint: FilePath | None,
    resume: bool,
    **_unused: Any,
) -> None:
    """The argument errors of :func:`assemble_callbacks`, raised before anything is built."""
    if patience is not None and validation is None:
        raise ValueError(
            f"{owner}: early stopping (patience) needs validation data: "
            "pass validation=(X_val, Y_val)"
        )
    if monitor not in ("val_loss", "metric"):
        raise ValueError(f"{owner}: monitor must be 'val_loss' or 'metric', got {monitor!r}")
    if monitor == "metric" and metric is None:
        raise ValueError(f"{owner}: monitor='metric' needs a metric")
    if resume and checkpoint is None:
        raise ValueError(f"{owner}: resume=True needs checkpoint=PATH")
    if validation is not None and (
        not isinstance(validation, (tuple, list)) or len(validation) != 2
    ):
        raise ValueError(f"{owner}: validation must be a pair (X_val, Y_val)")


def assemble_callbacks(
    trainer: Trainer,
    *,
    validation: tuple[ArrayLike, ArrayLike] | None = None,
    metric: Metric | None = None,
    patience: int | None = None,
    monitor: str = "val_loss",
    restore_best: bool = True,
    verbose: bool = False,
    progress: bool = False,
    callbacks: Iterable[Callback] = (),
    checkpoint: FilePath | None = None,
    resume: bool = False,
) -> list:
    """The callbacks :func:`backprop.SGD` makes of its arguments for ``trainer``.

    Validation is ``trainer.validation_callback(X_val, Y_val, metric)``, so each
    kind of loop validates on its own kind of data.
    """
    check_callback_options(
        trainer.loop_name, validation=validation, metric=metric, patience=patience,
        monitor=monitor, checkpoint=checkpoint, resume=resume,
    )  # fmt: skip
    parts: list[Callback] = []
    metric_name = getattr(metric, "__name__", "metric")
    if validation is not None:
        parts.append(trainer.validation_callback(*validation, metric))
        parts.append(EarlyStopping(patience, monitor, restore_best))
    if verbose:
        parts.append(EpochLog(metric_name=metric_name))
    if progress:
        parts.append(ProgressBar(metric_name=metric_name))
    parts.extend(callbacks)
    if checkpoint is not None:
        parts.append(Checkpoint(checkpoint, resume=resume))
    return parts


#: SGD's default learning rate: with an Optimizer instance, its own lr is used instead
_SGD_EPS = inspect.signature(SGD).parameters["eps"].default
