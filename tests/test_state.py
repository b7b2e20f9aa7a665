"""The state rule (docs/architecture.md): a backward result is never a mix of values.

Each test here failed before the rule was written down: gradients mixed old
and new input values, a backward silently re-ran forward (new dropout mask),
networks shared the caller's arrays, a shared module was updated twice, SGD
forgot the caller's eval mode, and optimizer state did not update on JAX.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import backprop as bp
from conftest import assert_close


def _mlp(seed=0):
    bp.manual_seed(seed)
    return bp.Sequentiel(bp.Linear(5, 6), bp.TanH(), bp.Linear(6, 3), bp.Sigmoid())


def _grads(net):
    return {
        name: bp.to_numpy(m.get_gradient(key)).copy()
        for name, (m, key) in zip([n for n, _ in net.named_parameters()], net.parameter_slots())
    }


def _mutable(b) -> bool:
    return b.mutable


# ------------------------------------------------------------ 1. mixed state


def _assert_immutable(b):
    """On a library whose arrays cannot change in place, the rule holds by construction."""
    with pytest.raises((TypeError, ValueError)):
        x = bp.asarray(np.zeros(3))
        x[...] = 1.0


def test_sequentiel_backward_uses_the_forward_values_after_the_input_changed(f64, rng):
    if not _mutable(f64):
        return _assert_immutable(f64)
    a, b, d = rng.normal(size=(4, 5)), rng.normal(size=(4, 5)), rng.normal(size=(4, 3))
    net, ref = _mlp(), _mlp()
    x = bp.asarray(a.copy())
    net.forward(x)
    x[...] = bp.asarray(b)  # the caller changes its array between the passes
    dx = net.backward(x, bp.asarray(d))
    xr = bp.asarray(a)
    ref.forward(xr)
    dx_ref = ref.backward(xr, bp.asarray(d))
    assert_close(dx, bp.to_numpy(dx_ref), f64)
    for name, g in _grads(ref).items():
        assert_close(_grads(net)[name], g, f64)


def test_returned_output_changed_in_place_does_not_change_the_gradient(f64, rng):
    if not _mutable(f64):
        return _assert_immutable(f64)
    a, d = rng.normal(size=(4, 5)), rng.normal(size=(4, 3))
    net, ref = _mlp(), _mlp()
    x = bp.asarray(a)
    y = net.forward(x)
    y[...] = 0  # Sigmoid keeps its output for backward inside the container: ours, not the caller's
    dx = net.backward(x, bp.asarray(d))
    xr = bp.asarray(a)
    ref.forward(xr)
    assert_close(dx, bp.to_numpy(ref.backward(xr, bp.asarray(d))), f64)


@pytest.mark.parametrize(
    "make, shape",
    [
        (bp.TanH, (4, 5)),
        (bp.Sigmoid, (4, 5)),
        (bp.Softmax, (4, 5)),
        (bp.LogSoftmax, (4, 5)),
        (lambda: bp.MaxPool1D(2), (3, 8, 2)),
        (lambda: bp.MaxPool2D(2), (2, 4, 6, 2)),
        (lambda: bp.Conv1D(3, 2, 4), (3, 8, 2)),
        (lambda: bp.Conv2D(3, 2, 4), (2, 5, 6, 2)),
    ],
)
def test_standalone_module_backward_uses_the_values_it_is_given(f64, rng, make, shape):
    a, b = rng.normal(size=shape), rng.normal(size=shape)
    m = make()
    x = bp.asarray(a)
    y = m.forward(x)
    d = bp.asarray(rng.normal(size=tuple(y.shape)))
    if _mutable(f64):
        x[...] = bp.asarray(b)
    else:
        x = bp.asarray(b)
    m.zero_grad()
    got = m.backward(x, d)
    fresh = make()
    if m.n_parameters():
        fresh.load_state_dict(m.state_dict())
    xb = bp.asarray(b)
    fresh.forward(xb)
    fresh.zero_grad()
    assert_close(got, bp.to_numpy(fresh.backward(xb, d)), f64)
    for (_, g1), (_, g2) in zip(sorted(_grads(m).items()), sorted(_grads(fresh).items())):
        assert_close(g1, g2, f64)


# ------------------------------------------------- 2. no silent re-forward


def test_backward_with_an_equal_copy_uses_the_forwards_values_and_mask(backend, rng):
    net = bp.Sequentiel(bp.Linear(5, 6), bp.Dropout(0.5, rng=0), bp.Linear(6, 3))
    a = rng.normal(size=(8, 5))
    X = bp.asarray(a)
    x = X[:4, :]
    net.forward(x)
    d = bp.asarray(rng.normal(size=(4, 3)))
    net.zero_grad()
    by_copy = bp.to_numpy(net.backward(X[:4, :], d))  # a fresh slice of the same rows
    grads = [bp.to_numpy(g).copy() for g in (m.get_gradient(k) for m, k in net.parameter_slots())]
    net.zero_grad()
    by_object = bp.to_numpy(net.backward(x, d))  # the very object: the same mask, the same result
    np.testing.assert_array_equal(by_copy, by_object)
    for g, (m, k) in zip(grads, net.parameter_slots()):
        np.testing.assert_array_equal(g, bp.to_numpy(m.get_gradient(k)))
    # other values are refused, never recomputed with a new mask
    with pytest.raises(ValueError, match="input of the last forward pass .* same shape, dtype and"):
        net.backward(X[4:, :], d)
    with pytest.raises(ValueError, match="input of the last forward"):
        net.backward(X[:4, :1], bp.asarray(rng.normal(size=(4, 3))))


def test_backward_before_any_forward_is_an_error(backend):
    net = bp.Sequentiel(bp.Linear(2, 2))
    with pytest.raises(ValueError, match="call forward"):
        net.backward_delta(bp.asarray(np.ones((1, 2))), bp.asarray(np.ones((1, 2))))


# -------------------------------------------- 3. no arrays shared with callers


def test_load_state_dict_never_shares_the_callers_arrays(backend, rng):
    state = _mlp().state_dict()
    snapshot = {k: bp.to_numpy(v).copy() for k, v in state.items()}
    one, two = _mlp(1), _mlp(2)
    one.load_state_dict(state)
    two.load_state_dict(state)
    X, Y = rng.normal(size=(16, 5)), rng.random(size=(16, 3))
    bp.SGD(one, bp.MSELoss(), X, Y, batch_size=8, epochs=2, eps=0.5, seed=0)
    for k, v in two.state_dict().items():
        np.testing.assert_array_equal(bp.to_numpy(v), snapshot[k])  # the other network did not move
    for k, v in state.items():
        np.testing.assert_array_equal(bp.to_numpy(v), snapshot[k])  # nor did the caller's dict


def test_state_dict_is_a_copy(backend, rng):
    net = _mlp()
    saved = net.state_dict()
    before = {k: bp.to_numpy(v).copy() for k, v in saved.items()}
    bp.SGD(
        net,
        bp.MSELoss(),
        rng.normal(size=(8, 5)),
        rng.random(size=(8, 3)),
        epochs=1,
        eps=0.5,
        seed=0,
    )
    for k, v in saved.items():
        np.testing.assert_array_equal(bp.to_numpy(v), before[k])


def test_torch_state_into_a_numpy_network_is_copied():
    torch = pytest.importorskip("torch")
    with bp.use_backend("numpy", dtype="float32"):
        net = bp.Sequentiel(bp.Linear(3, 2))
    state = {k: torch.from_numpy(bp.to_numpy(v).copy()) for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    w = net[0].get_parameter("weight")
    w += 1.0  # the network's array, written in place
    assert not np.allclose(state["0.weight"].numpy(), bp.to_numpy(w))


# ------------------------------------------ 4. no intermediates across a load


def test_backward_after_load_state_dict_needs_a_new_forward(backend, rng):
    net = _mlp()
    x = bp.asarray(rng.normal(size=(4, 5)))
    net.forward(x)
    net.load_state_dict(_mlp(7).state_dict())
    with pytest.raises(ValueError, match="call forward"):
        net.backward(x, bp.asarray(rng.normal(size=(4, 3))))


def test_backward_after_an_update_needs_a_new_forward(backend, rng):
    net = _mlp()
    x = bp.asarray(rng.normal(size=(4, 5)))
    net.forward(x)
    net.update_parameters(0.1)
    with pytest.raises(ValueError, match="parameters changed"):
        net.backward(x, bp.asarray(rng.normal(size=(4, 3))))


# --------------------------------------------- 5. a module used twice is one


def test_shared_module_counted_updated_and_differentiated_once(f64, rng):
    lin = bp.Linear(3, 3)
    net = bp.Sequentiel(lin, bp.TanH(), lin)
    assert net.n_parameters() == 12
    assert len(net.parameters()) == 2 and len(list(net.parameter_slots())) == 2
    assert list(net.state_dict()) == ["0.weight", "0.bias"]
    x = bp.asarray(rng.normal(size=(5, 3)))
    assert bp.gradcheck(net, x)  # the gradient sums both uses
    net.zero_grad()
    net.forward(x)
    net.backward(x, bp.asarray(rng.normal(size=(5, 3))))
    w, g = (
        bp.to_numpy(lin.get_parameter("weight")).copy(),
        bp.to_numpy(lin.get_gradient("weight")).copy(),
    )
    net.update_parameters(0.1)
    assert_close(lin.get_parameter("weight"), w - 0.1 * g, f64)  # once, not twice


def test_shared_module_with_momentum_is_stepped_once(f64, rng):
    lin = bp.Linear(3, 3)
    net = bp.Sequentiel(lin, bp.TanH(), lin)
    opt = bp.Momentum(0.1, 0.9)
    x = bp.asarray(rng.normal(size=(5, 3)))
    net.zero_grad()
    net.forward(x)
    net.backward(x, bp.asarray(rng.normal(size=(5, 3))))
    w, g = (
        bp.to_numpy(lin.get_parameter("weight")).copy(),
        bp.to_numpy(lin.get_gradient("weight")).copy(),
    )
    opt.step(net)
    assert_close(lin.get_parameter("weight"), w - 0.1 * g, f64)


def test_shared_dropout_keeps_one_mask_per_use(f64, rng):
    drop = bp.Dropout(0.5, rng=3)
    net = bp.Sequentiel(bp.Linear(4, 4), drop, bp.Linear(4, 4), drop)
    x = bp.asarray(rng.normal(size=(6, 4)))
    net.forward(x)
    net.backward(x, bp.asarray(rng.normal(size=(6, 4))))  # both masks found


# -------------------------------------------------------- 6. modes are kept


@pytest.mark.parametrize("mode", [True, False])
def test_sgd_restores_the_callers_mode(backend, rng, mode):
    net = bp.Sequentiel(bp.Linear(3, 4), bp.Dropout(0.2), bp.Linear(4, 2))
    net.train(mode)
    bp.SGD(
        net,
        bp.MSELoss(),
        rng.normal(size=(10, 3)),
        rng.random(size=(10, 2)),
        epochs=1,
        eps=0.1,
        seed=0,
    )
    assert all(m.training == mode for m in net.modules())


# ------------------------------- 7. optimizer state on every library (JAX too)


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adam"])
def test_optimizer_trajectory_matches_numpy(backend_name, rng, optimizer):
    X, y = rng.normal(size=(24, 5)), rng.integers(0, 3, size=24)

    def run(name):
        with bp.use_backend(name, dtype="float64"):
            bp.manual_seed(0)
            net = bp.Sequentiel(bp.Linear(5, 8), bp.TanH(), bp.Linear(8, 3))
            bp.SGD(
                net,
                bp.CELogSoftmax(),
                X,
                y,
                batch_size=8,
                epochs=3,
                eps=0.05,
                optimizer=optimizer,
                seed=0,
            )
            return {k: bp.to_numpy(v) for k, v in net.state_dict().items()}

    ref, got = run("numpy"), run(backend_name)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-10, atol=1e-12)
    # and the state really moved: momentum differs from plain descent
    assert not np.allclose(ref["0.weight"], _plain(X, y)["0.weight"])


def _plain(X, y):
    with bp.use_backend("numpy", dtype="float64"):
        bp.manual_seed(0)
        net = bp.Sequentiel(bp.Linear(5, 8), bp.TanH(), bp.Linear(8, 3))
        bp.SGD(net, bp.CELogSoftmax(), X, y, batch_size=8, epochs=3, eps=0.05, seed=0)
        return {k: bp.to_numpy(v) for k, v in net.state_dict().items()}


# ------------------------------------------------------ compiled step = eager


@pytest.mark.parametrize("optimizer", [None, "adam", "adamw", "rmsprop"])
def test_compiled_step_gives_the_eager_parameters(f64, rng, optimizer):
    X, y = rng.normal(size=(24, 5)), rng.integers(0, 3, size=24)

    def run(compile):
        bp.manual_seed(0)
        net = bp.Sequentiel(bp.Linear(5, 8), bp.ReLU(), bp.Linear(8, 3))
        bp.SGD(net, bp.CELogSoftmax(), X, y, batch_size=8, epochs=3, eps=0.05, optimizer=optimizer,
               seed=0, compile=compile)  # fmt: skip
        return {k: bp.to_numpy(v) for k, v in net.state_dict().items()}

    eager, compiled = run(False), run(True)
    for k in eager:
        np.testing.assert_allclose(compiled[k], eager[k], rtol=1e-9, atol=1e-12)


def test_compiled_step_refuses_dropout_and_validates_labels(backend, rng):
    net = bp.Sequentiel(bp.Linear(4, 3), bp.Dropout(0.5))
    opt = bp.Optim(net, bp.CELogSoftmax(), 0.1, compile=True)
    x, y = bp.asarray(rng.normal(size=(5, 4))), bp.asarray(np.array([0, 1, 2, 1, 0]))
    if backend.compiles:
        with pytest.raises(ValueError, match="cannot be compiled"):
            opt.step(x, y)
    net.eval()
    opt.step(x, y)
    with pytest.raises(ValueError, match="out of range"):
        opt.step(x, bp.asarray(np.array([0, 1, 2, 1, 9])))


# ---------------------------------------------------------------- threads


def test_two_threads_seeding_and_training_reproduce_one(rng):
    X, y = rng.normal(size=(40, 5)), rng.integers(0, 3, size=40)

    def train(out, key):
        with bp.use_backend("numpy", dtype="float64"):
            bp.manual_seed(0)
            net = bp.Sequentiel(bp.Linear(5, 8), bp.Dropout(0.3), bp.TanH(), bp.Linear(8, 3))
            bp.SGD(net, bp.CELogSoftmax(), X, y, batch_size=8, epochs=3, eps=0.1)
            out[key] = bp.to_numpy(net[0].get_parameter("weight"))

    alone: dict = {}
    train(alone, "ref")
    results: dict = {}
    threads = [threading.Thread(target=train, args=(results, i)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        np.testing.assert_array_equal(results[i], alone["ref"])
