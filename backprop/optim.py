"""Training: one gradient step (:class:`Optim`) and mini-batch descent (:func:`SGD`)."""

from __future__ import annotations

import time

from .backends import Backend, asarray, get_backend, host_rng, namespace_of
from .module import Loss, Module
from .optimizers import make_optimizer

__all__ = ["SGD", "DivergenceError", "History", "Optim", "backend_of", "batch_bounds"]


class DivergenceError(FloatingPointError):
    """The training loss became NaN or infinite."""


def backend_of(net: Module) -> Backend:
    """The backend of a network's parameters (the current backend if it has none)."""
    for m in net.modules():
        if m._backend is not None:
            return m._backend
    return get_backend()


class Optim:
    """One step of gradient descent on a network: forward, cost, backward, update.

    Parameters
    ----------
    net : Module
    loss : Loss
    eps : float
        The learning rate (``gradient_step``).
    optimizer : None, str or Optimizer
        The update rule: plain gradient descent by default (each module's
        ``update_parameters(eps)``, the seed's rule); ``'momentum'``,
        ``'nesterov'`` or ``'adam'`` with learning rate ``eps``; or an
        :class:`~backprop.optimizers.Optimizer` instance (its own ``lr`` is used).
    """

    def __init__(self, net: Module, loss: Loss, eps: float = 1e-3, optimizer=None) -> None:
        if not isinstance(net, Module):
            raise TypeError(f"Optim: net must be a Module, got {type(net).__name__}")
        if not isinstance(loss, Loss):
            raise TypeError(f"Optim: loss must be a Loss, got {type(loss).__name__}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"Optim: eps must be a positive number, got {eps!r}")
        self.net, self.loss = net, loss
        self.optimizer = make_optimizer(optimizer, float(eps))

    @property
    def eps(self) -> float:
        """The learning rate in force (the optimizer's ``lr``)."""
        return self.optimizer.lr

    @eps.setter
    def eps(self, value: float) -> None:
        self.optimizer.lr = float(value)

    def step(self, batch_x, batch_y):
        """Train on one batch; returns the batch mean cost as a 0-d array (no host sync)."""
        net = self.net
        net.zero_grad()
        yhat = net.forward(batch_x)
        per_row, delta = self.loss.forward_backward(batch_y, yhat)
        net.backward(batch_x, delta, input_grad=False)
        self.optimizer.step(net)
        return namespace_of(per_row).sum(per_row) * (1.0 / per_row.shape[0])

    def __repr__(self) -> str:
        return f"Optim(loss={self.loss!r}, optimizer={self.optimizer!r})"


class History(list):
    """What :func:`SGD` returns: the per-epoch mean training cost as a list of floats
    (the seed's return value), with the rest of the record as attributes.

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
    stopped_early : bool
    """

    def __init__(self) -> None:
        super().__init__()
        self.val_loss: list[float] = []
        self.metric: list[float] = []
        self.time: list[float] = []
        self.lr: list[float] = []
        self.best_epoch: int | None = None
        self.stopped_early = False

    @property
    def train_loss(self) -> list[float]:
        return list(self)

    def as_dict(self) -> dict:
        return {
            "train_loss": list(self),
            "val_loss": self.val_loss,
            "metric": self.metric,
            "time": self.time,
            "lr": self.lr,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
        }


def _check_data(backend, X, Y, what="SGD"):
    X = asarray(X, backend=backend)
    Y = asarray(Y, backend=backend)
    if X.ndim < 1 or Y.ndim < 1 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"{what}: X and Y must have the same number of rows, got X {tuple(X.shape)} and Y {tuple(Y.shape)}")
    if X.shape[0] == 0:
        raise ValueError(f"{what}: the data set is empty")
    return X, Y


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into ``ceil(n / batch_size)`` slices whose sizes differ by at most one.

    Every row is used each epoch and no batch is tiny: 1347 rows in batches of
    32 give 43 batches of 31 or 32 rows rather than 42 of 32 and one of 3 (a
    3-row batch takes a full-size step on a very noisy gradient).
    """
    count = -(-n // batch_size)
    base, extra = divmod(n, count)
    bounds, start = [], 0
    for i in range(count):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def evaluate(net: Module, loss: Loss, X, Y, batch_size: int = 1024, metric=None):
    """Mean cost (and ``metric(yhat, Y)``) of ``net`` on ``(X, Y)`` in evaluation mode.

    Returns ``(cost, metric_value)``; ``metric_value`` is None without a metric.
    """
    backend = backend_of(net)
    X, Y = _check_data(backend, X, Y, "evaluate")
    xp = backend.xp
    modes = [m.training for m in net.modules()]
    net.eval()
    try:
        outputs, total = [], None
        for start, stop in batch_bounds(X.shape[0], batch_size):
            yhat = net.forward(X[start:stop, ...])
            part = xp.sum(loss.forward(Y[start:stop, ...], yhat))
            total = part if total is None else total + part
            if metric is not None:
                outputs.append(yhat)
    finally:
        for m, mode in zip(net.modules(), modes):
            m.training = mode
    value = None if metric is None else float(metric(xp.concat(outputs, axis=0), Y))
    return float(total) / X.shape[0], value


def _snapshot(net: Module) -> list:
    return [(m, key, m._backend.xp.asarray(m._parameters[key], copy=True)) for m, key in net.parameter_slots()]


def _restore(snapshot: list) -> None:
    for m, key, value in snapshot:
        m._parameters[key] = value
    for m, _, _ in snapshot:
        m._clear_cache()


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"SGD: {name} must be a {kind} int, got {value!r}")
    return value


def SGD(
    net: Module,
    loss: Loss,
    X,
    Y,
    batch_size: int = 32,
    epochs: int = 10,
    eps: float = 1e-3,
    shuffle: bool = True,
    seed=None,
    verbose: bool = False,
    *,
    optimizer=None,
    scheduler=None,
    validation=None,
    metric=None,
    patience: int | None = None,
    monitor: str = "val_loss",
    restore_best: bool = True,
    progress: bool = False,
) -> History:
    """Mini-batch gradient descent; returns the per-epoch mean training cost (a :class:`History`).

    Parameters
    ----------
    net, loss : Module, Loss
    X, Y : arrays or host data
        Inputs ``(n, ...)`` and targets ``(n, ...)``; moved to the network's backend.
    batch_size : int
        Largest batch; the rows of an epoch are split into ``ceil(n / batch_size)``
        batches of nearly equal size (see :func:`batch_bounds`).
    epochs : int
    eps : float
        Learning rate.
    shuffle : bool
        Draw a new order of the rows every epoch.
    seed : None, int or numpy Generator
        Order of the shuffles (the library's host generator by default).
    verbose : bool
        Print one line per epoch.
    optimizer : None, str or Optimizer
        As for :class:`Optim` (plain gradient descent by default).
    scheduler : schedule or callable, optional
        A learning-rate schedule (:class:`~backprop.optimizers.StepLR`,
        :class:`~backprop.optimizers.CosineLR`) or a function that builds one
        from the optimizer; stepped after every epoch.
    validation : (X_val, Y_val), optional
        Evaluated after every epoch in evaluation mode.
    metric : callable, optional
        ``metric(yhat, y) -> float`` on the validation data, e.g. :func:`backprop.accuracy`.
    patience : int, optional
        Early stopping: stop after ``patience`` epochs without improvement of
        the monitored score. Needs ``validation``.
    monitor : {'val_loss', 'metric'}
        The score that early stopping and ``best_epoch`` follow (lower
        validation cost, or higher metric).
    restore_best : bool
        With validation, put back the parameters of the best epoch at the end.
    progress : bool
        Show a tqdm progress bar (when tqdm is installed).

    Raises
    ------
    DivergenceError
        When a batch cost is NaN or infinite (names the epoch and the batch).

    Notes
    -----
    Batch costs stay on the device during an epoch and are read once at its
    end, and integer labels are range-checked during the first epoch only, so
    after it a GPU step never waits for the host.
    """
    _positive_int("batch_size", batch_size)
    _positive_int("epochs", epochs, minimum=0)
    if patience is not None:
        _positive_int("patience", patience)
        if validation is None:
            raise ValueError("SGD: early stopping (patience) needs validation data: pass validation=(X_val, Y_val)")
    if monitor not in ("val_loss", "metric"):
        raise ValueError(f"SGD: monitor must be 'val_loss' or 'metric', got {monitor!r}")
    if monitor == "metric" and metric is None:
        raise ValueError("SGD: monitor='metric' needs a metric")
    backend = backend_of(net)
    X, Y = _check_data(backend, X, Y)
    if validation is not None:
        X_val, Y_val = _check_data(backend, *validation, what="SGD validation")
    xp = backend.xp
    optim = Optim(net, loss, eps, optimizer)
    schedule = scheduler(optim.optimizer) if callable(scheduler) and not hasattr(scheduler, "step") else scheduler
    rng = host_rng(seed)
    n = X.shape[0]
    bounds = batch_bounds(n, batch_size)
    sizes = asarray([float(stop - start) for start, stop in bounds], backend=backend)
    history = History()
    best, best_state, waited = None, None, 0
    bar = _progress(epochs) if progress else None
    check_labels = getattr(loss, "check_labels", None)
    net.train()
    try:
        for epoch in range(1, epochs + 1):
            if epoch == 2 and check_labels:
                loss.check_labels = False  # every label was checked once, in the first epoch
            t0 = time.perf_counter()
            history.lr.append(optim.eps)
            if shuffle:
                order = asarray(rng.permutation(n), backend=backend)
                Xe, Ye = xp.take(X, order, axis=0), xp.take(Y, order, axis=0)
            else:
                Xe, Ye = X, Y
            costs = xp.stack([optim.step(Xe[start:stop, ...], Ye[start:stop, ...]) for start, stop in bounds])
            finite = xp.isfinite(costs)
            if not bool(xp.all(finite)):
                batch = int(xp.argmin(xp.astype(finite, xp.int8))) + 1
                raise DivergenceError(
                    f"SGD: the cost became {float(costs[batch - 1])} at epoch {epoch}, batch {batch} "
                    f"of {len(bounds)}; lower the learning rate (eps={optim.eps}) or check the data"
                )
            history.append(float(xp.sum(costs * sizes)) / n)
            line = f"epoch {epoch:3d}/{epochs}  cost {history[-1]:.5f}"
            if validation is not None:
                val, score = evaluate(net, loss, X_val, Y_val, metric=metric)
                history.val_loss.append(val)
                line += f"  val cost {val:.5f}"
                if score is not None:
                    history.metric.append(score)
                    line += f"  {getattr(metric, '__name__', 'metric')} {score:.4f}"
                current = val if monitor == "val_loss" else -score
                if best is None or current < best:
                    best, waited, history.best_epoch = current, 0, epoch
                    best_state = _snapshot(net) if restore_best else None
                else:
                    waited += 1
            history.time.append(time.perf_counter() - t0)
            if schedule is not None:
                schedule.step()
            if verbose:
                print(f"{line}  ({history.time[-1]:.2f} s)", flush=True)
            if bar is not None:
                bar.set_postfix_str(line.split("  ", 1)[1])
                bar.update(1)
            if patience is not None and waited >= patience:
                history.stopped_early = True
                break
    finally:
        if check_labels is not None:
            loss.check_labels = check_labels
        if bar is not None:
            bar.close()
    if best_state is not None and history.best_epoch != len(history):
        _restore(best_state)
    return history


def _progress(total: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="epoch", leave=False, dynamic_ncols=True)
