"""The training loop's parts, one at a time: each callback on a bare Trainer, the callback
protocol, and SGD driving other Trainer subclasses."""

import io

import numpy as np
import pytest

import backprop as bp
from backprop.optim.loop import (
    Callback,
    DivergenceGuard,
    EarlyStopping,
    EpochLog,
    ProgressBar,
    Trainer,
    Validation,
)


def _data(rng, n=96):
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    return X, y


def _net(seed=0):
    bp.manual_seed(seed)
    return bp.Sequentiel(bp.Linear(4, 8), bp.TanH(), bp.Linear(8, 2))


def _params(net):
    return {k: bp.to_numpy(v).copy() for k, v in net.state_dict().items()}


class Scripted(Callback):
    """Puts a scripted ``val_loss`` in the logs (what Validation would) and records the
    parameters after every epoch."""

    def __init__(self, values):
        self.values, self.seen = list(values), {}

    def on_epoch_end(self, trainer, epoch, logs):
        logs["val_loss"] = self.values[epoch - 1]
        self.seen[epoch] = _params(trainer.net)


def test_validation_records_the_cost_of_each_epoch(backend, rng):
    X, y = _data(rng)
    Xv, yv = _data(rng, 40)
    net = _net()
    loop = Trainer(net, bp.CELogSoftmax(), eps=0.1, seed=0)
    loop.add_callbacks([Validation(Xv, yv, metric=bp.accuracy)])
    history = loop.fit(X, y, 3)
    assert len(history.val_loss) == len(history.metric) == 3
    cost, score = bp.evaluate(net, bp.CELogSoftmax(), Xv, yv, metric=bp.accuracy)
    assert history.val_loss[-1] == pytest.approx(cost, rel=1e-6)
    assert history.metric[-1] == pytest.approx(score)


def test_validation_refuses_mismatched_data(backend, rng):
    X, y = _data(rng)
    loop = Trainer(_net(), bp.CELogSoftmax(), callbacks=[Validation(X[:10], y[:9])])
    with pytest.raises(ValueError, match="validation: X and Y must have the same number of rows"):
        loop.fit(X, y, 1)


def test_early_stopping_stops_and_restores_the_best_epoch(backend, rng):
    X, y = _data(rng)
    net = _net()
    script = Scripted([3.0, 2.0, 2.5, 2.6, 2.7, 2.8])
    loop = Trainer(net, bp.CELogSoftmax(), eps=0.1, seed=0)
    loop.add_callbacks([script, EarlyStopping(patience=2)])
    history = loop.fit(X, y, 6)
    assert len(history) == 4  # epochs 3 and 4 did not improve on epoch 2
    assert history.best_epoch == 2 and history.stopped_early
    for k, v in _params(net).items():
        np.testing.assert_array_equal(v, script.seen[2][k], err_msg=k)


def test_early_stopping_on_a_metric_keeps_the_highest(backend, rng):
    X, y = _data(rng)

    class Metric(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            logs["metric"] = [0.5, 0.9, 0.7][epoch - 1]

    loop = Trainer(_net(), bp.CELogSoftmax(), eps=0.1, seed=0)
    loop.add_callbacks([Metric(), EarlyStopping(monitor="metric", restore_best=False)])
    history = loop.fit(X, y, 3)
    assert history.best_epoch == 2 and not history.stopped_early and len(history) == 3


def test_early_stopping_without_validation_is_a_clear_error(backend, rng):
    X, y = _data(rng)
    loop = Trainer(_net(), bp.CELogSoftmax(), callbacks=[EarlyStopping(patience=1)])
    with pytest.raises(ValueError, match="no 'val_loss' in the epoch's logs; put a Validation"):
        loop.fit(X, y, 1)
    with pytest.raises(ValueError, match="EarlyStopping: monitor must be"):
        EarlyStopping(monitor="accuracy")


def test_epoch_log_prints_one_line_per_epoch(backend, rng):
    X, y = _data(rng)
    stream = io.StringIO()
    Trainer(_net(), bp.CELogSoftmax(), callbacks=[EpochLog(stream)]).fit(X, y, 3)
    lines = stream.getvalue().splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", f"{e}/3"] for e in (1, 2, 3)]
    assert all("cost" in line and line.endswith(" s)") for line in lines)


def test_progress_bar_counts_the_epochs(backend, rng, capsys):
    pytest.importorskip("tqdm")
    X, y = _data(rng)
    bar = ProgressBar()
    Trainer(_net(), bp.CELogSoftmax(), callbacks=[bar]).fit(X, y, 3)
    assert bar.bar.n == 3 and bar.bar.total == 3
    assert "3/3" in capsys.readouterr().err


def test_divergence_guard_restores_the_epoch_start(backend, rng):
    X, y = _data(rng)
    X[50, 0] = np.nan  # the batch holding row 50 (the second) gets a NaN cost
    net = _net()
    before = _params(net)
    loop = Trainer(net, bp.CELogSoftmax(), eps=0.1, batch_size=32, shuffle=False)
    assert isinstance(loop.callbacks[0], DivergenceGuard)
    with pytest.raises(bp.DivergenceError, match="at epoch 1, batch 2 of 3"):
        loop.fit(X, y, 2)
    for k, v in _params(net).items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_a_callback_can_stop_training_and_callbacks_run_in_order(backend, rng):
    X, y = _data(rng)
    calls = []

    class Recorder(Callback):
        def __init__(self, name):
            self.name = name

        def on_train_begin(self, trainer):
            calls.append((self.name, "begin"))

        def on_epoch_end(self, trainer, epoch, logs):
            calls.append((self.name, epoch))
            if self.name == "b" and epoch == 2:
                trainer.stop = True

        def on_train_end(self, trainer):
            calls.append((self.name, "end"))

    history = bp.SGD(
        _net(), bp.CELogSoftmax(), X, y, epochs=5, callbacks=[Recorder("a"), Recorder("b")]
    )
    assert len(history) == 2
    assert calls == [
        ("a", "begin"), ("b", "begin"), ("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", "end"),
        ("b", "end"),
    ]  # fmt: skip


def test_callbacks_must_be_callbacks(backend):
    with pytest.raises(TypeError, match="Trainer: callbacks must be Callback instances, got str"):
        Trainer(_net(), bp.CELogSoftmax(), callbacks=["EarlyStopping"])


def test_training_mode_is_restored_after_fit(backend, rng):
    X, y = _data(rng)
    net = _net()
    net.eval()
    Trainer(net, bp.CELogSoftmax()).fit(X, y, 1)
    assert not any(m.training for m in net.unique_modules())


# --------------------------------------------------------------------------
# SGD runs any Trainer subclass
# --------------------------------------------------------------------------


class Recording(Trainer):
    """A trainer that records what SGD asks of it."""

    made = []

    def __init__(self, *args, tag=None, **options):
        super().__init__(*args, **options)
        self.tag, self.closed, self.validations = tag, False, 0
        Recording.made.append(self)

    def validation_callback(self, X_val, Y_val, metric=None):
        self.validations += 1
        return super().validation_callback(X_val, Y_val, metric)

    def close(self):
        self.closed = True


def test_sgd_drives_a_trainer_subclass_with_its_options(backend, rng):
    X, y = _data(rng)
    Recording.made.clear()
    a, b = _net(), _net()
    history = bp.SGD(
        a, bp.CELogSoftmax(), X, y, epochs=2, eps=0.1, seed=3, validation=(X, y),
        trainer=Recording, tag="mine",
    )  # fmt: skip
    (loop,) = Recording.made
    assert loop.tag == "mine" and loop.closed and loop.validations == 1
    assert len(history.val_loss) == 2
    # the same parameters as the default loop: the subclass changes nothing else
    bp.SGD(b, bp.CELogSoftmax(), X, y, epochs=2, eps=0.1, seed=3, validation=(X, y))
    for k, v in _params(a).items():
        np.testing.assert_array_equal(v, _params(b)[k], err_msg=k)


def test_sgd_closes_the_trainer_when_training_fails(backend, rng):
    X, y = _data(rng)
    Recording.made.clear()
    with pytest.raises(ValueError, match="label 7 is out of range for 2 classes"):
        bp.SGD(_net(), bp.CELogSoftmax(), X, np.full(96, 7), trainer=Recording)
    assert Recording.made[0].closed


def test_sgd_checks_its_arguments_before_making_the_trainer(backend, rng):
    X, y = _data(rng)
    Recording.made.clear()
    with pytest.raises(ValueError, match="SGD: early stopping .patience. needs validation data"):
        bp.SGD(_net(), bp.CELogSoftmax(), X, y, patience=2, trainer=Recording)
    with pytest.raises(ValueError, match="SGD: validation must be a pair"):
        bp.SGD(_net(), bp.CELogSoftmax(), X, y, validation=X, trainer=Recording)
    assert Recording.made == []
    with pytest.raises(TypeError, match="SGD: trainer must be a Trainer subclass, got 'fast'"):
        bp.SGD(_net(), bp.CELogSoftmax(), X, y, trainer="fast")
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        bp.SGD(_net(), bp.CELogSoftmax(), X, y, epoch=3)  # a misspelt argument is not ignored


def test_sgd_with_the_streaming_trainer_is_streaming_fit(backend, rng, tmp_path):
    from backprop import streaming

    X, y = _data(rng)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    a, b = _net(), _net()
    options = {"epochs": 2, "eps": 0.1, "seed": 1, "batch_size": 16, "chunk_rows": 32}
    streaming.fit(a, bp.CELogSoftmax(), tmp_path / "X.npy", tmp_path / "y.npy", **options)
    bp.SGD(
        b, bp.CELogSoftmax(), tmp_path / "X.npy", tmp_path / "y.npy",
        trainer=streaming.StreamingTrainer, compile=False, **options,
    )  # fmt: skip
    for k, v in _params(a).items():
        np.testing.assert_array_equal(v, _params(b)[k], err_msg=k)
    with pytest.raises(ValueError, match="streaming.fit: monitor must be 'val_loss' or 'metric'"):
        streaming.fit(a, bp.CELogSoftmax(), X, y, monitor="acc")


def test_distributed_fit_checks_arguments_before_reaching_a_cluster(backend, rng):
    pytest.importorskip("distributed")
    from backprop import distributed

    X, y = _data(rng)
    # an address nothing listens on: the argument error comes first, with no connection tried
    with pytest.raises(ValueError, match="distributed.fit: resume=True needs checkpoint=PATH"):
        distributed.fit(_net(), bp.CELogSoftmax(), X, y, client="tcp://127.0.0.1:9", resume=True)


def test_a_restore_is_recorded_and_printed(backend, rng):
    """The network handed back is an earlier epoch's: the History and the log say which."""
    X, y = _data(rng)
    net = _net()
    script = Scripted([3.0, 2.0, 2.5])
    stream = io.StringIO()
    loop = Trainer(net, bp.CELogSoftmax(), eps=0.1, seed=0)
    loop.add_callbacks([script, EarlyStopping(), EpochLog(stream)])
    history = loop.fit(X, y, 3)
    assert history.best_epoch == 2 and history.restored_epoch == 2 and len(history) == 3
    for k, v in _params(net).items():
        np.testing.assert_array_equal(v, script.seen[2][k], err_msg=k)
    last = stream.getvalue().splitlines()[-1]
    assert last == (
        "restored the parameters of epoch 2, the best on the validation data (the last epoch was 3)"
    )
    assert history.as_dict()["restored_epoch"] == 2
    assert bp.History.from_dict(history.as_dict()).restored_epoch == 2


def test_no_restore_when_the_last_epoch_is_the_best(backend, rng):
    X, y = _data(rng)
    stream = io.StringIO()
    loop = Trainer(_net(), bp.CELogSoftmax(), eps=0.1, seed=0)
    loop.add_callbacks([Scripted([3.0, 2.0, 1.0]), EarlyStopping(), EpochLog(stream)])
    history = loop.fit(X, y, 3)
    assert history.best_epoch == 3 and history.restored_epoch is None
    assert "restored" not in stream.getvalue()


def test_sgd_verbose_reports_a_restore_on_a_metric(backend, rng, capsys):
    X, y = _data(rng)
    Xv, yv = _data(rng, 40)
    scores = iter([0.5, 0.9, 0.7])
    history = bp.SGD(
        _net(), bp.CELogSoftmax(), X, y, epochs=3, eps=0.1, verbose=True,
        validation=(Xv, yv), metric=lambda yhat, y: next(scores), monitor="metric",
    )  # fmt: skip
    assert history.restored_epoch == 2
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == (
        "restored the parameters of epoch 2 (validation metric 0.9000, "
        "against 0.7000 at the last epoch, 3)"
    )


def test_default_learning_rate_follows_the_optimizer(backend):
    net = _net()
    assert bp.Optim(net, bp.CELogSoftmax()).eps == 0.1
    assert bp.Optim(net, bp.CELogSoftmax(), optimizer="adam").eps == 1e-3
    assert Trainer(net, bp.CELogSoftmax(), "momentum").optim.eps == 0.1
    assert Trainer(net, bp.CELogSoftmax(), "adam").optim.eps == 1e-3
    assert bp.Optim(net, bp.CELogSoftmax(), optimizer=bp.Adam(lr=0.02)).eps == 0.02
    with pytest.raises(ValueError, match="eps and lr are the same learning rate"):
        bp.SGD(net, bp.CELogSoftmax(), np.zeros((4, 4)), np.zeros(4, int), eps=0.1, lr=0.2)


@pytest.mark.slow
def test_sgd_defaults_train_the_assignment_mlp(backend_name):
    """``SGD(net, loss, X, y)`` with nothing else: plain gradient descent, 10 epochs of 32 rows,
    learning rate 0.1; the digits MLP reaches 0.9 (0.944 on NumPy with seed 0)."""
    pytest.importorskip("sklearn")
    with bp.use_backend(backend_name):
        bp.manual_seed(0)
        X_train, X_test, y_train, y_test = bp.load_digits()
        net = bp.Sequentiel(bp.Linear(64, 100), bp.TanH(), bp.Linear(100, 10))
        history = bp.SGD(net, bp.CELogSoftmax(), X_train, y_train)
        assert len(history) == 10 and history[-1] < 0.3
        assert bp.accuracy(net.forward(X_test), y_test) >= 0.9


def test_backprop_max_epochs_caps_every_training(backend, rng, monkeypatch):
    """The documented cap for smoke runs: SGD(epochs=50) runs 2 epochs; a bad value is an error."""
    X, y = _data(rng)
    monkeypatch.setenv("BACKPROP_MAX_EPOCHS", "2")
    assert len(bp.SGD(_net(), bp.CELogSoftmax(), X, y, epochs=50, eps=0.1)) == 2
    assert len(bp.SGD(_net(), bp.CELogSoftmax(), X, y, epochs=1, eps=0.1)) == 1
    monkeypatch.setenv("BACKPROP_MAX_EPOCHS", "two")
    with pytest.raises(ValueError, match="BACKPROP_MAX_EPOCHS must be a positive integer"):
        bp.SGD(_net(), bp.CELogSoftmax(), X, y, epochs=5, eps=0.1)
    monkeypatch.delenv("BACKPROP_MAX_EPOCHS")
    assert len(bp.SGD(_net(), bp.CELogSoftmax(), X, y, epochs=3, eps=0.1)) == 3
