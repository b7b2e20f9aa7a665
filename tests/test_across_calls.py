"""Nothing silently wrong across calls: resumed runs and warm starts, files that change or lie,
and the values and arguments each call is given."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

import backprop as bp
import backprop.data
import backprop.streaming
from backprop.optim.checkpoint import load_checkpoint

# --------------------------------------------------------------------------
# Resume and warm start
# --------------------------------------------------------------------------


def _data(seed=0, n=60):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    return X, y


# validation on random labels: its cost rises soon, so early stopping ends the run
_NOISE = (
    np.random.default_rng(7).normal(size=(30, 6)),
    np.random.default_rng(8).integers(0, 3, 30),
)


def _net():
    return bp.Sequentiel(bp.Linear(6, 16), bp.TanH(), bp.Linear(16, 3))


def _params(net):
    return {k: bp.to_numpy(v).copy() for k, v in net.state_dict().items()}


def _fit(X, y, path=None, resume=False, epochs=40, callbacks=(), **options):
    options = {
        "batch_size": 16, "eps": 0.05, "optimizer": "momentum", "patience": 2,
        "validation": _NOISE, **options,
    }  # fmt: skip
    with bp.use_backend("numpy"):
        bp.manual_seed(1)
        net = _net()
        history = bp.SGD(
            net, bp.CELogSoftmax(), X, y, epochs=epochs, checkpoint=path, resume=resume,
            callbacks=list(callbacks), **options,
        )  # fmt: skip
    return net, history


def test_resume_of_an_early_stopped_run_trains_no_further(tmp_path):
    X, y = _data()
    path = tmp_path / "run.npz"
    net, history = _fit(X, y, path)
    assert history.stopped_early and len(history) < 40
    again, history2 = _fit(X, y, path, resume=True)
    assert list(history2) == list(history) and history2.stopped_early
    for k, v in _params(net).items():
        np.testing.assert_array_equal(_params(again)[k], v, err_msg=k)


class _KillAtEnd(bp.Callback):
    """Raises where a kill after the last checkpoint write, before the best weights are
    restored, would stop the run."""

    def on_train_end(self, trainer):
        raise KeyboardInterrupt


def test_a_kill_between_the_last_checkpoint_and_the_best_weights_resumes_bit_exact(tmp_path):
    X, y = _data()
    X[:20] += np.random.default_rng(3).normal(size=(20, 6)) * 3
    net, history = _fit(X, y)
    path = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        _fit(X, y, path, callbacks=[_KillAtEnd()])
    again, history2 = _fit(X, y, path, resume=True)
    assert list(history2) == list(history)
    for k, v in _params(net).items():
        np.testing.assert_array_equal(_params(again)[k], v, err_msg=k)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"optimizer": bp.optim.Momentum(0.05, momentum=0.5)}, "momentum"),
        ({"eps": 0.01}, "lr"),
        ({"batch_size": 8}, "batch_size"),
        ({"shuffle": False}, "shuffle"),
        ({"optimizer": bp.optim.Momentum(0.05, nesterov=True)}, "nesterov"),
    ],
)
def test_resume_with_other_settings_is_refused_naming_them(tmp_path, change, named):
    X, y = _data()
    path = tmp_path / "run.npz"
    _fit(X, y, path, epochs=2, patience=None)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=f"other settings.*{named}"):
        _fit(X, y, path, resume=True, epochs=4, patience=None, **change)
    assert path.read_bytes() == before


def test_resume_on_other_data_is_refused(tmp_path):
    X, y = _data()
    path = tmp_path / "run.npz"
    _fit(X, y, path, epochs=2, patience=None)
    X2, y2 = _data(seed=9)
    with pytest.raises(ValueError, match="other data"):
        _fit(X2, y2, path, resume=True, epochs=4, patience=None)
    with pytest.raises(ValueError, match="other data.*rows"):
        _fit(X[:50], y[:50], path, resume=True, epochs=4, patience=None)
    Xs = X.copy()
    Xs[[0, 1]] = Xs[[1, 0]]  # the same rows in another order: another run
    with pytest.raises(ValueError, match="other data"):
        _fit(Xs, y, path, resume=True, epochs=4, patience=None)
    _fit(X, y, path, resume=True, epochs=4, patience=None)  # the same data resumes


def test_a_streamed_resume_on_another_file_is_refused(tmp_path):
    X, y = _data()
    np.save(tmp_path / "X.npy", X.astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    X2, _ = _data(seed=4)
    np.save(tmp_path / "X2.npy", X2.astype(np.float32))
    path = tmp_path / "run.npz"

    def fit(x_file, epochs, chunk_rows=16):
        with bp.use_backend("numpy"):
            bp.manual_seed(1)
            return bp.streaming.fit(
                _net(), bp.CELogSoftmax(), str(tmp_path / x_file), str(tmp_path / "y.npy"),
                epochs=epochs, checkpoint=path, resume=True, chunk_rows=chunk_rows,
            )  # fmt: skip

    fit("X.npy", 2)
    with pytest.raises(ValueError, match="other data"):
        fit("X2.npy", 4)
    with pytest.raises(ValueError, match="other settings.*chunk_rows"):
        fit("X.npy", 4, chunk_rows=np.int64(8))
    assert len(fit("X.npy", 4)) == 4


def test_resume_without_the_validation_it_was_written_with_is_refused(tmp_path):
    X, y = _data()
    path = tmp_path / "run.npz"
    _fit(X, y, path, epochs=2, patience=None)
    with pytest.raises(ValueError, match="EarlyStopping"):
        _fit(X, y, path, resume=True, epochs=4, patience=None, validation=None)


def _rewrite(path, edit):
    """The checkpoint at ``path`` with its JSON record changed by ``edit``."""
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    arrays = {n[:-4]: np.lib.format.read_array(io.BytesIO(b)) for n, b in entries.items()}
    record = json.loads(arrays["__checkpoint__"].tobytes().decode())
    edit(record)
    arrays["__checkpoint__"] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def _trainer(X, y):
    bp.manual_seed(1)
    net = _net()
    trainer = bp.Trainer(net, bp.CELogSoftmax(), "adam", eps=0.01, batch_size=16, seed=0)
    return trainer


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: r["trainer"].__setitem__("epoch", -5),
        lambda r: r["trainer"].__setitem__("epoch", 7),
        lambda r: r["trainer"].__setitem__("epoch", True),
        lambda r: r["trainer"].pop("rng"),
        lambda r: r["trainer"].__setitem__("rng", {"bit_generator": "nonsense"}),
        lambda r: r["trainer"].__setitem__("library_rng", {"state": 3}),
        lambda r: r["trainer"].pop("history"),
        lambda r: r["trainer"]["callbacks"].append({"best": 1.0}),
        lambda r: r["trainer"].__setitem__("scheduler", [1, 2]),
        lambda r: r["optimizer"].__setitem__("steps", -1),
        lambda r: r["optimizer"].__setitem__("lr", "fast"),
        lambda r: r.pop("trainer"),
    ],
)
def test_a_damaged_checkpoint_changes_nothing(tmp_path, edit):
    X, y = _data()
    path = tmp_path / "run.npz"
    with bp.use_backend("numpy"):
        trainer = _trainer(X, y)
        trainer.add_callbacks([bp.optim.checkpoint.Checkpoint(path)])
        trainer.fit(X, y, 2)
        _rewrite(path, edit)
        fresh = _trainer(X, y)
        fresh.fit(X, y, 1)  # some state of its own: Adam moments, one epoch
        params, opt = _params(fresh.net), fresh.optimizer.state_dict(fresh.net)
        rng = bp.backends.random.generator_state(fresh.rng)
        library = bp.backends.random.generator_state()
        with pytest.raises(ValueError, match=str(path.name)):
            load_checkpoint(fresh, path)
        assert fresh.epoch == 1 and len(fresh.history) == 1
        for k, v in _params(fresh.net).items():
            np.testing.assert_array_equal(v, params[k])
        after = fresh.optimizer.state_dict(fresh.net)
        assert after.keys() == opt.keys() and after["steps"] == opt["steps"]
        for k in opt:
            np.testing.assert_array_equal(np.asarray(after[k]), np.asarray(opt[k]))
        assert bp.backends.random.generator_state(fresh.rng) == rng
        assert bp.backends.random.generator_state() == library


def test_an_optimizer_instance_and_another_eps_are_refused():
    X, y = _data()
    with bp.use_backend("numpy"):
        with pytest.raises(ValueError, match="eps=10.0.*two learning rates"):
            bp.SGD(_net(), bp.CELogSoftmax(), X, y, eps=10.0, optimizer=bp.optim.Adam(1e-2))
        with pytest.raises(ValueError, match="two learning rates"):
            bp.Trainer(_net(), bp.CELogSoftmax(), bp.optim.Adam(1e-2), eps=0.5)
        # the default eps, or the same rate, is no conflict: the instance's lr is used
        opt = bp.optim.Adam(1e-2)
        history = bp.SGD(_net(), bp.CELogSoftmax(), X, y, epochs=1, optimizer=opt)
        assert history.lr == [1e-2]
        bp.SGD(_net(), bp.CELogSoftmax(), X, y, epochs=1, eps=1e-2, optimizer=bp.optim.Adam(1e-2))


def test_a_divergence_leaves_no_nan_in_the_optimizer_state():
    X, y = _data()
    bad = X.copy()
    bad[5, 0] = np.nan
    with bp.use_backend("numpy"):
        bp.manual_seed(0)
        net = _net()
        opt = bp.optim.Momentum(0.01)
        bp.SGD(net, bp.CELogSoftmax(), X, y, epochs=1, optimizer=opt, batch_size=8)
        with pytest.raises(bp.DivergenceError):
            bp.SGD(net, bp.CELogSoftmax(), bad, y, epochs=1, optimizer=opt, batch_size=8)
        state = opt.state_dict(net)
        for k, v in state.items():
            if k not in ("steps", "lr"):
                assert np.isfinite(np.asarray(v)).all(), k
        # a retry on clean data trains
        history = bp.SGD(net, bp.CELogSoftmax(), X, y, epochs=2, optimizer=opt, batch_size=8)
        assert np.isfinite(history).all()


@pytest.mark.parametrize("method", ["warm_start", "partial_fit"])
def test_warm_start_follows_set_params(method):
    from backprop.sklearn import NeuralNetClassifier

    X, y = _data()
    model = NeuralNetClassifier(
        hidden_layer_sizes=(8,), epochs=2, random_state=0, warm_start=method == "warm_start",
    )  # fmt: skip

    def call():
        if method == "partial_fit":
            model.partial_fit(X, y, classes=[0, 1, 2])
        else:
            model.fit(X, y)

    call()
    adam = model.optimizer_
    model.set_params(learning_rate=0.05, weight_decay=0.01)
    call()
    assert model.optimizer_ is adam and adam.lr == 0.05 and adam.weight_decay == 0.01
    model.set_params(optimizer="momentum")
    call()
    assert type(model.optimizer_).__name__ == "Momentum" and model.optimizer_.lr == 0.05
    with pytest.raises(ValueError, match="optimizer"):
        model.set_params(optimizer="rmsprop")
        call()


# --------------------------------------------------------------------------
# Files that change or lie
# --------------------------------------------------------------------------


@pytest.fixture
def cli(capsys):
    """``backprop ...`` in this process: ``(exit code, stdout, stderr)``."""
    from backprop.cli import main

    def run(*args):
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _usps_text(n=20, d=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = [f"{i % 3} " + " ".join(f"{v:.3f}" for v in rng.normal(size=d)) for i in range(n)]
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    "reader",
    [
        lambda p: bp.data.read_usps(p),
        lambda p: bp.load(p),
        lambda p: bp.streaming.RowChunks(p),
        lambda p: bp.io.readers.read_file(p),
    ],
)
def test_a_fifo_or_a_device_is_refused_not_waited_on(tmp_path, reader):
    fifo = tmp_path / "data.fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="FIFO.*only regular files"):
        reader(fifo)
    link = tmp_path / "zero.npz"
    os.symlink("/dev/zero", link)
    with pytest.raises(ValueError, match="character device"):
        reader(link)


def test_the_cli_refuses_a_fifo_as_data(tmp_path):
    from conftest import run_cli

    fifo = tmp_path / "X.npy"
    os.mkfifo(fifo)
    done = run_cli("train", "--data", str(fifo), "--epochs", "1", "--quiet", timeout=120)
    assert done.returncode == 2 and "FIFO" in done.stderr


def test_a_gzip_bomb_is_refused_at_the_limit(tmp_path, monkeypatch):
    import gzip

    from backprop.io import readers

    path = tmp_path / "usps.gz"
    path.write_bytes(gzip.compress(b"1 0.5\n" * 400_000))  # 2.4 MB from a few kB
    monkeypatch.setattr(readers, "MAX_READ_BYTES", 1 << 20)
    monkeypatch.setattr(readers.read_file, "__defaults__", (1 << 20,))
    with pytest.raises(ValueError, match="once decompressed.*\\.npy"):
        bp.data.read_usps(path)
    path.write_bytes(b"1 0.5\n" * 400_000)
    with pytest.raises(ValueError, match="more than 1,048,576 bytes"):
        bp.data.read_usps(path)


def test_a_truncated_gzip_is_still_refused_with_the_chunked_reader(tmp_path):
    import gzip

    path = tmp_path / "usps.gz"
    whole = gzip.compress(_usps_text(2000).encode())
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="truncated gzip"):
        bp.data.read_usps(path)
    path.write_bytes(whole + gzip.compress(_usps_text(5, seed=1).encode()))
    X, y = bp.data.read_usps(path)
    assert X.shape == (2005, 4)


@pytest.mark.parametrize(
    "replace",
    [
        lambda X: X.astype(np.float64),  # float64 bytes read as float32: NaN
        lambda X: np.asfortranarray(X),  # the same shape in another order
        lambda X: X[:, :8].copy(),  # another shape
        lambda X: X + 1,  # the same header, new values written in place
    ],
)
def test_a_npy_replaced_between_epochs_is_refused(tmp_path, replace):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 16)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    xp, yp = tmp_path / "X.npy", tmp_path / "y.npy"
    np.save(xp, X)
    np.save(yp, y)

    class Replace(bp.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 1:
                new = tmp_path / "new.npy"
                np.save(new, replace(X))
                st = os.stat(xp)
                os.replace(new, xp)
                if os.stat(xp).st_size == st.st_size:  # same size: make the change visible
                    os.utime(xp, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    with bp.use_backend("numpy"):
        net = bp.Sequentiel(bp.Linear(16, 2))
        with pytest.raises(ValueError, match="changed since it was opened"):
            bp.streaming.fit(
                net, bp.CELogSoftmax(), str(xp), str(yp), epochs=3, callbacks=[Replace()]
            )


@pytest.mark.parametrize("order", [">f4", ">f8", "<f4"])
def test_a_big_endian_npy_trains(tmp_path, order, backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6)).astype(order)
    y = (X[:, 0] > 0).astype(">i8")
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    net = bp.Sequentiel(bp.Linear(6, 2))
    history = bp.streaming.fit(
        net, bp.CELogSoftmax(), str(tmp_path / "X.npy"), str(tmp_path / "y.npy"), epochs=2
    )
    assert np.isfinite(history).all()
    chunk = bp.streaming.RowChunks(str(tmp_path / "X.npy")).read(0)
    np.testing.assert_array_equal(chunk, X.astype(X.dtype.newbyteorder("=")))


def test_a_save_path_of_250_characters_works(tmp_path):
    name = "m" * 246 + ".npz"  # 250 characters: legal on every usual file system
    with bp.use_backend("numpy"):
        net = bp.Sequentiel(bp.Linear(3, 2))
        bp.save(net, tmp_path / name)
        assert bp.load(tmp_path / name).n_parameters() == net.n_parameters()
        bp.save(net, tmp_path / name)  # over an existing file too
    assert sorted(os.listdir(tmp_path)) == [name]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--save", "{d}/out", "--plot", "{d}/out"), "--save .* and --plot .* the same file"),
        (("--checkpoint", "{d}/c.npz", "--save", "{d}/c.npz"), "the same file"),
        (("--checkpoint", "{d}/c.png", "--plot", "{d}/./c.png"), "the same file"),
    ],
)
def test_the_cli_refuses_one_file_for_two_outputs(tmp_path, cli, options, message):
    args = [a.format(d=tmp_path) for a in options]
    code, _, err = cli("train", "--epochs", "1", "--quiet", *args)
    assert code == 2
    assert __import__("re").search(message, err), err
    assert not os.listdir(tmp_path)


def test_info_on_a_lying_model_file(tmp_path, cli):
    with bp.use_backend("numpy"):
        net = bp.Sequentiel(bp.Linear(4, 2))
        path = tmp_path / "m.npz"
        bp.save(
            net,
            path,
            metadata={"input_shape": [100000, 100000, 1000], "note": "\x1b[2J\x1b]0;owned\x07"},
        )
    code, out, err = cli("info", str(path))
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J" in out


# --------------------------------------------------------------------------
# Values and arguments
# --------------------------------------------------------------------------


def test_nan_in_the_validation_data_is_refused_not_an_early_stop():
    X, y = _data()
    Xv = X[:20].copy()
    Xv[3, 2] = np.nan
    with bp.use_backend("numpy"), pytest.raises(ValueError, match="X_val holds NaN"):
        bp.SGD(_net(), bp.CELogSoftmax(), X, y, epochs=5, validation=(Xv, y[:20]), patience=2)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_a_validation_cost_that_overflows_is_refused():
    X, y = _data()
    Y = y[:, None].astype(np.float64)
    with bp.use_backend("numpy"):
        net = bp.Linear(6, 1)
        with pytest.raises(ValueError, match="validation cost is inf after epoch 1"):
            bp.SGD(net, bp.MSELoss(), X, Y, epochs=2, validation=(X * 1e20, Y), patience=1)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "8"])
def test_batch_size_is_checked_everywhere(batch_size):
    X, y = _data()
    with bp.use_backend("numpy"):
        net = _net()
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            bp.evaluate(net, bp.CELogSoftmax(), X, y, batch_size=batch_size)
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            bp.Validation(X, y, batch_size=batch_size)
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            bp.streaming.predict(net, X, batch_size=batch_size)
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            bp.streaming.evaluate(net, bp.CELogSoftmax(), X, y, batch_size=batch_size)


def test_numpy_scalars_are_numbers_for_every_hyperparameter():
    X, y = _data()
    with bp.use_backend("numpy"):
        opt = bp.optim.Adam(np.float32(1e-2), betas=(np.float32(0.9), np.float64(0.99)))
        assert isinstance(opt.lr, float) and opt.betas == (0.8999999761581421, 0.99)
        bp.optim.Momentum(np.float16(0.1), momentum=np.float32(0.5))
        history = bp.SGD(
            _net(), bp.CELogSoftmax(), X, y, eps=np.float32(0.05), epochs=np.int64(2),
            batch_size=np.int32(16), patience=np.int8(3), validation=(X, y),
        )  # fmt: skip
        assert len(history) == 2
        with pytest.raises(ValueError, match="Adam: lr must be a positive number"):
            bp.optim.Adam(np.float32("nan"))
        with pytest.raises(ValueError, match=r"betas\[0\] must lie in \[0, 1\)"):
            bp.optim.Adam(betas=(np.float32(1.0), 0.9))
        with pytest.raises(ValueError, match="eps"):
            bp.SGD(_net(), bp.CELogSoftmax(), X, y, eps=np.bool_(True))


def test_estimators_take_numpy_integers():
    from backprop.sklearn import AutoencoderTransformer, NeuralNetClassifier

    X, y = _data()
    for sizes in (np.arange(4, 12, 4), np.int64(8), (np.int32(8),)):
        model = NeuralNetClassifier(
            hidden_layer_sizes=sizes, epochs=np.int64(1), batch_size=np.int64(16), random_state=0
        ).fit(X, y)
        assert model.n_iter_ == 1
    AutoencoderTransformer(hidden_layer_sizes=(np.int64(4),), n_components=np.int64(2),
                           epochs=np.int16(1)).fit(X)  # fmt: skip
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        NeuralNetClassifier(hidden_layer_sizes=(8, 0), epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="epochs"):
        NeuralNetClassifier(epochs=np.float64(2.0)).fit(X, y)


def test_worker_timeout_is_checked_before_a_cluster():
    pytest.importorskip("distributed")
    from backprop.distributed import DataParallelTrainer

    with bp.use_backend("numpy"):
        for bad in (-5, 0, float("nan"), "60"):
            with pytest.raises(ValueError, match="worker_timeout must be a positive number"):
                DataParallelTrainer(_net(), bp.CELogSoftmax(), client=object(), worker_timeout=bad)


def test_labels_are_counted_in_integers(backend):
    # 2**24 + 1 rows of float32 ones sum to 2**24: the label check must not count in floats
    if backend.dtype_name != "float32":
        pytest.skip("float64 counts these rows exactly")
    n = 2**24 + 3
    xp = backend.xp
    y = xp.zeros((n,), dtype=xp.int32)
    yhat = xp.zeros((n, 2), dtype=backend.dtype)
    cost = bp.CELogSoftmax().forward(y, yhat)
    assert cost.shape == (n,)
    y = xp.concat([y[:-1], xp.asarray([2], dtype=xp.int32)])
    with pytest.raises(ValueError, match="label 2 is out of range"):
        bp.CELogSoftmax().forward(y, yhat)


def test_a_nan_score_costs_nan(backend):
    xp = backend.xp
    logp = bp.asarray(np.log(np.array([[0.5, 0.5, 1e-9], [0.2, 0.8, 1e-9]])))
    logp = xp.concat([logp[:1, ...], xp.asarray([[float("nan"), -0.2, -5.0]], dtype=logp.dtype)])
    y = xp.asarray([0, 1])
    unchecked = bp.CrossEntropyLoss()
    unchecked.check_inputs = False  # a NaN row is not a log-probability row
    for loss in (unchecked, bp.CrossEntropyLoss(), bp.CELogSoftmax()):
        cost = bp.to_numpy(loss.forward(y, logp))
        assert np.isfinite(cost[0]) and np.isnan(cost[1]), (loss, cost)


@pytest.mark.parametrize("row", [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.5, 0.2, 0.2]])
def test_soft_target_rows_must_sum_to_one(backend, row):
    Y = bp.asarray(np.array([[0.0, 1.0, 0.0], row]))
    scores = bp.asarray(np.zeros((2, 3)))
    for loss in (bp.CELogSoftmax(), bp.CrossEntropyLoss()):
        with pytest.raises(ValueError, match="row 1 sums to"):
            loss.forward(Y, scores - float(np.log(3)))
    bp.CELogSoftmax().forward(bp.asarray(np.array([[0.2, 0.3, 0.5], [0, 0, 1.0]])), scores)


@pytest.mark.parametrize(
    "layer", [lambda: bp.Conv1D(3, 2, 4), lambda: bp.Conv2D(3, 2, 4), lambda: bp.Conv1D(3, 1, 2)]
)
def test_an_empty_batch_through_a_convolution(backend, layer):
    m = layer()
    shape = (0, 9, 2) if isinstance(m, bp.Conv1D) else (0, 6, 6, 2)
    shape = shape[:-1] + (m.chan_in,)
    x = bp.asarray(np.zeros(shape))
    y = m.forward(x)
    assert y.shape[0] == 0
    assert tuple(m.backward_delta(x, y).shape) == shape
    m.zero_grad()
    m.backward_update_gradient(x, y)
    assert float(backend.xp.sum(backend.xp.abs(m._gradient["weight"]))) == 0.0


@pytest.mark.parametrize("make", [lambda: bp.Flatten(), lambda: bp.Reshape((6,)),
                                  lambda: bp.Transpose((1, 0))])  # fmt: skip
def test_shape_layers_refuse_a_delta_from_another_library(make):
    torch = pytest.importorskip("torch")
    with bp.use_backend("numpy"):
        m = make()
        x = np.ones((2, 2, 3), dtype=np.float32)
        y = m.forward(x)
        with pytest.raises(TypeError, match="delta is a torch array"):
            m.backward_delta(x, torch.ones(tuple(y.shape)))


def test_unknown_dask_sizes_are_named():
    da = pytest.importorskip("dask.array")
    X = da.from_array(np.ones((20, 3)), chunks=5)
    X = X[X[:, 0] > 0]  # row count unknown until computed
    with pytest.raises(ValueError, match="unknown shape.*compute_chunk_sizes"):
        bp.streaming.RowChunks(X)


def test_streaming_predict_on_dask_uses_the_parameters_of_the_call():
    da = pytest.importorskip("dask.array")
    X = np.random.default_rng(0).normal(size=(12, 3))
    with bp.use_backend("numpy"):
        net = bp.Sequentiel(bp.Linear(3, 2))
        expected = bp.to_numpy(net.forward(X)).copy()
        lazy = bp.streaming.predict(net, da.from_array(X, chunks=4))
        for p in net.parameters():
            p[...] = 0.0 if False else p * 0 + 7.0  # training moves on
        np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-6)


def test_torch_inputs_that_require_grad_leave_no_graph_in_the_parameters():
    torch = pytest.importorskip("torch")
    with bp.use_backend("torch"):
        bp.manual_seed(0)
        net = bp.Sequentiel(bp.Linear(4, 3), bp.TanH(), bp.Linear(3, 2))
        X = torch.randn(16, 4, requires_grad=True)
        y = torch.randint(0, 2, (16,))
        bp.SGD(net, bp.CELogSoftmax(), X, y, epochs=2, optimizer="adam")
        opt = bp.Optim(net, bp.CELogSoftmax(), 0.1)
        opt.step(X, y)
        for p in net.parameters():
            assert p.grad_fn is None and not p.requires_grad


def test_float64_asked_of_a_float32_jax_backend_is_refused():
    pytest.importorskip("jax")
    import subprocess
    import sys

    code = (
        "import numpy as np, backprop as bp\n"
        "with bp.use_backend('jax'):\n"
        "    try:\n"
        "        x = bp.asarray(np.ones(3), dtype='float64')\n"
        "        print('got', x.dtype)\n"
        "    except ValueError as e:\n"
        "        print('refused', e)\n"
        "    from backprop.data import one_hot\n"
        "    try:\n"
        "        print('got', one_hot(bp.asarray(np.arange(3)), 3, dtype='float64').dtype)\n"
        "    except ValueError as e:\n"
        "        print('refused', e)\n"
    )
    env = {**os.environ, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done
    assert all(line.startswith("refused") and "jax_enable_x64" in line for line in lines), done
