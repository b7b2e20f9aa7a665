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
        lambda p: bp.backends.readers.read_file(p),
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

    from backprop.backends import readers

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
