"""backprop.streaming: training, evaluation and inference on data read chunk by chunk."""

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import backprop as bp
from backprop import models, streaming
from backprop.optim import Optim, batch_bounds
from backprop.serialization import architecture, build

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def clone(net):
    twin = build(architecture(net))
    twin.load_state_dict(net.state_dict())
    return twin


def close_params(a, b, tol=1e-12):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_allclose(bp.to_numpy(p), bp.to_numpy(q), rtol=tol, atol=tol, err_msg=name)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    return X, y


@pytest.fixture
def files(tmp_path, data):
    X, y = data
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    return str(tmp_path / "X.npy"), str(tmp_path / "y.npy")


# ------------------------------------------------------------------ RowChunks


def test_row_chunks_bounds_and_rows(files, data):
    X, _ = data
    chunks = streaming.RowChunks(files[0], chunk_rows=15)
    assert chunks.bounds == [(0, 15), (15, 30), (30, 45), (45, 60), (60, 64)] and chunks.n == 64
    np.testing.assert_array_equal(chunks.read(4), X[60:64])
    rows = np.array([1, 2, 20, 47, 63])
    subset = streaming.RowChunks(files[0], chunk_rows=16, rows=rows)
    assert subset.bounds == [(0, 16), (16, 32), (32, 48), (48, 64)] and subset.lengths == [
        2,
        1,
        1,
        1,
    ]
    got = np.concatenate([subset.read(k) for k in range(len(subset))])
    np.testing.assert_array_equal(got, X[rows])
    sparse = streaming.RowChunks(X, chunk_rows=16, rows=np.array([3, 4]))
    assert len(sparse) == 1 and sparse.n == 2  # chunks without rows are left out


def test_row_chunks_default_sizes(files, monkeypatch):
    monkeypatch.setattr(streaming, "DEFAULT_CHUNK_BYTES", 5 * 8 * 10)  # ten rows of 5 float64
    assert streaming.RowChunks(files[0]).lengths == [10] * 6 + [4]

    class ZarrLike:  # what RowChunks needs from a Zarr array: shape, dtype, chunks, slicing
        def __init__(self, a):
            self.a, self.shape, self.dtype, self.chunks = a, a.shape, a.dtype, (4, 5)

        def __getitem__(self, index):
            return self.a[index]

    zarr_like = streaming.RowChunks(ZarrLike(np.zeros((61, 5))))
    assert zarr_like.lengths == [8] * 7 + [5]  # whole Zarr chunks of 4 rows, about ten rows


def test_row_chunks_errors(files, data):
    X, y = data
    with pytest.raises(ValueError, match="chunk_rows must be a positive int"):
        streaming.RowChunks(X, chunk_rows=0)
    with pytest.raises(ValueError, match="sorted and unique"):
        streaming.RowChunks(X, rows=np.array([3, 1]))
    with pytest.raises(ValueError, match=r"lie in \[0, 64\)"):
        streaming.RowChunks(X, rows=np.array([1, 64]))
    with pytest.raises(TypeError, match="array with rows"):
        streaming.RowChunks(object())
    with pytest.raises(ValueError, match="same rows"):
        streaming.evaluate(models.mlp(5, 3), bp.CELogSoftmax(), X, y[:-1])


def test_prefetch_reads_ahead_in_another_thread():
    started, used = [], []
    main = threading.get_ident()

    def read(k):
        started.append((k, threading.get_ident()))
        return k * 10

    for value in streaming.prefetched(read, [3, 1, 2]):
        # when a chunk is used, at most the next one has been asked for
        assert len(started) <= len(used) + 2
        used.append(value)
    assert used == [30, 10, 20] and all(t != main for _, t in started)

    def broken(k):
        raise OSError(f"disk error at chunk {k}")

    with pytest.raises(OSError, match="chunk 0"):
        list(streaming.prefetched(broken, [0, 1]))


# ------------------------------------------------------------------- training


def by_hand(net, X, y, epochs, *, seed, chunk_rows, batch_size, eps=0.1):
    """The documented draws: an order of the chunks, then an order of each chunk's rows."""
    rng = np.random.default_rng(seed)
    optim = Optim(net, bp.CELogSoftmax(), eps)
    edges = list(range(0, X.shape[0], chunk_rows)) + [X.shape[0]]
    bounds = list(zip(edges[:-1], edges[1:]))
    for _ in range(epochs):
        for k in rng.permutation(len(bounds)):
            a, b = bounds[k]
            perm = rng.permutation(b - a)
            x, t = bp.asarray(X[a:b][perm]), bp.asarray(y[a:b][perm])
            for s, e in batch_bounds(b - a, batch_size):
                optim.step(x[s:e, ...], t[s:e, ...])


def test_epoch_follows_the_documented_draws(f64, data):
    X, y = data
    net = models.mlp(5, 3, hidden=8)
    ref = clone(net)
    # 16-row chunks in batches of 8: one batch shape, which JAX compiles once
    trainer = streaming.StreamingTrainer(
        net, bp.CELogSoftmax(), eps=0.1, batch_size=8, seed=3, chunk_rows=16
    )
    history = trainer.fit(X, y, 2)
    by_hand(ref, X, y, 2, seed=3, chunk_rows=16, batch_size=8)
    close_params(net, ref)
    assert len(history) == 2 and all(np.isfinite(history))


@pytest.mark.parametrize("source", ["npy", "memmap", "dask"])
def test_sources_give_the_same_run(source, files, data):
    X, y = data
    if source == "npy":
        Xs, ys = files
    elif source == "memmap":
        Xs, ys = np.load(files[0], mmap_mode="r"), np.load(files[1], mmap_mode="r")
    else:
        da = pytest.importorskip("dask.array", reason="dask is not installed")
        Xs, ys = da.from_array(X, chunks=16), da.from_array(y, chunks=16)
    with bp.use_backend("numpy", dtype="float64"):
        bp.manual_seed(0)
        net = models.mlp(5, 3, hidden=8)
        ref = clone(net)
        streaming.fit(
            net, bp.CELogSoftmax(), Xs, ys, epochs=2, eps=0.1, batch_size=5, seed=3, chunk_rows=16
        )
        by_hand(ref, X, y, 2, seed=3, chunk_rows=16, batch_size=5)
        close_params(net, ref)


def test_one_chunk_without_shuffle_is_sgd(f64, data):
    X, y = data
    net = models.mlp(5, 3, hidden=8)
    ref = clone(net)
    streaming.fit(net, bp.CELogSoftmax(), X, y, epochs=2, eps=0.1, batch_size=16, shuffle=False)
    bp.SGD(ref, bp.CELogSoftmax(), X, y, epochs=2, eps=0.1, batch_size=16, shuffle=False)
    close_params(net, ref)


def test_digits_from_files_with_validation(tmp_path):
    X_tr, X_te, y_tr, y_te = (bp.to_numpy(a) for a in bp.load_digits(seed=0))
    paths = {}
    for name, a in (("X_tr", X_tr), ("y_tr", y_tr), ("X_te", X_te), ("y_te", y_te)):
        paths[name] = str(tmp_path / f"{name}.npy")
        np.save(paths[name], a)
    bp.manual_seed(0)
    net = models.mlp(64, 10)
    history = streaming.fit(
        net, bp.CELogSoftmax(), paths["X_tr"], paths["y_tr"], epochs=8, eps=0.1, seed=0,
        chunk_rows=300, validation=(paths["X_te"], paths["y_te"]), metric=bp.accuracy, patience=5,
        restore_best=False,
    )  # fmt: skip
    assert len(history.val_loss) == len(history) == len(history.metric)
    cost, acc = streaming.evaluate(
        net, bp.CELogSoftmax(), paths["X_te"], paths["y_te"], metric=bp.accuracy
    )
    assert acc == history.metric[-1] and acc > 0.9
    in_memory = bp.evaluate(net, bp.CELogSoftmax(), X_te, y_te, metric=bp.accuracy)
    assert cost == pytest.approx(in_memory[0], rel=1e-6) and acc == pytest.approx(in_memory[1])


def test_checkpoint_resumes_exactly(tmp_path, data):
    X, y = data
    with bp.use_backend("numpy", dtype="float64"):
        bp.manual_seed(0)
        net = models.mlp(5, 3, hidden=8)
        ref = clone(net)
        options = {"eps": 0.1, "batch_size": 5, "seed": 1, "chunk_rows": 16, "optimizer": "adam"}
        path = tmp_path / "run.npz"
        streaming.fit(net, bp.CELogSoftmax(), X, y, epochs=2, checkpoint=path, **options)
        resumed = clone(ref)  # the resumed run starts from the checkpoint, not from these weights
        streaming.fit(
            resumed, bp.CELogSoftmax(), X, y, epochs=4, checkpoint=path, resume=True, **options
        )
        streaming.fit(ref, bp.CELogSoftmax(), X, y, epochs=4, **options)
        close_params(resumed, ref, 0)


def test_bad_targets_stop_before_any_update(data):
    X, y = data
    y = y.copy()
    y[-1] = 7  # out of range for 3 classes, in the last chunk
    net = models.mlp(5, 3, hidden=8)
    before = net.state_dict()
    with pytest.raises(ValueError, match="out of range"):
        streaming.fit(net, bp.CELogSoftmax(), X, y, epochs=1, chunk_rows=16)
    for name, p in net.state_dict().items():
        np.testing.assert_array_equal(bp.to_numpy(p), bp.to_numpy(before[name]))


# ------------------------------------------------------------------ inference


def test_predict_reads_chunk_by_chunk(files, data):
    X, _ = data
    with bp.use_backend("numpy", dtype="float64"):
        net = models.mlp(5, 3, hidden=8).eval()
        expected = bp.to_numpy(net.forward(X))
        np.testing.assert_allclose(
            bp.to_numpy(streaming.predict(net, files[0], chunk_rows=16)), expected
        )
        rows = np.array([0, 17, 63])
        np.testing.assert_allclose(
            bp.to_numpy(streaming.predict(net, X, rows=rows)), expected[rows]
        )
        assert net.training is False


def test_predict_on_a_dask_array_is_lazy():
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    rng = np.random.default_rng(1)
    images = rng.normal(size=(50, 4, 4))
    with bp.use_backend("numpy", dtype="float64"):
        net = bp.Sequential(bp.Flatten(), bp.Linear(16, 3))
        out = streaming.predict(net, da.from_array(images, chunks=(16, 2, 4)))
        assert (
            isinstance(out, da.Array) and out.shape == (50, 3) and out.chunks[0] == (16, 16, 16, 2)
        )
        np.testing.assert_allclose(out.compute(), bp.to_numpy(net.forward(images)), rtol=1e-12)
        vectors = da.from_array(rng.normal(size=(30, 16)), chunks=10)
        out = streaming.predict(net.children()[1], vectors, batch_size=4)
        np.testing.assert_allclose(
            out.compute(), bp.to_numpy(net.children()[1].forward(vectors.compute()))
        )


# --------------------------------------------------------------------- memory


PEAK = """
import sys
import numpy as np
import backprop as bp
from backprop import models, streaming

def megabytes(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

path, rows, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
net = models.mlp(256, 10)
labels = np.zeros(rows, dtype=np.int64)
# a slice: read through the map
source = path if mode == "file" else np.load(path, mmap_mode="r")[0:]
# warm-up on a small array: the one-time allocations of the array library (JAX compiles the
# step, BLAS sizes its buffers) are not what this test measures
streaming.fit(net, bp.CELogSoftmax(), np.zeros((4096, 256), dtype=np.float32),
              labels[:4096], epochs=1, eps=0.01, chunk_rows=2048, batch_size=256)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to the current resident size
before = megabytes("VmRSS")
streaming.fit(net, bp.CELogSoftmax(), source, labels, epochs=1, eps=0.01, chunk_rows=2048,
              batch_size=256)
print(megabytes("VmHWM") - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc/self/clear_refs"
)
def test_peak_memory_stays_near_a_few_chunks(tmp_path):
    """An epoch over a 64 MB file in 2 MB chunks raises the peak resident memory by a few chunks.

    Read through its memory mapping instead, the whole file becomes resident:
    the contrast shows the measure sees what it should.
    """
    rows = 1 << 16
    path = tmp_path / "X.npy"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 256))
    X[...] = 0.5
    X.flush()
    del X
    env = {**os.environ, "PYTHONPATH": ROOT}

    def growth_mb(mode):
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(PEAK), str(path), str(rows), mode],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return float(out.stdout.split()[-1])

    by_reads, by_mapping = growth_mb("file"), growth_mb("mapping")
    assert by_reads < 24, f"training on a 64 MB file raised the peak RSS by {by_reads:.0f} MB"
    assert by_mapping > 48, f"reading through the mapping raised it by {by_mapping:.0f} MB only"
