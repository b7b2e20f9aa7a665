import numpy as np
import pytest

import backprop as bp
from conftest import assert_close, assert_like, try_torch

ACTIVATIONS = {
    "TanH": (bp.TanH, np.tanh),
    "Sigmoid": (bp.Sigmoid, lambda z: 1 / (1 + np.exp(-z))),
    "ReLU": (bp.ReLU, lambda z: np.maximum(z, 0)),
    "Softmax": (bp.Softmax, lambda z: np.exp(z) / np.exp(z).sum(1, keepdims=True)),
    "LogSoftmax": (bp.LogSoftmax, lambda z: z - np.log(np.exp(z).sum(1, keepdims=True))),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_forward_against_formula(backend, rng, name):
    cls, ref = ACTIVATIONS[name]
    z = rng.normal(size=(5, 4)) * 3
    out = cls()(bp.asarray(z))
    assert_like(out, backend, (5, 4))
    assert_close(out, ref(z), backend)


def test_hand_values(backend):
    assert_close(bp.TanH()(bp.asarray([[0.0, 1.0]])), [[0.0, 0.7615941559557649]], backend)
    assert_close(bp.Sigmoid()(bp.asarray([[0.0, 2.0]])), [[0.5, 0.8807970779778823]], backend)
    assert_close(bp.ReLU()(bp.asarray([[-1.0, 0.0, 2.5]])), [[0.0, 0.0, 2.5]], backend)
    assert_close(bp.Softmax()(bp.asarray([[0.0, np.log(3.0)]])), [[0.25, 0.75]], backend)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_gradcheck(f64, rng, name):
    cls, _ = ACTIVATIONS[name]
    z = rng.normal(size=(4, 3)) * 2
    z[np.abs(z) < 0.05] = 0.3  # away from ReLU's kink
    assert bp.gradcheck(cls(), bp.asarray(z))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_backward_with_another_input_recomputes(f64, rng, name):
    cls, _ = ACTIVATIONS[name]
    m = cls()
    a, b = bp.asarray(rng.normal(size=(3, 4))), bp.asarray(rng.normal(size=(3, 4)))
    d = bp.asarray(rng.normal(size=(3, 4)))
    m(b)
    fresh = cls().backward_delta(a, d)
    assert_close(m.backward_delta(a, d), bp.to_numpy(fresh), f64)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_no_parameters_and_errors(backend, name):
    cls, _ = ACTIVATIONS[name]
    m = cls()
    assert m.parameters() == [] and m._gradient == {}
    m.zero_grad()
    m.update_parameters(1.0)
    assert repr(m) == f"{name}()"
    with pytest.raises(TypeError, match=f"{name}\\(\\)\\.forward: expected a real floating input"):
        m(bp.asarray(np.array([[1, 2]])))
    x = bp.asarray(np.ones((2, 3)))
    with pytest.raises(
        ValueError, match=r"expected delta of the input's shape \(2, 3\), got \(2, 2\)"
    ):
        m.backward_delta(x, bp.asarray(np.ones((2, 2))))


def test_stability_extremes(backend):
    big = bp.asarray([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    # overflow, invalid operations and divisions by zero raise; exp(-2e4)
    # underflowing to exactly 0 is the correct result, not an error
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        s = bp.to_numpy(bp.Softmax()(big))
        ls = bp.to_numpy(bp.LogSoftmax()(big))
        ce = bp.to_numpy(bp.CELogSoftmax().forward(bp.asarray(np.array([1, 0])), big))
        sig = bp.to_numpy(bp.Sigmoid()(bp.asarray([[-1000.0, 1000.0, 0.0]])))
        th = bp.to_numpy(bp.TanH()(bp.asarray([[-1000.0, 1000.0]])))
        g = bp.to_numpy(
            bp.Sigmoid().backward_delta(bp.asarray([[-1000.0, 1000.0]]), bp.asarray([[1.0, 1.0]]))
        )
    assert np.all(np.isfinite(s)) and np.allclose(s[0], [1, 0, 0]) and np.allclose(s[1], 1 / 3)
    assert np.all(np.isfinite(ls)) and ls[0, 1] == pytest.approx(-2e4, rel=1e-6)
    assert ce == pytest.approx([2e4, np.log(3)], rel=1e-6)
    np.testing.assert_allclose(sig, [[0.0, 1.0, 0.5]], atol=1e-30)
    np.testing.assert_array_equal(th, [[-1.0, 1.0]])
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("name", ["TanH", "Sigmoid", "ReLU", "Softmax", "LogSoftmax"])
def test_torch_parity(f64, rng, name):
    torch = try_torch()
    F = torch.nn.functional
    ref = {
        "TanH": torch.tanh,
        "Sigmoid": torch.sigmoid,
        "ReLU": F.relu,
        "Softmax": lambda t: F.softmax(t, dim=1),
        "LogSoftmax": lambda t: F.log_softmax(t, dim=1),
    }[name]
    z, d = rng.normal(size=(6, 5)) * 3, rng.normal(size=(6, 5))
    tz = torch.tensor(z, requires_grad=True)
    ty = ref(tz)
    ty.backward(torch.tensor(d))
    m = ACTIVATIONS[name][0]()
    assert_close(m(bp.asarray(z)), ty.detach().numpy(), f64)
    assert_close(m.backward_delta(bp.asarray(z), bp.asarray(d)), tz.grad.numpy(), f64)
