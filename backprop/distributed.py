"""Data-parallel training on a Dask cluster: replicas that all-reduce their gradients.

:class:`DataParallelTrainer` is a :class:`~backprop.Trainer` whose epochs run
on the workers of a ``distributed`` cluster, with the design of PyTorch's
DistributedDataParallel:

1. Dask places one *replica* of the network per rank (``n_shards`` ranks,
   one per worker by default) as an actor, rebuilt from the network's
   architecture (:func:`backprop.serialization.architecture`, never pickled
   code) on the worker's backend, with a copy of the optimizer.
2. The replicas form a collective group of their own with
   ``torch.distributed`` (gloo on host memory, NCCL between CUDA devices):
   no gradient goes through the driver or the scheduler.
3. Each step, every replica computes the gradient of the cost over *its*
   rows of the global batch (the library's own modules), all-reduces the
   gradients weighted by its rows in one flat buffer (a fixed order: every
   replica receives the same bits), and applies the same optimizer step
   to its own parameters (the optimizer's state is replicated).
4. The driver makes one call per replica per epoch. It receives the cost of
   every step and, from rank 0, the parameters and the optimizer's state at
   the end of each epoch: validation, early stopping, checkpoints and the
   other callbacks run there, as in one process.

Rows
----
Data in memory on the driver is cut into shards (row ``i`` belongs to rank
``i % n_shards``), each sent once to its replica; the driver draws each
epoch's permutation exactly as :class:`~backprop.Trainer` does and sends it,
so the global batches are those of :func:`backprop.SGD` and the parameters
equal a single-process run up to the order of floating-point sums.

Data in storage (a ``.npy`` path or memory map, a ``dask.array``, a Zarr
array or a :class:`~backprop.streaming.RowChunks`) is never read by the
driver beyond its first row and its targets: rank ``r`` reads its own block
of consecutive rows, a chunk at a time (a background thread reads the next),
in an order drawn from ``(seed, epoch, rank)``: an order of its chunks, then
of each chunk's rows, as the streaming path does. A run is reproducible for
a seed and a number of ranks.

Dropout
-------
A replica draws the masks of step ``k`` of epoch ``e`` from a generator
determined by ``(seed, e, k, rank)``: reproducible for a given seed and
number of ranks, after a worker is replaced and after a resume, but not the
single-process run, whose masks come from one stream.

Failures
--------
When a worker dies, the other replicas' all-reduce fails; each reports the
steps it completed. The driver waits for a replacement worker (a
``LocalCluster``'s nanny restarts it), rebuilds the lost replicas, forms the
group again, and every replica copies the parameters and the optimizer's
state from the survivor that completed the most steps (a broadcast in the
new group). The epoch continues from there: no step is skipped and no
gradient counted twice. After ``retries`` failed attempts the run stops
with :class:`WorkerLostError`; with a :class:`~backprop.Checkpoint` it
resumes from the last completed epoch (``resume=True``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import os
import time
from typing import TYPE_CHECKING, Any

from ._checks import positive_int, real_number
from ._install import install_hint
from ._network import backend_of_net
from .backends import asarray, device_label, host_rng, to_numpy, use_backend
from .backends.collective import Group, open_store
from .backends.random import derived_rng
from .io.ondisk import host_aligned, host_arange, open_npy
from .module import Loss, Module
from .optim.engine import EagerEngine
from .optim.history import data_identity
from .optim.loop import SGD, History, Trainer, batch_bounds, even_parts
from .optim.step import validate_targets
from .serialization import architecture, build
from .streaming import RowChunks, prefetched

if TYPE_CHECKING:
    import distributed

    from ._typing import ArrayLike, Device, DType
    from .backends.random import RNG
    from .optim.rules import Optimizer

__all__ = ["DataParallelTrainer", "WorkerLostError", "fit", "local_cluster"]

_INSTALL = install_hint("distributed")


# what a call to a worker that died raises (dask's CommClosedError is an OSError)
_LOST = (OSError, TimeoutError, concurrent.futures.CancelledError)
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError)  # the same class from Python 3.11
# seconds a replica has to answer a ping once its call failed, before it counts as lost
_PING_S = 10
# seconds between two looks at the scheduler's list of workers while waiting for a call
_POLL_S = 1.0


class WorkerLostError(ConnectionError):
    """A worker (or the scheduler) was lost and the step could not be completed."""


class _WorkerGone(WorkerLostError):
    """The worker of a call left the cluster while the call was pending."""


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
    ``options`` go to ``LocalCluster`` (``memory_limit``, ...); no dashboard
    is started unless ``dashboard_address`` names one (``None``, the
    default here, starts none). On a machine with GPUs,
    ``dask_cuda.LocalCUDACluster`` gives one worker per GPU instead (see the
    documentation). Call it under ``if __name__ == "__main__":`` in a
    script: the workers are new processes that import the script.
    """
    distributed = _distributed()
    dashboard = options.pop("dashboard_address", None)
    scheduler_kwargs = {"dashboard": dashboard is not None, **options.pop("scheduler_kwargs", {})}
    return distributed.Client(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        # LocalCluster reads dashboard_address=None as "the HTTP server on port 8787" (health and
        # metrics routes): without a dashboard, a port the system picks, on the loopback only
        dashboard_address="127.0.0.1:0" if dashboard is None else dashboard,
        scheduler_kwargs=scheduler_kwargs,
        **options,
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


# --------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------


def _is_stored(X) -> bool:
    """Whether ``X`` names data in storage (read by the workers) rather than data in memory."""
    if isinstance(X, (str, os.PathLike, RowChunks)):
        return True
    module = type(X).__module__
    if module.startswith(("dask.", "zarr")):
        return True
    return getattr(X, "filename", None) is not None and hasattr(X, "offset")  # a numpy memmap


def _storage_spec(data, what: str):
    """What a worker needs to open ``data`` itself (a path, not the mapped bytes), and the rows
    of it that are used (None: all; a :class:`~backprop.streaming.RowChunks` of some rows)."""
    rows = None
    if isinstance(data, RowChunks):
        data, rows = data.data, data.rows
    if isinstance(data, os.PathLike):
        data = os.fspath(data)
    if isinstance(data, str):
        open_npy(data)  # checked here, once: a missing file fails before a worker starts
        return data, rows
    filename = getattr(data, "filename", None)
    if filename is not None and hasattr(data, "offset"):
        whole = open_npy(filename)
        if tuple(whole.shape) != tuple(data.shape):
            raise ValueError(
                f"DataParallelTrainer: {what} is a view of part of {filename}; pass the path "
                "or the whole memory map"
            )
        return os.fspath(filename), rows
    return data, rows  # a dask or Zarr array: pickled as its graph or store, read on the worker


@contextlib.contextmanager
def _local_dask():
    """Compute dask arrays in this thread (a worker reads its own rows, not through the
    cluster)."""
    try:
        import dask
    except ImportError:
        yield
        return
    with dask.config.set(scheduler="synchronous"):
        yield


class _MemoryRows:
    """A replica's shard of data held in memory: row ``i`` of the data is row ``i // R`` of
    rank ``i % R``'s shard. The batches are the driver's (one permutation per epoch)."""

    def __init__(self, X, Y, rank: int, world: int, bounds: list) -> None:
        self.X, self.Y = X, Y
        self.rank, self.world, self.bounds = rank, world, bounds

    def open(self, backend) -> None:
        # an array unpickled from a message may be unaligned: copied once here, not at every take
        self.X = asarray(host_aligned(self.X), backend=backend)
        self.Y = asarray(host_aligned(self.Y), backend=backend)
        self.backend = backend

    def steps(self) -> int:
        return len(self.bounds)

    def batches(self, epoch: int, plan, start: int):
        xp, b = self.backend.xp, self.backend
        owner, local = plan % self.world, plan // self.world
        for a, z in self.bounds[start:]:
            rows = local[a:z][owner[a:z] == self.rank]
            index = asarray(rows, backend=b)
            yield xp.take(self.X, index, axis=0), xp.take(self.Y, index, axis=0)


class _StoredRows:
    """A replica's block of consecutive rows in storage, read a chunk at a time in an order
    drawn from ``(entropy, epoch, rank)``."""

    def __init__(self, X, Y, subset, rank, world, n, steps, chunk_rows, entropy, shuffle) -> None:
        self.spec = (X, Y)
        self.rank, self.world, self.n, self._steps = rank, world, n, steps
        self.chunk_rows, self.entropy, self.shuffle = chunk_rows, entropy, shuffle
        lo, hi = even_parts(n, world)[rank]
        # the rank's block of consecutive rows (of the subset, when one is used)
        self.subset = None if subset is None else subset[lo:hi]
        self.lo, self.hi = lo, hi

    def open(self, backend) -> None:
        self.backend = backend
        rows = host_arange(self.lo, self.hi) if self.subset is None else self.subset
        with _local_dask():
            self.Xc = RowChunks(self.spec[0], self.chunk_rows, rows=rows)
            self.Yc = RowChunks(self.spec[1], None).like(self.Xc)

    def steps(self) -> int:
        return self._steps

    def _read(self, k: int, perm):
        with _local_dask():
            x, y = self.Xc.read(k), self.Yc.read(k)
        return x[perm], y[perm]

    def batches(self, epoch: int, plan, start: int):
        lengths = self.Xc.lengths
        rng = derived_rng(self.entropy, epoch, self.rank)
        if self.shuffle:
            order = [int(k) for k in rng.permutation(len(lengths))]
            perms = [rng.permutation(lengths[k]) for k in order]
        else:
            order = list(range(len(lengths)))
            perms = [host_arange(0, lengths[k]) for k in order]
        ends, total = [], 0
        for k in order:
            total += lengths[k]
            ends.append(total)
        parts = even_parts(total, self._steps)
        first = parts[start][0] if start < len(parts) else total
        needed = [i for i in range(len(order)) if ends[i] > first]
        chunks = prefetched(lambda i: (i, *self._read(order[i], perms[i])), needed)
        b, xp = self.backend, self.backend.xp
        current, c0, c1 = None, 0, 0
        for a, z in parts[start:]:
            xs, ys = [], []
            while a < z:
                if current is None or a >= c1:
                    i, cx, cy = next(chunks)
                    current, c0, c1 = (cx, cy), ends[i] - lengths[order[i]], ends[i]
                stop = min(z, c1)
                xs.append(current[0][a - c0 : stop - c0])
                ys.append(current[1][a - c0 : stop - c0])
                a = stop
            if not xs:  # no row of this step here
                yield None, None
                continue
            x = (
                asarray(xs[0], backend=b)
                if len(xs) == 1
                else xp.concat([asarray(v, backend=b) for v in xs], axis=0)
            )
            y = (
                asarray(ys[0], backend=b)
                if len(ys) == 1
                else xp.concat([asarray(v, backend=b) for v in ys], axis=0)
            )
            yield x, y


# --------------------------------------------------------------------------
# The replica (a Dask actor)
# --------------------------------------------------------------------------


class _CollectiveFailed(RuntimeError):
    """The group's all-reduce failed: a member died or stopped answering."""


class _Replica:
    """A replica of the network, its optimizer and its rows, on a worker (a Dask actor).

    Its methods are coroutines that run the work in the replica's own thread,
    so several replicas can share a worker process and a ping is answered
    while an epoch runs.
    """

    def __init__(self, arch, backend_spec, loss, optimizer, rows, rank, entropy, timeout, *data):
        if data:  # a shard in memory, scattered apart from the rest
            rows.X, rows.Y = data
        with use_backend(*backend_spec):
            self.net = build(arch)
        self.backend = b = backend_of_net(self.net)
        self.slots = list(self.net.parameter_slots())
        self.loss, self.optimizer = loss, optimizer
        self.engine = EagerEngine(self.net, loss)
        self.rows = rows
        self.rows.open(b)
        self.rank, self.entropy, self.timeout = rank, entropy, timeout
        self.random = [m for m in self.net.unique_modules() if hasattr(m, "_rng")]
        on_cuda = b.name == "torch" and device_label(b.device).startswith("cuda")
        self.device = "cuda" if on_cuda else "cpu"
        self.group = None
        self._store = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="backprop-rank")

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ----------------------------------------------------------- the group

    async def serve_store(self, world: int) -> tuple[str, int]:
        """Serve the rendezvous store of a new group (rank 0); returns (host, port)."""
        from distributed import get_worker

        from .backends.collective import _host_of

        host = _host_of(get_worker().address)
        self._store, port = open_store(host, world, self.timeout)
        return host, port

    async def join(self, host: str, port: int, rank: int, world: int, generation: int) -> int:
        def form():
            self.rank = rank
            self.group = Group(
                host, port, rank, world, generation=generation, timeout=self.timeout,
                device=self.device, store=self._store if rank == 0 else None,
            )  # fmt: skip
            return os.getpid()

        return await self._run(form)

    async def pid(self) -> int:
        return os.getpid()

    async def close(self) -> None:
        """Leave the group and stop the replica's thread (the worker can then exit at once)."""
        if self.group is not None:
            self.group.close()
        self.group, self._store = None, None
        self._pool.shutdown(wait=False)

    # ----------------------------------------------------------- the state

    def _buffers(self):
        """(slot, buffer dict) of every parameter, the optimizer's buffers created if missing."""
        return [(m, k, self.optimizer.state_of(m, k)) for m, k in self.slots]

    def _load(self, params, state) -> None:
        b = self.backend
        for (m, k), p in zip(self.slots, params):
            m.set_parameter(k, asarray(p, backend=b))
        self.optimizer.load_state_dict(
            self.net, {k: v if k in ("steps", "lr") else asarray(v, backend=b)
                       for k, v in state.items()}
        )  # fmt: skip

    def _state(self) -> tuple[list, dict]:
        params = [to_numpy(m.get_parameter(k)) for m, k in self.slots]
        state = {
            k: v if k in ("steps", "lr") else to_numpy(v)
            for k, v in self.optimizer.state_dict(self.net).items()
        }
        return params, state

    async def copy_state(self, root: int, steps: int) -> None:
        """Take the parameters and the optimizer's state of member ``root`` (a broadcast)."""

        def copy_from_root():
            b = self.backend
            xp = b.xp
            entries = self._buffers()
            names = self.optimizer.buffers
            pieces = [xp.reshape(m.get_parameter(k), (-1,)) for m, k, _ in entries]
            pieces += [xp.reshape(buf[name], (-1,)) for _, _, buf in entries for name in names]
            flat = self._flat(xp.concat(pieces))
            flat = self.group.broadcast_(flat, root)
            flat = asarray(flat, backend=b)
            offset = 0

            def take(shape):
                nonlocal offset
                size = 1
                for s in shape:
                    size *= s
                part = xp.reshape(flat[offset : offset + size], shape)
                offset += size
                return b.copy(part)

            for m, k, _ in entries:
                m.set_parameter(k, take(tuple(m.get_parameter(k).shape)))
            for _, _, buf in entries:
                for name in names:
                    buf[name] = take(tuple(buf[name].shape))
            self.optimizer.steps = steps

        await self._run(copy_from_root)

    def _flat(self, array):
        """A buffer the collective can write into: the tensor itself on CUDA, host memory
        otherwise."""
        if self.device == "cuda":
            return array
        host = to_numpy(array)
        return (
            host if getattr(host, "flags", None) is None or host.flags.writeable else (host.copy())
        )

    # ----------------------------------------------------------- an epoch

    def _step(self, epoch: int, k: int, x, y):
        """One step: local gradients, all-reduce, the optimizer's update; (cost sum, rows)."""
        b, net = self.backend, self.net
        xp = b.xp
        rows = 0 if x is None else int(x.shape[0])
        if rows:
            masks = derived_rng(self.entropy, epoch, k, self.rank)
            for m in self.random:
                m._rng = masks
            try:
                with Loss.targets_checked():  # the driver validated every target
                    total = self.engine.gradients(x, y)
            finally:
                for m in net.unique_modules():
                    m.clear_cache()
            grads = [xp.reshape(m.get_gradient(key), (-1,)) for m, key in self.slots]
        else:
            total = xp.asarray(0.0, dtype=b.dtype)
            grads = [
                xp.reshape(xp.zeros_like(m.get_parameter(key)), (-1,)) for m, key in self.slots
            ]
        tail = xp.stack([xp.astype(total, b.dtype), xp.asarray(float(rows), dtype=b.dtype)])
        # one fresh buffer: the gradients of the mean over this replica's rows, weighted in place
        # by its rows (the gradient of their sum), then its cost sum and its rows
        flat = self._flat(xp.concat([*grads, tail]))
        flat[:-2] *= float(rows)
        try:
            flat = self.group.allreduce_(flat)
        except RuntimeError as exc:
            raise _CollectiveFailed(str(exc)) from None
        total, count = float(flat[-2]), float(flat[-1])
        flat[:-2] *= 1.0 / count  # the gradient of the batch mean, in place
        flat = asarray(flat, backend=b)
        offset = 0
        for m, key in self.slots:
            shape = tuple(m.get_parameter(key).shape)
            size = 1
            for s in shape:
                size *= s
            # views of the buffer, which nothing else holds: stored as the gradients (zero_grad
            # zeroes them in place at the next step)
            m._gradient[key] = xp.reshape(flat[offset : offset + size], shape)
            m._zero_keys.discard(key)
            offset += size
        self.optimizer.step(net)
        return total, count

    async def run_epoch(self, epoch, lr, plan, start, state=None, report=False) -> dict:
        """Steps ``start``.. of epoch ``epoch``; the costs and row counts of the steps done, and
        (``report``) the parameters and optimizer's state at the end."""

        def run():
            cpu = time.thread_time()
            if state is not None:
                self._load(*state)
            self.optimizer.lr = lr
            self.net.train()
            costs, counts = [], []
            result = {"costs": costs, "counts": counts, "failed": None}
            try:
                for k, (x, y) in enumerate(self.rows.batches(epoch, plan, start), start):
                    total, count = self._step(epoch, k, x, y)
                    costs.append(total / count)
                    counts.append(count)
            except _CollectiveFailed as exc:
                result["failed"] = str(exc)
            except BaseException:
                # an error of the step itself: leave the group, so that the other replicas, waiting
                # in the all-reduce, fail at once rather than at the group's timeout
                if self.group is not None:
                    self.group.close()
                self.group = None
                raise
            result["steps"] = self.optimizer.steps
            if report and result["failed"] is None:
                result["state"] = self._state()
            result["cpu_s"] = time.thread_time() - cpu
            return result

        return await self._run(run)


# --------------------------------------------------------------------------
# The trainer (the driver)
# --------------------------------------------------------------------------


class DataParallelTrainer(Trainer):
    """A :class:`~backprop.Trainer` whose epochs run on replicas on the workers of a Dask cluster.

    See the module's notes for the algorithm, the rows each replica reads,
    the Dropout rule and what happens when a worker dies.

    Parameters
    ----------
    net, loss, optimizer, seed
        As for :class:`~backprop.Trainer` (``seed`` also draws the replicas'
        dropout masks and, for data in storage, their orders of rows).
    compile : bool or 'auto'
        True is refused (the replicas run eager steps); False and ``'auto'``
        run them uncompiled.
    client : distributed.Client, str or None
        The cluster: a client, a scheduler address (``'tcp://host:8786'``),
        or None for the client in force (``distributed.get_client()``).
    n_shards : int, optional
        Replicas (ranks of the group), each with its shard of the rows; by
        default one per worker.
    worker_backend : (name, device, dtype), optional
        Where the replicas compute; by default the network's library and
        dtype on each worker's default device (the worker's GPU under
        ``dask_cuda.LocalCUDACluster``; PyTorch on CUDA all-reduces with
        NCCL, everything else through host memory with gloo).
    retries : int, default 3
        Recoveries from lost workers per epoch before :class:`WorkerLostError`.
    worker_timeout : float, default 60
        Seconds to wait for a replacement worker to join after a failure, and
        for a member of the group to answer a collective.
    chunk_rows : int, optional
        Rows per read for data in storage (see :class:`~backprop.streaming.RowChunks`).
    **options
        The other arguments of :class:`~backprop.Trainer`: ``eps``, ``batch_size``,
        ``shuffle``, ``scheduler``, ``callbacks``.

    Attributes
    ----------
    recoveries : list of dict
        One entry per replaced replica: epoch, batch, shard (rank), lost worker.
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
        chunk_rows: int | None = None,
        compile: bool = False,
        **options: Any,
    ) -> None:
        if compile is True:  # 'auto' (SGD's default) runs uncompiled steps, as False does
            raise ValueError(
                "DataParallelTrainer: compile=True is not supported (the replicas run eager steps)"
            )
        # every argument checked once, before a cluster is joined or started
        self.worker_timeout = real_number(
            "DataParallelTrainer", "worker_timeout", worker_timeout, low=0.0, low_open=True
        )
        if n_shards is not None:
            positive_int("DataParallelTrainer", "n_shards", n_shards)
        self.retries = positive_int("DataParallelTrainer", "retries", retries, minimum=0)
        if chunk_rows is not None:
            positive_int("DataParallelTrainer", "chunk_rows", chunk_rows)
        self.chunk_rows = chunk_rows
        super().__init__(net, loss, optimizer, seed=seed, compile=False, **options)
        stateful = next((m for m in net.unique_modules() if m._buffers), None)
        if stateful is not None:
            # each replica's forward would update its own running statistics, and the network
            # here would keep its initial ones
            raise ValueError(
                f"DataParallelTrainer: {stateful._label()} keeps buffers (running statistics) "
                "that the replicas' forward passes would update apart; data-parallel training "
                "does not gather them: train this network in one process (SGD without trainer=)"
            )
        self.client, self._owns_client = _client(client)
        self._absent: dict[str, int] = {}  # worker -> consecutive listings without it
        self._dead: set[str] = set()
        workers = self._workers()
        if not workers:
            raise ValueError("DataParallelTrainer: the cluster has no workers")
        self.n_workers = len(workers)
        if n_shards is None:
            n_shards = self.n_workers
        self.n_shards = positive_int("DataParallelTrainer", "n_shards", n_shards)
        self.hyperparameters["n_shards"] = self.n_shards  # bound by a checkpoint (the shuffles)
        if worker_backend is None:
            worker_backend = (self.backend.name, None, self.backend.dtype_name)
        self.worker_backend = tuple(worker_backend)
        # the replicas' masks and orders of stored rows (see the module's notes); spawn, so the
        # shuffles drawn from the same generator are those of Trainer
        self._entropy = int(host_rng(seed).spawn(1)[0].integers(2**62))
        self.recoveries: list[dict] = []
        self._replicas = None
        self._generation = 0

    loop_name = "distributed.fit"

    # ------------------------------------------------------------ cluster

    def _workers(self) -> list[str]:
        """The workers the scheduler has, less those seen dying.

        Asks the scheduler itself (``Client.nthreads``), not the client's
        cached identity, whose list of workers can be empty or truncated on
        a healthy cluster. A scheduler that no longer answers raises
        :class:`WorkerLostError` at once.
        """
        if self.client.status not in ("running", "connecting", "newly-created"):
            raise WorkerLostError(
                f"DataParallelTrainer: the client is {self.client.status}: the scheduler was "
                "lost; restart the cluster and resume from a checkpoint (resume=True)"
            )
        try:
            listed = self.client.sync(
                self.client.scheduler.ncores, callback_timeout=self.worker_timeout
            )
        except Exception as exc:
            raise WorkerLostError(
                f"DataParallelTrainer: the scheduler does not answer ({type(exc).__name__}); "
                "restart the cluster and resume from a checkpoint (resume=True)"
            ) from None
        return [w for w in listed if w not in self._dead]

    def _alive(self, worker: str) -> bool:
        """False once ``worker`` is missing from two consecutive listings of the scheduler."""
        if worker in self._dead:
            return False
        if worker in self._workers():
            self._absent.pop(worker, None)
            return True
        self._absent[worker] = self._absent.get(worker, 0) + 1
        if self._absent[worker] >= 2:
            self._dead.add(worker)
            return False
        return True

    def _wait_for_workers(self, count: int) -> list[str]:
        """The live workers, once ``count`` are there or after ``worker_timeout`` seconds."""
        deadline = time.monotonic() + self.worker_timeout
        while True:
            live = self._workers()
            if len(live) >= count or time.monotonic() > deadline:
                return live
            time.sleep(0.1)

    def _rows(self, rank: int):
        if self._stored is None:
            X, Y = self._shards[rank]
            timeout = self.worker_timeout
            worker = self._replicas[rank][2] if self._replicas[rank] else None
            X, Y = self.client.scatter(
                [X, Y], workers=[worker] if worker else None, hash=False, timeout=timeout
            )
            return _MemoryRows(X, Y, rank, self.n_shards, self._bounds)
        X, Y, subset, n, steps = self._stored
        return _StoredRows(
            X, Y, subset, rank, self.n_shards, n, steps, self.chunk_rows, self._entropy,
            self.shuffle,
        )  # fmt: skip

    def _place(self, rank: int, worker: str) -> None:
        self._replicas[rank] = (None, None, worker)
        rows = self._rows(rank)
        data = ()
        if isinstance(rows, _MemoryRows):  # the scattered futures travel as arguments
            data, rows.X, rows.Y = (rows.X, rows.Y), None, None
        future = self.client.submit(
            _Replica, self._arch, self.worker_backend, self.loss, self._blank_optimizer,
            rows, rank, self._entropy, self.worker_timeout, *data,
            workers=[worker], allow_other_workers=False, actor=True, pure=False,
        )  # fmt: skip
        actor = future.result(timeout=self.worker_timeout)
        self._replicas[rank] = (future, actor, worker)

    def _place_anywhere(self, rank: int, preferred: str | None = None) -> None:
        """Put ``rank`` on ``preferred``, or on the live worker holding the fewest replicas."""
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
                self._place(rank, preferred)
                return
            except _LOST as exc:  # the scheduler still listed a worker that had died
                self._dead.add(preferred)
                self._replicas[rank] = None
                preferred, reason = None, exc
        detail = "the cluster has no workers" if reason is None else f"{type(reason).__name__}"
        raise WorkerLostError(
            f"DataParallelTrainer: no live worker could take replica {rank} ({detail}); restart "
            "the cluster and resume from a checkpoint (resume=True)"
        )

    def _form_group(self) -> None:
        """The replicas form a new collective group (a new generation of keys in a new store)."""
        self._generation += 1
        world = self.n_shards
        first = self._replicas[0]
        host, port = self._result(first[1].serve_store(world), first[2])
        calls = {
            r: entry[1].join(host, port, r, world, self._generation)
            for r, entry in enumerate(self._replicas)
        }
        for r, call in calls.items():
            self._result(call, self._replicas[r][2], limit=self.worker_timeout)

    def _start(self) -> None:
        self._arch = architecture(self.net)
        self._slots = list(self.net.parameter_slots())
        blank = copy.copy(self.optimizer)
        blank._state = {}
        blank.steps = 0
        self._blank_optimizer = blank
        self._replicas = [None] * self.n_shards
        workers = self._wait_for_workers(1)
        for r in range(self.n_shards):
            self._place_anywhere(r, workers[r % len(workers)] if workers else None)
        self._form_group()
        self._push = True  # the driver's parameters and state go with the first epoch

    def _stop(self) -> None:
        for entry in self._replicas or ():
            if entry is not None and entry[1] is not None:
                with contextlib.suppress(Exception):
                    self._result(entry[1].close(), entry[2], limit=_PING_S)
        self._replicas = None
        self._shards = None

    def validation_callback(self, X_val, Y_val, metric=None):
        """Validation on the driver: chunk by chunk for data in storage, in memory otherwise."""
        if _is_stored(X_val) or _is_stored(Y_val):
            from .streaming import StreamingValidation

            return StreamingValidation(X_val, Y_val, metric, chunk_rows=self.chunk_rows)
        return super().validation_callback(X_val, Y_val, metric)

    def close(self) -> None:
        """Close the client if this trainer opened it (from a scheduler address)."""
        if self._owns_client:
            self.client.close()

    def _result(self, call, worker: str, limit: float | None = None):
        """The result of an actor ``call`` on ``worker``, or :class:`_WorkerGone` as soon as the
        worker has left the cluster (rather than after Dask's connection timeout)."""
        start = time.monotonic()
        while True:
            try:
                return call.result(timeout=_POLL_S)
            except _TIMEOUTS:
                if not self._alive(worker):
                    raise _WorkerGone(f"worker {worker} left the cluster") from None
                if limit is not None and time.monotonic() - start > limit:
                    raise _WorkerGone(f"worker {worker} did not answer in {limit} s") from None

    def _lost(self, rank: int) -> bool:
        """Whether replica ``rank`` is gone (its worker died), not just its call failing."""
        _, actor, worker = self._replicas[rank]
        if self._alive(worker):
            try:
                self._result(actor.pid(), worker, limit=_PING_S)
                return False
            except Exception:
                pass
        self._dead.add(worker)
        return True

    def _replace(self, rank: int) -> None:
        """Rebuild replica ``rank`` on a live worker, a replacement once it has joined."""
        _, _, worker = self._replicas[rank]
        self._replicas[rank] = None
        self._wait_for_workers(self.n_workers)
        self._place_anywhere(rank)
        epoch, batch = self._where
        self.recoveries.append({"epoch": epoch, "batch": batch, "shard": rank, "lost": worker})

    # --------------------------------------------------------------- epochs

    def _driver_state(self):
        params = [to_numpy(m.get_parameter(k)) for m, k in self._slots]
        state = {
            k: v if k in ("steps", "lr") else to_numpy(v)
            for k, v in self.optimizer.state_dict(self.net).items()
        }
        return params, state

    def _take_state(self, params, state) -> None:
        b = self.backend
        for (m, k), p in zip(self._slots, params):
            m.set_parameter(k, asarray(p, backend=b))
        self.optimizer.load_state_dict(
            self.net, {k: v if k in ("steps", "lr") else asarray(v, backend=b)
                       for k, v in state.items()}
        )  # fmt: skip

    def _epoch(self, plan):
        """Run one epoch on the replicas; (costs, sizes) of its steps."""
        epoch = self.epoch + 1
        costs, counts, start, attempt = [], [], 0, 0
        while True:
            self._where = (epoch, start + 1)
            state = self._driver_state() if self._push else None
            lr = float(self.optimizer.lr)
            calls = {
                r: entry[1].run_epoch(epoch, lr, plan, start, state, r == 0)
                for r, entry in enumerate(self._replicas)
            }
            results, failed = {}, {}
            for r, call in calls.items():
                try:
                    results[r] = self._result(call, self._replicas[r][2])
                except Exception as exc:
                    failed[r] = exc
            broken = {r for r, res in results.items() if res["failed"] is not None}
            if not failed and not broken:
                self._push = False
                #: CPU seconds of each replica's thread in the last epoch (its steps, its reads)
                self.replica_cpu_s = [results[r]["cpu_s"] for r in sorted(results)]
                first = results[0]
                self._take_state(*first["state"])
                costs.extend(first["costs"])
                counts.extend(first["counts"])
                return costs, counts
            for r, exc in failed.items():
                if not self._lost(r):
                    raise exc  # the step itself raised: not a failure of the cluster
            survivors = dict(results)
            done = max((len(res["costs"]) for res in survivors.values()), default=0)
            self._where = (epoch, start + done + 1)
            if attempt == self.retries or not survivors:
                epoch_, batch = self._where
                what = ", ".join(f"replica {r}" for r in failed) or "a member of the group"
                raise WorkerLostError(
                    f"DataParallelTrainer: {what} was lost at epoch {epoch_}, batch {batch} of "
                    f"{len(self.bounds)}, and {self.retries} recoveries on replacement workers "
                    "failed. No update was made for that batch. With a Checkpoint callback "
                    "(checkpoint=PATH), run again with resume=True to continue from the last "
                    "completed epoch"
                )
            attempt += 1
            root = max(survivors, key=lambda r: len(survivors[r]["costs"]))
            costs.extend(survivors[root]["costs"])
            counts.extend(survivors[root]["counts"])
            steps = survivors[root]["steps"]
            start += done
            lost = list(failed) or sorted(broken - set(results))  # ranks whose worker died
            for r in lost:
                self._replace(r)
            self._form_group()
            calls = {r: entry[1].copy_state(root, steps) for r, entry in enumerate(self._replicas)}
            for r, call in calls.items():
                self._result(call, self._replicas[r][2], limit=self.worker_timeout)
            self._push = False

    def _run_epoch(self, X, Y, bounds):
        n = X.shape[0]
        order = self.rng.permutation(n) if self.shuffle else host_arange(0, n)  # Trainer's draw
        costs, _ = self._epoch(order)
        return asarray(costs, backend=self.backend)

    def fit(self, X: ArrayLike, Y: ArrayLike, epochs: int) -> History:
        """Train until ``epochs`` epochs are complete (counting those done); returns the history.

        ``X`` and ``Y`` are arrays in memory on the driver (each replica
        receives its shard once), or data in storage that the replicas read
        themselves: a ``.npy`` path or memory map, a ``dask.array``, a Zarr
        array or a :class:`~backprop.streaming.RowChunks` (``Y`` too).
        """
        positive_int(f"{type(self).__name__}.fit", "epochs", epochs, minimum=0)
        if _is_stored(X) or _is_stored(Y):
            return self._fit_stored(X, Y, epochs)
        X, Y = asarray(X, backend=self.backend), asarray(Y, backend=self.backend)
        if X.ndim < 1 or Y.ndim < 1 or X.shape[0] != Y.shape[0]:
            raise ValueError(
                f"DataParallelTrainer: X and Y must have the same number of rows, "
                f"got X {tuple(X.shape)} and Y {tuple(Y.shape)}"
            )
        if X.shape[0] == 0:
            raise ValueError("DataParallelTrainer: the data set is empty")
        validate_targets(self.net, self.loss, X, Y)
        host_X, host_Y = to_numpy(X), to_numpy(Y)
        s = self.n_shards
        self._shards = [(host_X[r::s, ...], host_Y[r::s, ...]) for r in range(s)]
        self._bounds = batch_bounds(X.shape[0], self.batch_size)
        self._stored = None
        self._start()
        try:
            return super().fit(X, Y, epochs)
        finally:
            self._stop()

    def _fit_stored(self, X, Y, epochs: int) -> History:
        (X_spec, X_rows), (Y_spec, Y_rows) = _storage_spec(X, "X"), _storage_spec(Y, "Y")
        if X_rows is not None or Y_rows is not None:
            same = X_rows is not None and Y_rows is not None and X_rows.shape == Y_rows.shape
            if not same or not bool((X_rows == Y_rows).all()):
                raise ValueError(
                    "DataParallelTrainer: X and Y are RowChunks of different rows; give both "
                    "the same rows="
                )
        with _local_dask():
            Xc = RowChunks(X_spec, self.chunk_rows, rows=X_rows)
            Yc = RowChunks(Y_spec, rows=Y_rows)
            n = Xc.n
            if Yc.n != n:
                raise ValueError(
                    f"DataParallelTrainer: X and Y must have the same number of rows, got X "
                    f"{Xc.shape} and Y {Yc.shape}"
                )
            if n == 0:
                raise ValueError("DataParallelTrainer: the data set is empty")
            first = asarray(Xc.read(0)[:1], backend=self.backend)
            # every target checked by the loss, a chunk at a time (never all of them in memory),
            # and summed for the checkpoints' record of the data
            record = {"rows": int(n), "X": {"shape": [int(v) for v in Xc.shape[1:]]}}
            sums = {"shape": [int(v) for v in Yc.shape[1:]], "abs_sum": 0.0, "weighted_sum": 0.0}
            for k in range(len(Yc)):
                chunk = asarray(Yc.read(k), backend=self.backend)
                validate_targets(self.net, self.loss, first, chunk)
                part = data_identity(self.backend, chunk, chunk)["Y"]
                sums["abs_sum"] += part["abs_sum"]
                sums["weighted_sum"] += part["weighted_sum"]
            record["Y"] = sums
        steps = len(batch_bounds(n, self.batch_size))
        self._stored = (X_spec, Y_spec, X_rows, n, steps)
        self._shards = None
        self._start()

        def run_epoch():
            costs, counts = self._epoch(None)
            return asarray(costs, backend=self.backend), counts

        self.data_identity = lambda: record
        try:
            return self.run_epochs(epochs, n, steps, run_epoch)
        finally:
            self.data_identity = None
            self._stop()

    # ---------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["replicas"] = {"n_shards": self.n_shards, "entropy": str(self._entropy)}
        return state

    def load_state_dict(self, state: dict) -> None:
        replicas = state.get("replicas")
        if replicas is not None and replicas.get("n_shards") != self.n_shards:
            raise ValueError(
                f"DataParallelTrainer: the checkpoint was written with {replicas['n_shards']} "
                f"shards, this run has {self.n_shards}; pass n_shards={replicas['n_shards']}"
            )
        super().load_state_dict(state)
        if replicas is not None:
            self._entropy = int(replicas["entropy"])
        self._push = True


def fit(net: Module, loss: Loss, X: ArrayLike, Y: ArrayLike, **options: Any) -> History:
    """:func:`backprop.SGD` on a Dask cluster (:class:`DataParallelTrainer`); returns the History.

    The arguments are those of :func:`backprop.SGD`, plus those of
    :class:`DataParallelTrainer` (``client``, ``n_shards``, ``worker_backend``,
    ``retries``, ``worker_timeout``, ``chunk_rows``). ``X`` and ``Y`` are
    arrays in memory, or data in storage that each worker reads its own rows
    of (a ``.npy`` path or memory map, a ``dask.array``, a Zarr array, a
    :class:`~backprop.streaming.RowChunks`). Validation, early stopping and
    checkpoints run on the driver, as in a single process.
    """
    options.setdefault("compile", False)  # the replicas run eager steps
    return SGD(net, loss, X, Y, trainer=DataParallelTrainer, **options)
