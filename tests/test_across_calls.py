"""Nothing silently wrong across calls: resumed runs and warm starts, files that change or lie,
and the values and arguments each call is given."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

import backprop as bp
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
    arrays = {
        n[:-4]: np.lib.format.read_array(__import__("io").BytesIO(b)) for n, b in entries.items()
    }
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
