"""Training: one gradient step (:class:`Optim`) and mini-batch descent (:func:`SGD`)."""

from __future__ import annotations

import time

from .backends import Backend, asarray, get_backend, host_rng, namespace_of
from .module import Loss, Module

__all__ = ["SGD", "DivergenceError", "Optim", "backend_of", "batch_bounds"]


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
    """

    def __init__(self, net: Module, loss: Loss, eps: float = 1e-3) -> None:
        if not isinstance(net, Module):
            raise TypeError(f"Optim: net must be a Module, got {type(net).__name__}")
        if not isinstance(loss, Loss):
            raise TypeError(f"Optim: loss must be a Loss, got {type(loss).__name__}")
        if not eps > 0:
            raise ValueError(f"Optim: eps must be a positive number, got {eps!r}")
        self.net, self.loss, self.eps = net, loss, float(eps)

    def step(self, batch_x, batch_y):
        """Train on one batch; returns the batch mean cost as a 0-d array (no host sync)."""
        net = self.net
        net.zero_grad()
        yhat = net.forward(batch_x)
        per_row, delta = self.loss.forward_backward(batch_y, yhat)
        net.backward(batch_x, delta, input_grad=False)
        net.update_parameters(self.eps)
        return namespace_of(per_row).sum(per_row) * (1.0 / per_row.shape[0])

    def __repr__(self) -> str:
        return f"Optim(loss={self.loss!r}, eps={self.eps})"


def _check_data(net: Module, X, Y):
    backend = backend_of(net)
    X = asarray(X, backend=backend)
    Y = asarray(Y, backend=backend)
    if X.ndim < 1 or Y.ndim < 1 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"SGD: X and Y must have the same number of rows, got X {tuple(X.shape)} and Y {tuple(Y.shape)}")
    if X.shape[0] == 0:
        raise ValueError("SGD: the data set is empty")
    return backend, X, Y


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
) -> list[float]:
    """Mini-batch gradient descent; returns the mean training cost of each epoch.

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
        Print the cost after each epoch.

    Raises
    ------
    DivergenceError
        When a batch cost is NaN or infinite (names the epoch and the batch).

    Notes
    -----
    Batch costs stay on the device during an epoch and are read once at its
    end, so a GPU step never waits for the host.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"SGD: batch_size must be a positive int, got {batch_size!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"SGD: epochs must be a non-negative int, got {epochs!r}")
    backend, X, Y = _check_data(net, X, Y)
    xp = backend.xp
    optim = Optim(net, loss, eps)
    rng = host_rng(seed)
    n = X.shape[0]
    bounds = batch_bounds(n, batch_size)
    sizes = asarray([float(stop - start) for start, stop in bounds], backend=backend)
    history = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        if shuffle:
            order = asarray(rng.permutation(n), backend=backend)
            Xe, Ye = xp.take(X, order, axis=0), xp.take(Y, order, axis=0)
        else:
            Xe, Ye = X, Y
        costs = [optim.step(Xe[start:stop, ...], Ye[start:stop, ...]) for start, stop in bounds]
        costs = xp.stack(costs)
        finite = xp.isfinite(costs)
        if not bool(xp.all(finite)):
            batch = int(xp.argmin(xp.astype(finite, xp.int8))) + 1
            raise DivergenceError(
                f"SGD: the cost became {float(costs[batch - 1])} at epoch {epoch}, batch {batch} "
                f"of {len(bounds)}; lower the learning rate (eps={eps}) or check the data"
            )
        mean = float(xp.sum(costs * sizes)) / n
        history.append(mean)
        if verbose:
            print(f"epoch {epoch:3d}/{epochs}  cost {mean:.5f}  ({time.perf_counter() - t0:.2f} s)")
    return history
