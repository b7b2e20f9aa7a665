"""backprop.distributed: data-parallel training on a 2-worker Dask LocalCluster.

One cluster serves the whole module (starting one takes seconds). With the
same seed, a cluster run must give the parameters of a single-process run
with the same global batches: float64 to 1e-10, float32 to 1e-5 relative.
"""

import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("distributed", reason="the distributed extra is not installed")
pytest.importorskip("dask.array", reason="the distributed extra is not installed")

import backprop as bp
from backprop import distributed, models, streaming
from backprop.serialization import architecture, build


@pytest.fixture(scope="module")
def client():
    with distributed.local_cluster(2) as c:
        yield c


@pytest.fixture(scope="module")
def digits():
    return tuple(bp.to_numpy(a) for a in bp.load_digits(seed=0))


@pytest.fixture
def f64_numpy():
    with bp.use_backend("numpy", dtype="float64"):
        bp.manual_seed(0)
        yield


def clone(net):
    twin = build(architecture(net))
    twin.load_state_dict(net.state_dict())
    return twin


def max_error(net, ref, relative=False):
    """Largest difference of a parameter, absolute or relative to that parameter's largest value."""
    worst = 0.0
    for p, q in zip(net.parameters(), ref.parameters()):
        a, b = bp.to_numpy(p).astype(np.float64), bp.to_numpy(q).astype(np.float64)
        error = np.max(np.abs(a - b))
        worst = max(worst, error / np.max(np.abs(b)) if relative else error)
    return worst


NETWORKS = {"mlp": lambda: models.mlp(64, 10), "cnn": lambda: models.cnn1d(64, 10)}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("network", ["mlp", pytest.param("cnn", marks=pytest.mark.slow)])
def test_same_parameters_as_one_process_float64(client, digits, f64_numpy, network, optimizer):
    X, _, y, _ = digits
    if network == "cnn":  # 20 batches are enough to compare, and the CNN steps are slow
        X, y = X[:640], y[:640]
    net = NETWORKS[network]()
    ref = clone(net)
    lr = 0.1 if optimizer == "sgd" else 1e-3
    options = {"epochs": 1, "eps": lr, "optimizer": optimizer, "seed": 0, "batch_size": 32}
    history = distributed.fit(net, bp.CELogSoftmax(), X, y, client=client, **options)
    expected = bp.SGD(ref, bp.CELogSoftmax(), X, y, **options)
    assert max_error(net, ref) < 1e-10
    assert history[0] == pytest.approx(expected[0], rel=1e-12)


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_replicas_on_another_library_give_the_same_parameters(client, digits, f64_numpy, library):
    """The replicas compute with PyTorch or JAX (gloo through host memory), the driver with
    NumPy."""
    pytest.importorskip(library, reason=f"{library} is not installed")
    X, _, y, _ = digits
    X, y = X[:320], y[:320]
    net = models.mlp(64, 10, hidden=16)
    ref = clone(net)
    options = {"epochs": 1, "eps": 1e-3, "optimizer": "adam", "seed": 0, "batch_size": 32}
    distributed.fit(
        net, bp.CELogSoftmax(), X, y, client=client, n_shards=2,
        worker_backend=(library, None, "float64"), **options,
    )  # fmt: skip
    bp.SGD(ref, bp.CELogSoftmax(), X, y, **options)
    assert max_error(net, ref) < 1e-10


def test_same_parameters_as_one_process_float32(client, digits):
    X, _, y, _ = digits
    with bp.use_backend("numpy", dtype="float32"):
        bp.manual_seed(0)
        net = models.mlp(64, 10)
        ref = clone(net)
        options = {"epochs": 2, "eps": 1e-3, "optimizer": "adam", "seed": 0, "batch_size": 32}
        distributed.fit(net, bp.CELogSoftmax(), X, y, client=client, **options)
        bp.SGD(ref, bp.CELogSoftmax(), X, y, **options)
    assert bp.backends.backend_of(net.parameters()[0]).dtype_name == "float32"
    assert max_error(net, ref, relative=True) < 1e-5


def test_sgd_runs_the_data_parallel_trainer_as_distributed_fit_does(client, digits, f64_numpy):
    """SGD's default compile='auto' is an uncompiled step here, not the refused compile=True."""
    X, _, y, _ = digits
    X, y = X[:320], y[:320]
    net = NETWORKS["mlp"]()
    ref = clone(net)
    options = {"epochs": 1, "eps": 0.1, "seed": 0, "batch_size": 32}
    distributed.fit(net, bp.CELogSoftmax(), X, y, client=client, **options)
    bp.SGD(
        ref, bp.CELogSoftmax(), X, y, trainer=distributed.DataParallelTrainer, client=client,
        **options,
    )  # fmt: skip
    assert max_error(net, ref) == 0.0


def test_more_shards_than_workers_validation_and_early_stopping(client, digits, f64_numpy):
    X, X_val, y, y_val = digits
    net = models.mlp(64, 10, hidden=32)
    ref = clone(net)
    options = {
        "epochs": 3, "eps": 0.05, "optimizer": "momentum", "seed": 1, "batch_size": 50,
        "validation": (X_val, y_val), "metric": bp.accuracy, "patience": 2,
    }  # fmt: skip
    history = distributed.fit(net, bp.CELogSoftmax(), X, y, client=client, n_shards=3, **options)
    expected = bp.SGD(ref, bp.CELogSoftmax(), X, y, **options)
    assert max_error(net, ref) < 1e-10
    np.testing.assert_allclose(history.val_loss, expected.val_loss, rtol=1e-10)
    assert history.metric == expected.metric and history.best_epoch == expected.best_epoch


def test_dropout_runs_are_reproducible(client, digits, f64_numpy):
    X, _, y, _ = digits

    def run():
        bp.manual_seed(0)
        net = bp.Sequential(bp.Linear(64, 32), bp.ReLU(), bp.Dropout(0.3), bp.Linear(32, 10))
        trainer = distributed.DataParallelTrainer(
            net, bp.CELogSoftmax(), "adam", client=client, eps=1e-3, seed=4
        )
        trainer.fit(X[:400], y[:400], 1)
        return net, trainer

    (a, trainer), (b, _) = run(), run()
    assert max_error(a, b) == 0.0
    assert trainer.state_dict()["replicas"]["n_shards"] == 2


class KillerLoss(bp.CELogSoftmax):
    """Kills the worker process of the first replica that reaches its ``kill_at``-th step (a
    marker file makes it happen once: the replacement replica trains on)."""

    def __init__(self, marker, kill_at):
        super().__init__()
        self.marker, self.kill_at, self.calls = str(marker), kill_at, 0

    def forward_backward(self, y, yhat):
        self.calls += 1
        if self.calls == self.kill_at:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().forward_backward(y, yhat)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_a_killed_worker_is_replaced_and_the_epoch_goes_on(
    client, digits, f64_numpy, tmp_path, optimizer
):
    """A worker process killed mid-epoch: the survivor's all-reduce fails, a replacement joins,
    copies the survivor's parameters and optimizer state, and the epoch continues."""
    X, _, y, _ = digits
    net = models.mlp(64, 10, hidden=32)
    ref = clone(net)
    lr = 1e-3 if optimizer == "adam" else 0.05
    loss = KillerLoss(tmp_path / "killed", kill_at=10)
    trainer = distributed.DataParallelTrainer(
        net, loss, optimizer, client=client, eps=lr, seed=0, batch_size=32
    )
    trainer.fit(X, y, 2)
    bp.SGD(
        ref, bp.CELogSoftmax(), X, y, epochs=2, eps=lr, optimizer=optimizer, seed=0, batch_size=32
    )
    assert [(r["epoch"], r["batch"]) for r in trainer.recoveries] == [(1, 10)]
    assert max_error(net, ref) < 1e-10  # nothing skipped, nothing counted twice


def test_a_lost_worker_stops_the_run_which_resumes_from_its_checkpoint(
    client, digits, f64_numpy, tmp_path
):
    X, _, y, _ = digits
    net = models.mlp(64, 10, hidden=32)
    ref = clone(net)
    path = tmp_path / "run.npz"
    from backprop.optim import Checkpoint

    trainer = distributed.DataParallelTrainer(
        net, KillerLoss(tmp_path / "killed", kill_at=43 + 5), "adam", client=client, eps=1e-3,
        seed=0, batch_size=32, retries=0, callbacks=[Checkpoint(path)],
    )  # fmt: skip
    with pytest.raises(distributed.WorkerLostError, match=r"epoch 2, batch 5 of 43.*resume=True"):
        trainer.fit(X, y, 3)
    assert trainer.epoch == 1
    resumed = clone(ref)
    distributed.fit(
        resumed, bp.CELogSoftmax(), X, y, client=client, n_shards=2, epochs=3, eps=1e-3,
        optimizer="adam", seed=0, checkpoint=path, resume=True,
    )  # fmt: skip
    bp.SGD(ref, bp.CELogSoftmax(), X, y, epochs=3, eps=1e-3, optimizer="adam", seed=0)
    assert max_error(resumed, ref) < 1e-10


class FailsOnWorkers(bp.CELogSoftmax):
    """A loss whose step raises on the workers (the driver only validates targets with forward)."""

    def forward_backward(self, y, yhat):
        raise ValueError("FailsOnWorkers: a bug in a step")


def test_an_error_in_a_step_is_raised_as_it_is(client, digits, f64_numpy):
    X, _, y, _ = digits
    net = models.mlp(64, 10, hidden=8)
    with pytest.raises(ValueError, match="a bug in a step"):
        distributed.fit(net, FailsOnWorkers(), X[:100], y[:100], client=client, epochs=1)


class FailsOnOneReplica(bp.CELogSoftmax):
    """The first replica to reach its third step raises (a marker file picks one); the other
    waits in the all-reduce."""

    def __init__(self, marker):
        super().__init__()
        self.marker, self.calls = str(marker), 0

    def forward_backward(self, y, yhat):
        self.calls += 1
        if self.calls == 3:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                raise ValueError("FailsOnOneReplica: a bug in one replica's step")
        return super().forward_backward(y, yhat)


def test_an_error_in_one_replica_does_not_leave_the_others_waiting(
    client, digits, f64_numpy, tmp_path
):
    X, _, y, _ = digits
    net = models.mlp(64, 10, hidden=8)
    client.wait_for_workers(2, timeout=60)
    start = time.monotonic()
    with pytest.raises(ValueError, match="a bug in one replica"):
        distributed.fit(
            net, FailsOnOneReplica(tmp_path / "failed"), X[:320], y[:320], client=client,
            epochs=1, n_shards=2, worker_timeout=60,
        )  # fmt: skip
    assert time.monotonic() - start < 30  # not the group's 60 s timeout


def test_argument_errors(client):
    net = models.mlp(4, 2, hidden=3)
    with pytest.raises(ValueError, match="compile=True is not supported"):
        distributed.DataParallelTrainer(net, bp.MSELoss(), client=client, compile=True)
    with pytest.raises(ValueError, match="n_shards must be a positive int"):
        distributed.DataParallelTrainer(net, bp.MSELoss(), client=client, n_shards=0)
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        distributed.DataParallelTrainer(net, bp.MSELoss(), client=42)
    trainer = distributed.DataParallelTrainer(net, bp.MSELoss(), client=client, n_shards=3)
    with pytest.raises(ValueError, match="written with 2 shards.*n_shards=2"):
        trainer.load_state_dict({"replicas": {"n_shards": 2, "entropy": "1"}})
    with pytest.raises(ValueError, match="same number of rows"):
        trainer.fit(np.zeros((5, 4)), np.zeros((4, 2)), 1)


def test_inference_on_the_cluster(client, digits, f64_numpy):
    import dask.array as da

    _, X_val, _, _ = digits
    net = models.mlp(64, 10).eval()
    out = streaming.predict(net, da.from_array(X_val, chunks=100))
    np.testing.assert_allclose(out.compute(), bp.to_numpy(net.forward(X_val)), rtol=1e-12)


@pytest.mark.slow
def test_dask_ml_incremental_and_search_over_the_classifier(client, digits):
    """dask-ml's Incremental (partial_fit on each block) and a GridSearchCV over it, on the
    cluster."""
    pytest.importorskip("dask_ml", reason="dask-ml is not installed")
    import dask.array as da
    from dask_ml.model_selection import GridSearchCV
    from dask_ml.wrappers import Incremental

    from backprop.sklearn import NeuralNetClassifier

    X, X_val, y, y_val = digits
    X, y = da.from_array(X[:1000], chunks=200), da.from_array(y[:1000], chunks=200)
    net = NeuralNetClassifier(
        hidden_layer_sizes=(32,), activation="tanh", learning_rate=3e-2, random_state=0
    )
    model = Incremental(net, scoring="accuracy").fit(X, y, classes=np.arange(10))
    assert model.estimator_.n_iter_ == len(X.chunks[0])  # one partial_fit per block of the data
    assert model.score(da.from_array(X_val), da.from_array(y_val)) > 0.85
    search = GridSearchCV(
        Incremental(net, scoring="accuracy"), {"estimator__learning_rate": [1e-3, 3e-2]}, cv=2
    )
    search.fit(X, y, classes=np.arange(10))
    assert search.best_params_ == {"estimator__learning_rate": 3e-2}
    assert search.best_score_ > 0.8


# ---------------------------------------------------------------- rows read from storage


@pytest.fixture(scope="module")
def npy_digits(tmp_path_factory, digits):
    X, _, y, _ = digits
    folder = tmp_path_factory.mktemp("rows")
    np.save(folder / "X.npy", X[:700].astype(np.float64))
    np.save(folder / "y.npy", y[:700].astype(np.int64))
    return folder / "X.npy", folder / "y.npy"


def test_each_worker_reads_its_own_rows_from_storage(client, npy_digits, f64_numpy):
    """A path, a memory map, a dask array and a RowChunks give the same run for a seed; another
    seed reshuffles; the cost goes down."""
    import dask.array as da

    X_path, y_path = npy_digits
    X, y = np.load(X_path), np.load(y_path)
    start = models.mlp(64, 10, hidden=32)

    def run(X_data, y_data, seed=0):
        net = clone(start)
        client.wait_for_workers(2, timeout=60)  # a worker killed by an earlier test is back
        history = distributed.fit(
            net, bp.CELogSoftmax(), X_data, y_data, client=client, epochs=2, eps=0.1,
            optimizer="momentum", seed=seed, chunk_rows=100, batch_size=64, n_shards=2,
        )  # fmt: skip
        return net, history

    a, history = run(str(X_path), str(y_path))
    assert history[1] < history[0] < 2.4
    for X_data, y_data in [
        (da.from_array(X, chunks=300), da.from_array(y, chunks=300)),
        (streaming.RowChunks(X_path), streaming.RowChunks(y_path)),
    ]:
        b, _ = run(X_data, y_data)
        assert max_error(a, b) == 0.0
    c, _ = run(str(X_path), str(y_path), seed=1)
    assert max_error(a, c) > 1e-6


def test_stored_rows_are_checked_on_the_driver(client, npy_digits, tmp_path, f64_numpy):
    X_path, y_path = npy_digits
    net = models.mlp(64, 10, hidden=8)
    np.save(tmp_path / "short.npy", np.zeros(10, dtype=np.int64))
    with pytest.raises(ValueError, match="same number of rows"):
        distributed.fit(net, bp.CELogSoftmax(), X_path, tmp_path / "short.npy", client=client)
    np.save(tmp_path / "bad.npy", np.full(np.load(y_path).shape, 12, dtype=np.int64))
    with pytest.raises(ValueError, match="CELogSoftmax"):
        distributed.fit(net, bp.CELogSoftmax(), X_path, tmp_path / "bad.npy", client=client)
    with pytest.raises(FileNotFoundError):
        distributed.fit(net, bp.CELogSoftmax(), tmp_path / "none.npy", y_path, client=client)
    view = np.load(X_path, mmap_mode="r")[:100]
    with pytest.raises(ValueError, match="view of part of"):
        distributed.fit(net, bp.CELogSoftmax(), view, y_path, client=client)


# ---------------------------------------------------------------- what used to go wrong


def test_an_unaligned_shard_is_copied_once_not_at_every_step(f64_numpy):
    """A shard unpickled from a message buffer can sit at an odd address; numpy.take copies such
    an array whole at every call. The replica keeps an aligned copy."""
    X = np.random.default_rng(0).normal(size=(50, 4))
    raw = np.zeros(X.nbytes + 1, dtype=np.uint8)
    unaligned = np.frombuffer(raw.data, dtype=np.float64, count=X.size, offset=1).reshape(50, 4)
    unaligned[...] = X
    assert not unaligned.flags.aligned
    net = models.mlp(4, 2, hidden=3)
    rows = distributed._MemoryRows(unaligned, np.zeros(50, dtype=np.int64), 0, 1, [(0, 50)])
    replica = distributed._Replica(
        architecture(net), ("numpy", None, "float64"), bp.CELogSoftmax(),
        bp.optim.GradientDescent(0.1), rows, 0, 0, 10.0,
    )  # fmt: skip
    assert replica.rows.X.flags.aligned and np.array_equal(replica.rows.X, X)


def test_an_empty_list_of_workers_from_the_client_is_not_a_lost_cluster(
    client, digits, f64_numpy, monkeypatch
):
    """The client's scheduler_info() can list no workers on a healthy cluster: the trainer asks
    the scheduler itself."""
    X, _, y, _ = digits
    monkeypatch.setattr(client, "scheduler_info", lambda *a, **k: {"workers": {}})
    net = models.mlp(64, 10, hidden=8)
    history = distributed.fit(net, bp.CELogSoftmax(), X[:200], y[:200], client=client, epochs=1)
    assert len(history) == 1


def test_a_local_cluster_without_dashboard_takes_no_fixed_port():
    with distributed.local_cluster(1) as c:
        server = c.cluster.scheduler.http_server
        addresses = [s.getsockname() for s in server._sockets.values()]
        assert addresses and all(a[0] == "127.0.0.1" and a[1] != 8787 for a in addresses)


@pytest.mark.slow  # the cluster's shutdown without its scheduler takes half a minute
def test_a_lost_scheduler_is_reported_at_once(digits, f64_numpy):
    X, _, y, _ = digits
    with distributed.local_cluster(1) as c:
        net = models.mlp(64, 10, hidden=8)
        trainer = distributed.DataParallelTrainer(
            net, bp.CELogSoftmax(), client=c, worker_timeout=3
        )
        c.sync(c.cluster.scheduler.close)
        start = time.monotonic()
        with pytest.raises(distributed.WorkerLostError, match="scheduler"):
            trainer.fit(X[:100], y[:100], 1)
        assert time.monotonic() - start < 15


def test_the_documented_scripts_guard_their_clusters():
    """The workers of a local cluster are processes that import the script: a block that starts
    one must do it under ``if __name__ == "__main__":``."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).parents[1] / "docs" / "distributed.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    starting = [b for b in blocks if re.search(r"local_cluster\(|LocalCUDACluster\(|fit\(", b)]
    assert starting
    for block in starting:
        if "local_cluster(" in block or "LocalCUDACluster(" in block:
            assert 'if __name__ == "__main__":' in block, block
