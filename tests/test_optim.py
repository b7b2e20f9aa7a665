import numpy as np
import pytest

import backprop as bp
from conftest import assert_close


def test_step_equals_manual_update(f64, rng):
    net = bp.Sequentiel(bp.Linear(3, 4), bp.TanH(), bp.Linear(4, 2))
    ref = bp.Sequentiel(bp.Linear(3, 4), bp.TanH(), bp.Linear(4, 2))
    for a, b in zip(ref.modules(), net.modules()):
        a._parameters = {k: bp.asarray(bp.to_numpy(v).copy()) for k, v in b._parameters.items()}
    x, y = bp.asarray(rng.normal(size=(6, 3))), bp.asarray(rng.integers(0, 2, size=6))
    loss = bp.CELogSoftmax()
    value = bp.Optim(net, loss, eps=0.1).step(x, y)
    assert value.shape == ()
    yhat = ref.forward(x)
    assert_close(value, float(bp.to_numpy(loss(y, yhat)).mean()), f64)
    ref.backward(x, loss.backward(y, yhat))
    ref.update_parameters(0.1)
    for p, q in zip(net.parameters(), ref.parameters()):
        assert_close(p, bp.to_numpy(q), f64)


def test_optim_validates():
    net = bp.Sequentiel(bp.Linear(2, 2))
    with pytest.raises(TypeError, match="net must be a Module"):
        bp.Optim("net", bp.MSELoss())
    with pytest.raises(TypeError, match="loss must be a Loss"):
        bp.Optim(net, bp.TanH())
    with pytest.raises(ValueError, match=r"eps \(the learning rate\) must be a positive number"):
        bp.Optim(net, bp.MSELoss(), eps=0)


def test_sgd_returns_float_losses_that_decrease(backend, rng):
    X = rng.normal(size=(200, 3))
    Y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    net = bp.Sequentiel(bp.Linear(3, 1))
    losses = bp.SGD(net, bp.MSELoss(), X, Y, batch_size=20, epochs=30, eps=0.05, seed=0)
    assert len(losses) == 30 and all(isinstance(v, float) for v in losses)
    assert losses[-1] < 1e-3 < losses[0]
    assert_close(net[0]._parameters["weight"], [[1.0], [-2.0], [0.5]], backend, atol=0.02, rtol=0)


def test_sgd_is_reproducible_across_backends(backend_name, rng):
    X, Y = rng.normal(size=(50, 3)), rng.integers(0, 3, size=50)

    def run(name):
        with bp.use_backend(name, dtype="float64"):
            bp.manual_seed(1)
            net = bp.Sequentiel(bp.Linear(3, 5), bp.TanH(), bp.Linear(5, 3))
            return bp.SGD(net, bp.CELogSoftmax(), X, Y, batch_size=7, epochs=3, eps=0.1, seed=2)

    np.testing.assert_allclose(run(backend_name), run("numpy"), rtol=1e-10)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_sgd_divergence_names_epoch_and_batch(backend, rng):
    X = rng.normal(size=(40, 2)) * 1e3
    Y = rng.normal(size=(40, 1)) * 1e3
    net = bp.Sequentiel(bp.Linear(2, 1))
    with pytest.raises(bp.DivergenceError, match=r"at epoch \d+, batch \d+ of 4"):
        bp.SGD(net, bp.MSELoss(), X, Y, batch_size=10, epochs=50, eps=10.0, seed=0)


def test_sgd_argument_errors(backend):
    net = bp.Sequentiel(bp.Linear(2, 1))
    X, Y = np.zeros((4, 2)), np.zeros((3, 1))
    with pytest.raises(ValueError, match="same number of rows"):
        bp.SGD(net, bp.MSELoss(), X, Y)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        bp.SGD(net, bp.MSELoss(), X, np.zeros((4, 1)), batch_size=0)


def test_sgd_verbose_prints(backend, capsys, rng):
    net = bp.Sequentiel(bp.Linear(2, 1))
    bp.SGD(
        net, bp.MSELoss(), rng.normal(size=(8, 2)), rng.normal(size=(8, 1)), epochs=2, verbose=True
    )
    assert capsys.readouterr().out.count("epoch") == 2


def test_batch_bounds_balanced():
    from backprop.optim import batch_bounds

    bounds = batch_bounds(1347, 32)
    sizes = [b - a for a, b in bounds]
    assert len(bounds) == 43 and set(sizes) == {31, 32} and sum(sizes) == 1347
    assert bounds[0][0] == 0 and bounds[-1][1] == 1347
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert batch_bounds(64, 32) == [(0, 32), (32, 64)]
    assert batch_bounds(5, 32) == [(0, 5)]


def test_history_with_validation_and_metric(backend, rng):
    X, y = rng.normal(size=(80, 4)), rng.integers(0, 3, size=80)
    net = bp.Sequentiel(bp.Linear(4, 8), bp.TanH(), bp.Linear(8, 3))
    hist = bp.SGD(
        net,
        bp.CELogSoftmax(),
        X[:60],
        y[:60],
        epochs=3,
        eps=0.1,
        seed=0,
        validation=(X[60:], y[60:]),
        metric=bp.accuracy,
    )
    assert isinstance(hist, list) and len(hist) == 3
    assert len(hist.val_loss) == len(hist.metric) == len(hist.time) == 3
    assert all(0 <= a <= 1 for a in hist.metric) and hist.best_epoch in (1, 2, 3)
    assert set(hist.as_dict()) >= {"train_loss", "val_loss", "metric", "time", "lr", "best_epoch"}


def test_early_stopping_restores_best_parameters(backend, rng):
    # a network that overfits: tiny noisy training set, large learning rate
    X, y = rng.normal(size=(40, 10)), rng.integers(0, 2, size=40)
    Xv, yv = rng.normal(size=(200, 10)), rng.integers(0, 2, size=200)
    bp.manual_seed(0)
    net = bp.Sequentiel(bp.Linear(10, 64), bp.TanH(), bp.Linear(64, 2))
    hist = bp.SGD(
        net,
        bp.CELogSoftmax(),
        X,
        y,
        batch_size=8,
        epochs=200,
        eps=0.5,
        seed=0,
        validation=(Xv, yv),
        patience=5,
    )
    assert hist.stopped_early and len(hist) < 200
    assert hist.best_epoch == len(hist) - 5
    best = min(hist.val_loss)
    assert hist.val_loss[hist.best_epoch - 1] == best
    now, _ = bp.evaluate(net, bp.CELogSoftmax(), Xv, yv)
    assert now == pytest.approx(best, rel=1e-5)


def test_early_stopping_needs_validation(backend):
    net = bp.Sequentiel(bp.Linear(2, 1))
    with pytest.raises(ValueError, match="needs validation data"):
        bp.SGD(net, bp.MSELoss(), np.zeros((4, 2)), np.zeros((4, 1)), patience=3)
    with pytest.raises(ValueError, match="monitor='metric' needs a metric"):
        bp.SGD(
            net,
            bp.MSELoss(),
            np.zeros((4, 2)),
            np.zeros((4, 1)),
            validation=(np.zeros((2, 2)), np.zeros((2, 1))),
            monitor="metric",
        )


def test_evaluate_restores_training_mode(backend, rng):
    net = bp.Sequentiel(bp.Linear(3, 3), bp.Dropout(0.5))
    cost, acc = bp.evaluate(
        net,
        bp.CELogSoftmax(),
        rng.normal(size=(10, 3)),
        rng.integers(0, 3, size=10),
        metric=bp.accuracy,
    )
    assert net[1].training and 0 <= acc <= 1 and cost > 0


def test_sgd_checks_labels_once_up_front(backend, rng):
    X = rng.normal(size=(20, 3))
    y = rng.integers(0, 3, size=20)
    loss = bp.CELogSoftmax()
    net = bp.Sequentiel(bp.Linear(3, 3))
    calls = []
    original = type(loss)._check_values

    def spy(self):
        calls.append(original(self))
        return calls[-1]

    type(loss)._check_values = spy
    try:
        bp.SGD(net, loss, X, y, batch_size=10, epochs=3, eps=0.1, seed=0)
    finally:
        type(loss)._check_values = original
    # one check of every label, up front; none in the steps (6 eager steps; a compiled step
    # runs the Python code once, when it is traced)
    assert calls[0] is True and not any(calls[1:])
    assert len(calls) == (2 if backend.compiles else 7)
    bad = y.copy()
    bad[13] = 7
    before = bp.to_numpy(net[0].get_parameter("weight")).copy()
    with pytest.raises(ValueError, match="label 7 is out of range for 3 classes"):
        bp.SGD(net, loss, X, bad, batch_size=10, epochs=3, eps=0.1, seed=0)
    np.testing.assert_array_equal(
        bp.to_numpy(net[0].get_parameter("weight")), before
    )  # refused before any step
