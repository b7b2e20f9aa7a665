"""The Module and Loss base classes: what every layer inherits."""

import pickle

import numpy as np
import pytest

import backprop as bp
from conftest import assert_like


def test_abstract_methods_say_what_is_missing():
    class Half(bp.Module):
        def forward(self, X):
            return X

    with pytest.raises(NotImplementedError, match="Half does not implement backward_delta"):
        Half().backward_delta(None, None)
    with pytest.raises(NotImplementedError, match="Module does not implement forward"):
        bp.Module()(None)
    with pytest.raises(NotImplementedError, match="Loss does not implement forward"):
        bp.Loss()(None, None)


def test_call_is_forward(backend, rng):
    lin = bp.Linear(3, 2)
    x = bp.asarray(rng.normal(size=(4, 3)))
    np.testing.assert_array_equal(bp.to_numpy(lin(x)), bp.to_numpy(lin.forward(x)))


def test_parameters_slots_and_counts(backend):
    net = bp.Sequentiel(
        bp.Linear(3, 4), bp.ReLU(), bp.Concat(bp.Linear(4, 2), bp.Linear(4, 1, bias=False))
    )
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.0.weight", "2.0.bias", "2.1.weight"]
    assert net.n_parameters() == 3 * 4 + 4 + 4 * 2 + 2 + 4
    assert [k for _, k in net.parameter_slots()] == ["weight", "bias", "weight", "bias", "weight"]
    assert [p for p, _ in net.named_modules()] == ["", "0", "1", "2", "2.0", "2.1"]
    assert set(net.state_dict()) == set(names)
    for p in net.parameters():
        assert_like(p, backend)


def test_train_and_eval_propagate():
    net = bp.Sequentiel(bp.Linear(2, 2), bp.Sequentiel(bp.Dropout(0.5)))
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_to_moves_a_whole_network(rng):
    with bp.use_backend("numpy", dtype="float32"):
        net = bp.Sequentiel(bp.Conv1D(3, 1, 2), bp.Flatten(), bp.Linear(16, 2))
        x = rng.random((2, 10, 1))
        before = bp.to_numpy(net(bp.asarray(x)))
    net.to("array_api_strict", dtype="float64")
    with bp.use_backend("array_api_strict", dtype="float64"):
        after = bp.to_numpy(net(bp.asarray(x)))
    np.testing.assert_allclose(after, before, rtol=1e-6)
    assert all(m._backend.name == "array_api_strict" for m in net.modules() if m._parameters)


def test_pickle_round_trip(backend, rng):
    net = bp.Sequentiel(bp.Linear(3, 2), bp.TanH())
    x = bp.asarray(rng.normal(size=(4, 3)))
    net(x)
    clone = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(bp.to_numpy(clone(x)), bp.to_numpy(net(x)))
    assert clone[0]._backend == net[0]._backend


def test_accumulate_stores_then_adds(f64, rng):
    lin = bp.Linear(2, 2)
    host = rng.normal(size=(2, 2))
    g = bp.asarray(host.copy())
    lin.zero_grad()
    lin.accumulate_gradient("weight", g)
    assert lin._gradient["weight"] is g  # known zero: stored, not added (the caller hands it over)
    lin.accumulate_gradient("weight", bp.asarray(np.ones((2, 2))))
    np.testing.assert_allclose(bp.to_numpy(lin._gradient["weight"]), host + 1)


def test_repr_of_a_loss():
    assert repr(bp.CELogSoftmax()) == "CELogSoftmax()"
