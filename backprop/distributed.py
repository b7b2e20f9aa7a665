"""Data-parallel training on a Dask cluster: one optimizer step, gradients from every worker.

:class:`DataParallelTrainer` is a :class:`~backprop.Trainer` whose steps are
computed on the workers of a ``distributed`` cluster:

1. Each of ``n_shards`` *shards* of the training rows (row ``i`` belongs to
   shard ``i % n_shards``) is sent once to a worker, where a *replica* of
   the network is rebuilt from its architecture
   (:func:`backprop.serialization.architecture`, never pickled code) on the
   worker's backend: a Dask actor that holds the shard and the replica.
2. Each epoch the driver draws the permutation of the rows exactly as
   :class:`~backprop.Trainer` does and cuts it into the same batches
   (:func:`~backprop.optim.loop.batch_bounds`).
3. Each step the driver sends the parameters and, to each shard, the
   positions of its rows in the batch; each replica computes the gradient of
   the mean cost over its rows with the library's own modules (forward, cost,
   backward); the driver sums the gradients weighted by ``rows of the shard /
   rows of the batch`` (the gradient of the batch mean) and applies **one**
   optimizer step, so Momentum and Adam keep their state in one place.

Every row of a batch is counted once whatever shard holds it, so with the
same seed the parameters equal those of :func:`backprop.SGD` with the same
global batches, up to the order of the floating-point sums (measured on the
digits: below 1e-14 relative in float64, a few 1e-6 in float32).

Dropout
-------
A replica's Dropout masks come from its shard's own stream: the driver holds
one generator per shard, spawned from ``seed``, and draws from it a seed for
every step, with which the replica draws that step's masks. A run with
Dropout is reproducible for a given seed and number of shards (whichever
worker computes which shard, across retries and resumed checkpoints), but it
differs from the single-process run, whose masks come from one stream.

Failures
--------
When a worker dies, the steps it was computing fail; the driver waits for a
replacement (a ``LocalCluster``'s nanny restarts it), rebuilds the lost
replicas with their shards on the live workers and computes the step again
with the same parameters and the same mask seeds, so the result is the same
as without the failure: no step is skipped and no gradient counted twice.
After ``retries`` failed attempts the run stops with :class:`WorkerLostError`
before the step's update; with a :class:`~backprop.Checkpoint` it resumes
from the last completed epoch (``resume=True``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from typing import TYPE_CHECKING, Any

from ._checks import positive_int, real_number
from ._install import install_hint
from ._network import backend_of_net
from .backends import asarray, host_rng, to_numpy, use_backend
from .backends.ondisk import host_arange
from .backends.random import generator_state, set_generator_state
from .module import Loss, Module
from .optim.loop import SGD, History, Trainer
from .optim.step import validate_targets
from .serialization import architecture, build

if TYPE_CHECKING:
    import distributed

    from ._typing import Array, ArrayLike, Device, DType
    from .backends.random import RNG
    from .optim.rules import Optimizer

__all__ = ["DataParallelTrainer", "WorkerLostError", "fit", "local_cluster"]

_INSTALL = install_hint("distributed")


# what a call to a worker that died raises (dask's CommClosedError is an OSError)
_LOST = (OSError, TimeoutError, concurrent.futures.CancelledError)
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError)  # the same class from Python 3.11
# seconds a replica has to answer once its step failed, before it counts as lost
_PING_S = 10
# seconds between two looks at the scheduler's list of workers while waiting for a step
_POLL_S = 0.5


class _WorkerGone(ConnectionError):
    """The worker of a call left the cluster while the call was pending."""


class WorkerLostError(ConnectionError):
    """A worker died and the step could not be completed on a replacement."""


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ImportError(
            f"backprop.distributed needs Dask's distributed package: {_INSTALL}"
        ) from None
    return distributed


def local_cluster(
    n_workers: int = 2, threads_per_worker: int = 1, **options: Any
) -> distributed.Client:
    """A ``distributed.Client`` on a new ``LocalCluster`` of ``n_workers`` worker processes.

    Closing the client (or leaving its ``with`` block) stops the cluster.
    ``options`` go to ``LocalCluster`` (``memory_limit``, ...). On a machine
    with GPUs, ``dask_cuda.LocalCUDACluster`` gives one worker per GPU
    instead (see the documentation).
    """
    distributed = _distributed()
    options.setdefault("dashboard_address", None)
    return distributed.Client(
        n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True, **options
    )


def _client(client):
    distributed = _distributed()
    if isinstance(client, distributed.Client):
        return client, False
    if isinstance(client, str):
        return distributed.Client(client), True
    if client is None:
        try:
            return distributed.get_client(), False
        except ValueError:
            raise ValueError(
                "DataParallelTrainer: no Dask client; pass client=distributed.Client(...) or a "
                "scheduler address, or start a local one with "
                "backprop.distributed.local_cluster(n_workers)"
            ) from None
    raise TypeError(
        f"DataParallelTrainer: client must be a distributed.Client, a scheduler address or None, "
        f"got {type(client).__name__}"
    )


class _Replica:
    """A replica of the network and one shard of the data, living on a worker (a Dask actor)."""

    def __init__(
        self, arch: dict, backend_spec: tuple, loss: Loss, X: ArrayLike, Y: ArrayLike
    ) -> None:
        with use_backend(*backend_spec):
            self.net = build(arch)
        self.backend = backend_of_net(self.net)
        self.slots = list(self.net.parameter_slots())
        self.loss = loss
        self.X = asarray(X, backend=self.backend)
        self.Y = asarray(Y, backend=self.backend)
        self.random = [m for m in self.net.unique_modules() if hasattr(m, "_rng")]

    def gradients(self, params: list, rows: ArrayLike, seed: int) -> tuple[list[Array], float]:
        """Gradients of the mean cost over shard ``rows`` at ``params``; the sum of row costs."""
        b, net = self.backend, self.net
        xp = b.xp
        for (m, key), p in zip(self.slots, params):
            m.set_parameter(key, asarray(p, backend=b))
        index = asarray(rows, backend=b)
        x, y = xp.take(self.X, index, axis=0), xp.take(self.Y, index, axis=0)
        masks = host_rng(seed)
        for m in self.random:
            m._rng = masks
        net.train()
        try:
            with Loss.targets_checked():  # the driver validated every target
                net.zero_grad()
                yhat = net.chain_forward(x)
                per_row, delta = self.loss.forward_backward(y, yhat)
                net.chain_backward(x, delta, False)
            return [to_numpy(m.get_gradient(key)) for m, key in self.slots], float(xp.sum(per_row))
        finally:
            for m in net.unique_modules():
                m.clear_cache()

    def pid(self) -> int:
        return os.getpid()


class DataParallelTrainer(Trainer):
    """A :class:`~backprop.Trainer` whose gradients are computed on the workers of a Dask cluster.

    See the module's notes for the algorithm, the Dropout rule and what
    happens when a worker dies.

    Parameters
    ----------
    net, loss, optimizer, seed
        As for :class:`~backprop.Trainer` (the update runs on the driver; ``seed``
        also draws each shard's stream of dropout masks).
    compile : bool or 'auto'
        True is refused (the steps run on the workers); False and ``'auto'`` run them
        uncompiled.
    client : distributed.Client, str or None
        The cluster: a client, a scheduler address (``'tcp://host:8786'``),
        or None for the client in force (``distributed.get_client()``).
    n_shards : int, optional
        Shards of the data, each on one worker; by default one per worker.
    worker_backend : (name, device, dtype), optional
        Where the replicas compute; by default the network's library and
        dtype on each worker's default device (the worker's GPU under
        ``dask_cuda.LocalCUDACluster``).
    retries : int, default 3
        Attempts of a step on replacement workers before :class:`WorkerLostError`.
    worker_timeout : float, default 60
        Seconds to wait for a replacement worker to join after a failure.
    **options
        The other arguments of :class:`~backprop.Trainer`: ``eps``, ``batch_size``,
        ``shuffle``, ``scheduler``, ``callbacks``.

    Attributes
    ----------
    recoveries : list of dict
        One entry per replaced replica: epoch, batch, shard, lost worker.
    """

    def __init__(
        self,
        net: Module,
        loss: Loss,
        optimizer: str | Optimizer | None = None,
        *,
        seed: RNG = None,
        client: distributed.Client | str | None = None,
        n_shards: int | None = None,
        worker_backend: tuple[str, Device | None, DType] | None = None,
        retries: int = 3,
        worker_timeout: float = 60.0,
        compile: bool = False,
        **options: Any,
    ) -> None:
        if compile is True:  # 'auto' (SGD's default) runs uncompiled steps, as False does
            raise ValueError(
                "DataParallelTrainer: compile=True is not supported (the steps run on the workers)"
            )
        # every argument checked before a cluster is joined or started
        worker_timeout = real_number(
            "DataParallelTrainer", "worker_timeout", worker_timeout, low=0.0, low_open=True
        )
        if n_shards is not None:
            positive_int("DataParallelTrainer", "n_shards", n_shards)
        positive_int("DataParallelTrainer", "retries", retries, minimum=0)
        super().__init__(net, loss, optimizer, seed=seed, compile=False, **options)
        stateful = next((m for m in net.unique_modules() if m._buffers), None)
        if stateful is not None:
            # each worker's forward would update its own replica's running statistics, and the
            # network here would keep its initial ones
            raise ValueError(
                f"DataParallelTrainer: {stateful._label()} keeps buffers (running statistics) "
                "that the workers' forward passes would update apart; data-parallel training "
                "does not gather them: train this network in one process (SGD without trainer=)"
            )
        self.client, self._owns_client = _client(client)
        self._dead: set[str] = set()  # workers seen dying (the scheduler may list them a while)
        workers = self._workers()
        if not workers:
            raise ValueError("DataParallelTrainer: the cluster has no workers")
        self.n_workers = len(workers)
        if n_shards is None:
            n_shards = self.n_workers
        self.n_shards = positive_int("DataParallelTrainer", "n_shards", n_shards)
        self.retries = positive_int("DataParallelTrainer", "retries", retries, minimum=0)
        self.worker_timeout = worker_timeout
        if worker_backend is None:
            worker_backend = (self.backend.name, None, self.backend.dtype_name)
        self.worker_backend = tuple(worker_backend)
        # one mask stream per shard, independent of the shuffles (see the module's notes)
        self._streams = host_rng(seed).spawn(n_shards)
        self.recoveries: list[dict] = []
        self._replicas = None

    # ------------------------------------------------------------ cluster

    def _workers(self) -> list[str]:
        """The workers the scheduler lists, less those this trainer saw die."""
        listed = self.client.scheduler_info().get("workers", {})
        return [w for w in listed if w not in self._dead]

    def _wait_for_workers(self, count: int) -> list[str]:
        """The live workers, once ``count`` are there or after ``worker_timeout`` seconds."""
        deadline = time.monotonic() + self.worker_timeout
        while True:
            live = self._workers()
            if len(live) >= count or time.monotonic() > deadline:
                return live
            time.sleep(0.1)

    def _place(self, shard: int, worker: str) -> None:
        X, Y = self._shards[shard]
        timeout = self.worker_timeout
        data = self.client.scatter([X, Y], workers=[worker], hash=False, timeout=timeout)
        future = self.client.submit(
            _Replica,
            self._arch,
            self.worker_backend,
            self.loss,
            *data,
            workers=[worker],
            allow_other_workers=False,
            actor=True,
            pure=False,
        )
        actor = future.result(timeout=timeout)
        self._replicas[shard] = (future, actor, worker)

    def _place_anywhere(self, shard: int, preferred: str | None = None) -> None:
        """Put ``shard`` on ``preferred``, or on the live worker holding the fewest shards."""
        reason = None
        for _ in range(3):
            live = self._wait_for_workers(1)
            if not live:
                break
            if preferred not in live:
                load = dict.fromkeys(live, 0)
                for entry in self._replicas:
                    if entry is not None and entry[2] in load:
                        load[entry[2]] += 1
                preferred = min(live, key=lambda w: load[w])
            try:
                self._place(shard, preferred)
                return
            except _LOST as exc:  # the scheduler still listed a worker that had died
                self._dead.add(preferred)
                preferred, reason = None, exc
        detail = "the cluster has no workers" if reason is None else f"{type(reason).__name__}"
        raise WorkerLostError(
            f"DataParallelTrainer: no live worker could take shard {shard} ({detail}); restart "
            "the cluster and resume from a checkpoint (resume=True)"
        )

    def _start(self, X, Y) -> None:
        host_X, host_Y = to_numpy(X), to_numpy(Y)
        s = self.n_shards
        self._shards = [(host_X[r::s, ...], host_Y[r::s, ...]) for r in range(s)]
        self._arch = architecture(self.net)
        self._slots = list(self.net.parameter_slots())
        self._replicas = [None] * s
        workers = self._wait_for_workers(1)
        for r in range(s):
            self._place_anywhere(r, workers[r % len(workers)] if workers else None)

    def _stop(self) -> None:
        self._replicas = None
        self._shards = None

    loop_name = "distributed.fit"

    def close(self) -> None:
        """Close the client if this trainer opened it (from a scheduler address)."""
        if self._owns_client:
            self.client.close()

    def _lost(self, shard: int) -> bool:
        """Whether the replica of ``shard`` is gone (its worker died), not just its step failing."""
        _, actor, worker = self._replicas[shard]
        if worker in self._workers():
            try:
                self._result(actor.pid(), worker, limit=_PING_S)
                return False
            except Exception:
                pass
        self._dead.add(worker)
        return True

    def _result(self, call, worker: str, limit: float | None = None):
        """The result of an actor ``call`` on ``worker``, or an error as soon as the worker is gone.

        A call to a worker that died is retried by Dask until its connection
        timeout (30 s by default); watching the scheduler's list of workers
        notices the death within about a second.
        """
        start = time.monotonic()
        while True:
            try:
                return call.result(timeout=_POLL_S)
            except _TIMEOUTS:
                if worker not in self._workers():
                    raise _WorkerGone(f"worker {worker} left the cluster") from None
                if limit is not None and time.monotonic() - start > limit:
                    raise _WorkerGone(f"worker {worker} did not answer in {limit} s") from None

    def _replace(self, shard: int) -> None:
        """Rebuild the replica of ``shard`` on a live worker, a replacement once it has joined."""
        _, _, worker = self._replicas[shard]
        self._replicas[shard] = None
        self._wait_for_workers(self.n_workers)
        self._place_anywhere(shard)
        epoch, batch = self._where
        self.recoveries.append({"epoch": epoch, "batch": batch, "shard": shard, "lost": worker})

    # --------------------------------------------------------------- steps

    def _gradients(self, parts: dict, params: list, seeds: list) -> dict:
        """``{shard: (gradients, cost sum)}`` for each shard of ``parts``, retried if lost."""
        results, pending, attempt = {}, dict(parts), 0
        while True:
            calls = {
                r: self._replicas[r][1].gradients(params, rows, seeds[r])
                for r, rows in pending.items()
            }
            failed = {}
            for r, call in calls.items():
                try:
                    results[r] = self._result(call, self._replicas[r][2])
                except Exception as exc:
                    failed[r] = exc
            if not failed:
                return results
            for r, exc in failed.items():
                if not self._lost(r):
                    raise exc  # the step itself raised: not a failure of the cluster
            if attempt == self.retries:
                epoch, batch = self._where
                r, exc = next(iter(failed.items()))
                raise WorkerLostError(
                    f"DataParallelTrainer: the worker holding shard {r} was lost at epoch "
                    f"{epoch}, batch {batch} of {len(self.bounds)}, and {self.retries} retries on "
                    f"replacement workers failed ({type(exc).__name__}: {exc}). No update was made "
                    "for that batch. With a Checkpoint callback (checkpoint=PATH), run again with "
                    "resume=True to continue from the last completed epoch"
                ) from None
            attempt += 1
            for r in failed:
                self._replace(r)
            pending = {r: parts[r] for r in failed}

    def _step(self, rows):
        """One optimizer step on the global batch ``rows`` (host row numbers); returns its cost."""
        s, n = self.n_shards, rows.shape[0]
        seeds = [int(g.integers(2**63)) for g in self._streams]
        params = [to_numpy(m.get_parameter(key)) for m, key in self._slots]
        owner, local = rows % s, rows // s
        parts = {r: local[owner == r] for r in range(s)}
        parts = {r: p for r, p in parts.items() if p.shape[0]}
        results = self._gradients(parts, params, seeds)
        b = self.backend
        self.net.zero_grad()
        for i, (m, key) in enumerate(self._slots):
            total = None
            for r, (grads, _) in results.items():
                g = asarray(grads[i], backend=b) * (parts[r].shape[0] / n)
                total = g if total is None else total + g
            m.accumulate_gradient(key, total)
        self.optim.optimizer.step(self.net)
        return sum(cost for _, cost in results.values()) / n

    def _run_epoch(self, X, Y, bounds):
        n = X.shape[0]
        order = self.rng.permutation(n) if self.shuffle else host_arange(0, n)  # Trainer's draw
        costs = []
        for i, (a, b) in enumerate(bounds):
            self._where = (self.epoch + 1, i + 1)
            costs.append(self._step(order[a:b]))
        return asarray(costs, backend=self.backend)

    def fit(self, X: ArrayLike, Y: ArrayLike, epochs: int) -> History:
        """Train until ``epochs`` epochs are complete (counting those done); returns the history.

        ``X`` and ``Y`` are in memory on the driver (any array or host data);
        each worker receives its shard once.
        """
        X, Y = asarray(X, backend=self.backend), asarray(Y, backend=self.backend)
        if X.ndim < 1 or Y.ndim < 1 or X.shape[0] != Y.shape[0]:
            raise ValueError(
                f"DataParallelTrainer: X and Y must have the same number of rows, "
                f"got X {tuple(X.shape)} and Y {tuple(Y.shape)}"
            )
        if X.shape[0] == 0:
            raise ValueError("DataParallelTrainer: the data set is empty")
        validate_targets(self.net, self.loss, X, Y)
        self._start(X, Y)
        try:
            return super().fit(X, Y, epochs)
        finally:
            self._stop()

    # ---------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["shard_streams"] = [generator_state(g) for g in self._streams]
        return state

    def load_state_dict(self, state: dict) -> None:
        streams = state.get("shard_streams")
        if streams is not None and len(streams) != self.n_shards:
            raise ValueError(
                f"DataParallelTrainer: the checkpoint was written with {len(streams)} shards, "
                f"this run has {self.n_shards}; pass n_shards={len(streams)}"
            )
        super().load_state_dict(state)
        for g, s in zip(self._streams, streams or []):
            set_generator_state(s, g)


def fit(net: Module, loss: Loss, X: ArrayLike, Y: ArrayLike, **options: Any) -> History:
    """:func:`backprop.SGD` on a Dask cluster (:class:`DataParallelTrainer`); returns the History.

    The arguments are those of :func:`backprop.SGD`, plus those of
    :class:`DataParallelTrainer` (``client``, ``n_shards``, ``worker_backend``,
    ``retries``, ``worker_timeout``). Validation, early stopping and
    checkpoints run on the driver, as in a single process.
    """
    options.setdefault("compile", False)  # the steps run on the workers
    return SGD(net, loss, X, Y, trainer=DataParallelTrainer, **options)
