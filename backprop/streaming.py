"""Data larger than memory: training, evaluation and inference a block of rows at a time.

A data set is read in *chunks*, blocks of consecutive rows, from a
memory-mapped ``.npy`` file (a path or a :class:`numpy.memmap`), a
``dask.array`` (its row chunks, computed on the scheduler in force), a Zarr
array, or any array that slices. While the network trains on one chunk, a
background thread reads the next one, so reading and computing overlap; at
most a few chunks are in memory at once, whatever the size of the data.

Randomness
----------
:class:`StreamingTrainer` shuffles in two levels each epoch: it draws an
order of the chunks, then, as each chunk arrives, an order of its rows, and
cuts the shuffled chunk into batches (:func:`~backprop.optim.loop.batch_bounds`).
Every draw comes from the trainer's generator, in the main thread and in the
order the chunks are used, so a seed gives the same run (and a checkpoint
resumes it exactly) whatever the timing of the reads. A batch holds rows of
one chunk only: two rows of different chunks never meet in a batch, so the
order is less random than a full permutation of the data set. With data
sorted by label (or by time), make chunks hold a mix (shuffle the file once,
or use smaller chunks: more chunks, more mixing). The batches differ from
those of :func:`~backprop.SGD` on the same data held in memory.

Memory
------
A memory-mapped ``.npy`` file is read with positioned reads rather than
through its mapping (see :mod:`backprop.io.ondisk`), so the resident
memory of a process training on a file of any size stays near a few chunks
(``chunk_rows`` rows; by default about 32 MB of data per chunk).
"""

from __future__ import annotations

import collections
import concurrent.futures
import math
import operator
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

from ._checks import positive_int
from ._network import backend_of_net
from .backends import asarray, backend_of, kind_of, namespace_of, to_numpy, use_backend
from .io.ondisk import is_memmap, open_npy, read_rows
from .module import Loss, Module
from .optim.loop import (
    SGD,
    Callback,
    History,
    Trainer,
    Validation,
    batch_bounds,
    data_identity,
    run_once,
)
from .optim.loop import evaluate as evaluate_in_memory
from .optim.step import validate_targets
from .serialization import architecture, build

if TYPE_CHECKING:
    from ._typing import Array, ArrayLike, FilePath, Metric
    from .optim.rules import Optimizer

__all__ = ["RowChunks", "StreamingTrainer", "StreamingValidation", "evaluate", "fit", "predict"]

#: data per chunk when nothing else decides it: a few chunks stay well under a GB
DEFAULT_CHUNK_BYTES = 32 << 20

#: what the streaming functions read: a :class:`RowChunks`, a ``.npy`` path, a NumPy memmap, a
#: ``dask.array``, a Zarr array or any array that slices along its first axis
ChunkData: TypeAlias = "RowChunks | FilePath | ArrayLike"

_T = TypeVar("_T")


# --------------------------------------------------------------------------
# Reading chunks
# --------------------------------------------------------------------------


def _is_dask(x) -> bool:
    return type(x).__module__.startswith("dask.") and hasattr(x, "compute") and hasattr(x, "chunks")


def _is_backend_array(x) -> bool:
    try:
        kind_of(x)
    except TypeError:
        return False
    return True


class RowChunks:
    """The rows of an array, read a block (a chunk) of consecutive rows at a time.

    Parameters
    ----------
    data : path, numpy memmap, dask.array, Zarr array or array
        A path names a ``.npy`` file, memory-mapped (nothing is read before
        a chunk is asked for). Anything with a ``shape`` that slices along
        its first axis works; arrays already in memory are sliced.
    chunk_rows : int, optional
        Rows per chunk. By default a dask array's own row chunks, a Zarr
        array's row chunks grouped to about ``DEFAULT_CHUNK_BYTES``, else
        as many rows as fit in ``DEFAULT_CHUNK_BYTES``.
    rows : sorted integer indices, optional
        Read only these rows (a training or test split): each chunk keeps
        the listed rows that fall in its range of the file.

    Shape
    -----
    ``data`` is ``(n, ...)``; a chunk is ``(rows in the chunk, ...)``.
    """

    def __init__(
        self,
        data: FilePath | ArrayLike,
        chunk_rows: int | None = None,
        *,
        rows: ArrayLike | None = None,
    ) -> None:
        self.name = "data"
        if isinstance(data, (str, os.PathLike)):
            self.name = os.fspath(data)
            data = open_npy(data)
        shape = getattr(data, "shape", None)
        if shape is None or len(shape) < 1:
            raise TypeError(
                f"RowChunks: expected an array with rows or a .npy path, got {type(data).__name__}"
            )
        self.data = data
        self.shape = _known_shape(shape, self.name)
        if any(s < 0 for s in self.shape):
            raise ValueError(
                f"RowChunks: {self.name} has an unknown shape {shape}; compute its chunk sizes"
            )
        self._dask = _is_dask(data)
        self._in_memory = not self._dask and _is_backend_array(data) and not is_memmap(data)
        edges = self._edges(chunk_rows)
        self.rows = None if rows is None else _check_rows(rows, self.shape[0])
        if self.rows is None:
            self.bounds = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
            self.lengths = [b - a for a, b in self.bounds]
            self._picks = [None] * len(self.bounds)
        else:
            xp = namespace_of(self.rows)
            cuts = [
                int(c) for c in xp.searchsorted(self.rows, xp.asarray(edges, dtype=self.rows.dtype))
            ]
            self.bounds, self.lengths, self._picks = [], [], []
            for (a, b), lo, hi in zip(zip(edges[:-1], edges[1:]), cuts[:-1], cuts[1:]):
                if hi > lo:
                    self.bounds.append((a, b))
                    self.lengths.append(hi - lo)
                    self._picks.append((lo, hi))
        self.n = sum(self.lengths)

    def _edges(self, chunk_rows) -> list[int]:
        n = self.shape[0]
        if chunk_rows is not None:
            try:
                step = operator.index(chunk_rows)
            except TypeError:
                step = 0
            if isinstance(chunk_rows, bool) or step < 1:
                raise ValueError(
                    f"RowChunks: chunk_rows must be a positive int, got {chunk_rows!r}"
                )
            return list(range(0, n, step)) + [n]
        chunks = getattr(self.data, "chunks", None)
        if self._dask:
            edges = [0]
            for size in chunks[0]:
                edges.append(edges[-1] + int(size))
            return edges
        row_bytes = math.prod(self.shape[1:]) * int(getattr(self.data.dtype, "itemsize", 8))
        step = max(1, DEFAULT_CHUNK_BYTES // max(row_bytes, 1))
        if isinstance(chunks, tuple) and chunks and isinstance(chunks[0], int) and chunks[0] > 0:
            # whole Zarr chunks: each is read once
            step = max(chunks[0], step // chunks[0] * chunks[0])
        return list(range(0, n, step)) + [n]

    def __len__(self) -> int:
        return len(self.bounds)

    def read(self, k: int) -> Array:
        """Chunk ``k``: a fresh host array (a view for an array already in memory)."""
        a, b = self.bounds[k]
        if self._dask:
            block = self.data[a:b].compute()
        elif self._in_memory:
            block = self.data[a:b, ...]
        else:
            block = read_rows(self.data, a, b)
        picks = self._picks[k]
        if picks is None:
            return block
        index = self.rows[picks[0] : picks[1]] - a
        if self._in_memory:
            xp = namespace_of(block)
            return xp.take(block, asarray(index, backend=backend_of(block)), axis=0)
        return block[index]

    def like(self, other: RowChunks) -> RowChunks:
        """This data cut at the chunks of ``other`` (targets read along with their inputs)."""
        if self.shape[0] != other.shape[0]:
            raise ValueError(
                f"RowChunks: {self.name} has {self.shape[0]} rows but {other.name} has "
                f"{other.shape[0]}; inputs and targets must have the same rows"
            )
        twin = object.__new__(RowChunks)
        twin.__dict__.update(self.__dict__)
        twin.bounds, twin.lengths, twin._picks = other.bounds, other.lengths, other._picks
        twin.rows = other.rows
        return twin

    def __repr__(self) -> str:
        return f"RowChunks({self.name}, shape={self.shape}, chunks={len(self)}, rows={self.n})"


def _known_shape(shape, name) -> tuple[int, ...]:
    """``shape`` as ints; a ValueError naming ``name`` for a size not known yet (a dask array
    whose chunk sizes were not computed has NaN there)."""
    try:
        return tuple(operator.index(s) if not isinstance(s, float) else _int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"RowChunks: {name} has an unknown shape {tuple(shape)}; compute its sizes first "
            "(for a dask array: x.compute_chunk_sizes())"
        ) from None


def _int(size: float) -> int:
    if not size.is_integer():  # NaN too
        raise ValueError(size)
    return int(size)


def _check_rows(rows, n: int):
    rows = to_numpy(rows)
    xp = namespace_of(rows)
    if rows.ndim != 1 or not xp.isdtype(rows.dtype, "integral"):
        raise ValueError(
            f"RowChunks: rows must be a 1-D array of row numbers, got shape {tuple(rows.shape)}"
        )
    if rows.shape[0] == 0:
        raise ValueError("RowChunks: rows is empty")
    if bool(xp.any(rows[1:] <= rows[:-1])):
        raise ValueError("RowChunks: rows must be sorted and unique (sort them first)")
    if int(rows[0]) < 0 or int(rows[-1]) >= n:
        raise ValueError(
            f"RowChunks: rows must lie in [0, {n}), got {int(rows[0])}..{int(rows[-1])}"
        )
    return rows


def as_chunks(
    data: ChunkData, chunk_rows: int | None = None, *, rows: ArrayLike | None = None
) -> RowChunks:
    """``data`` as a :class:`RowChunks` (passed through when it is one already)."""
    if isinstance(data, RowChunks):
        if rows is not None:
            raise ValueError("as_chunks: give rows when making the RowChunks, not with one")
        return data
    return RowChunks(data, chunk_rows, rows=rows)


def _pair(X, Y, chunk_rows, rows=None) -> tuple[RowChunks, RowChunks]:
    X = as_chunks(X, chunk_rows, rows=rows)
    Y = as_chunks(Y, chunk_rows, rows=rows) if not isinstance(Y, RowChunks) else Y
    if X.n == 0:
        raise ValueError("StreamingTrainer: the data set is empty")
    return X, Y.like(X)


def prefetched(read: Callable[[int], _T], order: Iterable[int]) -> Iterator[_T]:
    """Yield ``read(k)`` for each ``k`` of ``order``, reading the next one in a background thread.

    At most two results exist at once: the one being used and the one being
    read. An error in a read is raised where its result is used.
    """
    order = list(order)
    if not order:
        return
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="backprop-prefetch") as pool:
        pending = pool.submit(read, order[0])
        for i in range(len(order)):
            result = pending.result()
            pending = pool.submit(read, order[i + 1]) if i + 1 < len(order) else None
            yield result
            result = None  # let the chunk go before the next read lands


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


class StreamingTrainer(Trainer):
    """A :class:`~backprop.Trainer` whose data are read chunk by chunk (see the module's notes).

    Parameters
    ----------
    net, loss, optimizer, compile
        As for :class:`~backprop.Trainer` (``compile`` is False by default here).
    chunk_rows : int, optional
        Rows per chunk (see :class:`RowChunks`).
    prefetch : bool, default True
        Read the next chunk in a background thread.
    **options
        The other arguments of :class:`~backprop.Trainer`: ``eps``, ``batch_size``,
        ``shuffle``, ``seed``, ``scheduler``, ``callbacks``.

    Notes
    -----
    ``fit(X, Y, epochs)`` takes anything :class:`RowChunks` reads (or
    :class:`RowChunks` objects). Every target is validated first, in one
    pass over ``Y`` (not ``X``), so a bad label stops the run before any
    update. The callbacks of :class:`~backprop.Trainer` work unchanged;
    validate with :class:`StreamingValidation` when the validation data do
    not fit in memory either.
    """

    def __init__(
        self,
        net: Module,
        loss: Loss,
        optimizer: str | Optimizer | None = None,
        *,
        chunk_rows: int | None = None,
        prefetch: bool = True,
        compile: bool | Literal["auto"] = False,
        **options: Any,
    ) -> None:
        if chunk_rows is not None:
            chunk_rows = positive_int("StreamingTrainer", "chunk_rows", chunk_rows)
        super().__init__(net, loss, optimizer, compile=compile, **options)
        self.chunk_rows = chunk_rows
        self.hyperparameters["chunk_rows"] = chunk_rows  # bound by a checkpoint (the shuffles)
        self.prefetch = bool(prefetch)

    loop_name = "streaming.fit"

    def validation_callback(
        self, X_val: ChunkData, Y_val: ChunkData, metric: Metric | None = None
    ) -> Callback:
        return StreamingValidation(X_val, Y_val, metric, chunk_rows=self.chunk_rows)

    def fit(self, X: ChunkData, Y: ChunkData, epochs: int) -> History:
        """Train until ``epochs`` epochs are complete (counting those done); returns the history."""
        X, Y = _pair(X, Y, self.chunk_rows)
        first = asarray(X.read(0)[:1, ...], backend=self.backend)
        for k in range(len(Y)):
            validate_targets(self.net, self.loss, first, asarray(Y.read(k), backend=self.backend))
        count = sum(len(batch_bounds(m, self.batch_size)) for m in X.lengths)
        self.data_identity = run_once(lambda: self._identity(X, Y))
        try:
            return self.run_epochs(epochs, X.n, count, lambda: self._stream_epoch(X, Y))
        finally:
            self.data_identity = None

    def _identity(self, X: RowChunks, Y: RowChunks) -> dict:
        """What a checkpoint records of data read chunk by chunk: the row count and shapes, and
        the sums of :func:`~backprop.optim.loop.data_identity` over the first and last chunks
        (the whole data would be one more pass over the disk)."""
        b = self.backend
        picked = sorted({0, len(X) - 1})
        x = b.xp.concat([asarray(X.read(k), backend=b) for k in picked], axis=0)
        y = b.xp.concat([asarray(Y.read(k), backend=b) for k in picked], axis=0)
        record = data_identity(b, x, y)
        record["rows"] = X.n
        return record

    def _stream_epoch(self, X: RowChunks, Y: RowChunks):
        b, xp = self.backend, self.backend.xp
        order = [int(k) for k in self.rng.permutation(len(X))] if self.shuffle else range(len(X))
        costs, sizes = [], []

        def read(k):
            return X.read(k), Y.read(k)

        chunks = prefetched(read, order) if self.prefetch else (read(k) for k in order)
        with Loss.targets_checked():
            for x, y in chunks:
                x, y = asarray(x, backend=b), asarray(y, backend=b)
                if self.shuffle:
                    perm = asarray(self.rng.permutation(x.shape[0]), backend=b)
                    x, y = xp.take(x, perm, axis=0), xp.take(y, perm, axis=0)
                for start, stop in batch_bounds(x.shape[0], self.batch_size):
                    costs.append(self.optim.step(x[start:stop, ...], y[start:stop, ...]))
                    sizes.append(float(stop - start))
                x = y = None
        return xp.stack(costs), sizes


# --------------------------------------------------------------------------
# Evaluation and inference
# --------------------------------------------------------------------------


def evaluate(
    net: Module,
    loss: Loss,
    X: ChunkData,
    Y: ChunkData,
    *,
    batch_size: int = 1024,
    metric: Metric | None = None,
    chunk_rows: int | None = None,
    rows: ArrayLike | None = None,
) -> tuple[float, float | None]:
    """Mean cost (and metric) of ``net`` on data read chunk by chunk, in evaluation mode.

    Returns ``(cost, metric_value)`` like :func:`backprop.evaluate`. The
    metric must be a mean over rows (accuracy is): each chunk's value is
    weighted by its row count.
    """
    batch_size = positive_int("streaming.evaluate", "batch_size", batch_size)
    X, Y = _pair(X, Y, chunk_rows, rows)
    backend = backend_of_net(net)
    cost = score = 0.0

    def read(k):
        return X.read(k), Y.read(k)

    for k, (x, y) in enumerate(prefetched(read, range(len(X)))):
        part, value = evaluate_in_memory(
            net, loss, asarray(x, backend=backend), asarray(y, backend=backend), batch_size, metric
        )
        weight = X.lengths[k] / X.n
        cost += part * weight
        if value is not None:
            score += value * weight
    return cost, (score if metric is not None else None)


class StreamingValidation(Validation):
    """:class:`~backprop.Validation` for data read chunk by chunk: ``val_loss``, ``metric``."""

    evaluate = staticmethod(evaluate)  # this module's, chunk by chunk

    def __init__(
        self,
        X_val: ChunkData,
        Y_val: ChunkData,
        metric: Metric | None = None,
        *,
        batch_size: int = 1024,
        chunk_rows: int | None = None,
        rows: ArrayLike | None = None,
    ) -> None:
        super().__init__(*_pair(X_val, Y_val, chunk_rows, rows), metric, batch_size)

    def on_train_begin(self, trainer: Trainer) -> None:
        pass  # the chunks are read at each evaluation


def _outputs(net: Module, x, batch_size: int):
    """``net``'s outputs for ``x`` in evaluation mode, ``batch_size`` rows at a time."""
    xp = namespace_of(x)
    parts = [net.forward(x[a:b, ...]) for a, b in batch_bounds(x.shape[0], batch_size)]
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


def predict(
    net: Module,
    X: ChunkData,
    *,
    batch_size: int = 1024,
    chunk_rows: int | None = None,
    rows: ArrayLike | None = None,
) -> Array:
    """The outputs of ``net`` (in evaluation mode) for data too large for memory.

    A ``dask.array`` gives a ``dask.array`` (one task per row chunk, built
    with ``map_blocks``; nothing is computed before you ask): each task
    rebuilds the network from its architecture and parameters, on the
    backend and dtype of ``net``, so it runs on any worker of a cluster.
    Other data (a ``.npy`` path, a memory map, a Zarr array) are read chunk
    by chunk and the outputs, which are usually far smaller, come back as
    one array of the network's backend.

    Shape
    -----
    ``(n, ...)`` -> ``(n, ...)``, the network's output for each row.
    """
    batch_size = positive_int("streaming.predict", "batch_size", batch_size)
    if _is_dask(X) and rows is None:
        return _predict_dask(net, X, batch_size, chunk_rows)
    X = as_chunks(X, chunk_rows, rows=rows)
    backend = backend_of_net(net)
    modes = [(m, m.training) for m in net.unique_modules()]
    net.eval()
    try:
        parts = [
            _outputs(net, asarray(x, backend=backend), batch_size)
            for x in prefetched(X.read, range(len(X)))
        ]
    finally:
        for m, mode in modes:
            m.training = mode
    return parts[0] if len(parts) == 1 else backend.xp.concat(parts, axis=0)


# networks rebuilt for map_blocks tasks, per (run, thread): a module keeps what forward computed
_REBUILT: collections.OrderedDict = collections.OrderedDict()
_REBUILT_LOCK = threading.Lock()
_REBUILT_KEEP = 16


def _rebuilt(token, arch, state, backend_spec):
    key = (token, threading.get_ident())
    with _REBUILT_LOCK:
        net = _REBUILT.get(key)
        if net is not None:
            _REBUILT.move_to_end(key)
            return net
    with use_backend(*backend_spec):
        net = build(arch)
        net.load_state_dict(state)
    net.eval()
    with _REBUILT_LOCK:
        _REBUILT[key] = net
        while len(_REBUILT) > _REBUILT_KEEP:
            _REBUILT.popitem(last=False)
    return net


def _predict_block(block, token, arch, state, backend_spec, batch_size, tail):
    net = _rebuilt(token, arch, state, backend_spec)
    b = backend_of_net(net)
    if block.shape[0] == 0:
        return to_numpy(b.xp.zeros((0, *tail), dtype=b.dtype))
    return to_numpy(_outputs(net, asarray(block, backend=b), batch_size))


def _predict_dask(net, X, batch_size, chunk_rows):
    import dask

    backend = backend_of_net(net)
    if chunk_rows is not None:
        X = X.rechunk({0: chunk_rows})
    if any(isinstance(s, float) for s in X.shape[1:]):
        _known_shape(X.shape, "X")  # raises, naming the unknown sizes
    if X.ndim > 1:
        X = X.rechunk(dict.fromkeys(range(1, X.ndim), -1))  # a task needs whole rows
    modes = [(m, m.training) for m in net.unique_modules()]
    net.eval()
    try:
        probe = net.forward(backend.xp.zeros((1, *X.shape[1:]), dtype=backend.dtype))
    finally:
        for m, mode in modes:
            m.training = mode
    out = to_numpy(probe)
    # copies taken now (buffers too): the result is the network as it is when predict is called,
    # whatever training does to it before the graph is computed
    state = {name: to_numpy(backend.copy(p)) for name, p in net.state_dict().items()}
    spec = (backend.name, None, backend.dtype_name)  # each worker's default device
    tail = tuple(out.shape[1:])
    return X.map_blocks(
        _predict_block,
        uuid.uuid4().hex,
        architecture(net),
        dask.delayed(state, pure=True),
        spec,
        batch_size,
        tail,
        dtype=out.dtype,
        chunks=(X.chunks[0], *((s,) for s in tail)),
        drop_axis=list(range(len(tail) + 1, X.ndim)) if X.ndim > len(tail) + 1 else None,
        new_axis=list(range(X.ndim, len(tail) + 1)) if len(tail) + 1 > X.ndim else None,
        meta=out[:0],
    )


# --------------------------------------------------------------------------
# One call
# --------------------------------------------------------------------------


def fit(net: Module, loss: Loss, X: ChunkData, Y: ChunkData, **options: Any) -> History:
    """:func:`backprop.SGD` for data read chunk by chunk; returns the :class:`~backprop.History`.

    ``X``, ``Y`` and the validation pair are anything :class:`RowChunks`
    reads. The arguments are those of :func:`backprop.SGD`, plus
    ``chunk_rows`` and ``prefetch`` (see :class:`StreamingTrainer`).
    """
    options.setdefault("compile", False)
    return SGD(net, loss, X, Y, trainer=StreamingTrainer, **options)
