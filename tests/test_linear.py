import numpy as np
import pytest

import backprop as bp
from conftest import assert_close, assert_like, try_torch


def test_forward_by_hand(backend):
    lin = bp.Linear(2, 3)
    lin._parameters["weight"] = bp.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    lin._parameters["bias"] = bp.asarray([0.5, -1.0, 0.0])
    out = lin(bp.asarray([[1.0, 1.0], [2.0, -1.0]]))
    assert_like(out, backend, (2, 3))
    assert_close(out, [[5.5, 6.0, 9.0], [-1.5, -2.0, 0.0]], backend)


def test_init_range_and_shapes(backend):
    lin = bp.Linear(16, 5)
    w = bp.to_numpy(lin._parameters["weight"])
    assert w.shape == (16, 5) and bp.to_numpy(lin._parameters["bias"]).shape == (5,)
    assert np.all(np.abs(w) <= 0.25) and w.std() > 0.05
    assert set(lin._gradient) == {"weight", "bias"}
    assert not bp.to_numpy(lin._gradient["weight"]).any()


def test_no_bias(backend):
    lin = bp.Linear(3, 2, bias=False)
    assert list(lin._parameters) == ["weight"]
    assert "bias=False" in repr(lin)
    x = bp.asarray(np.ones((4, 3)))
    assert_close(lin(x), bp.to_numpy(x) @ bp.to_numpy(lin._parameters["weight"]), backend)


def test_gradcheck(f64, rng):
    for bias in (True, False):
        assert bp.gradcheck(bp.Linear(4, 3, bias=bias), bp.asarray(rng.normal(size=(5, 4))))
    assert bp.gradcheck(bp.Linear(1, 1), bp.asarray(rng.normal(size=(1, 1))))


def test_gradient_by_hand(f64, rng):
    lin = bp.Linear(3, 2)
    x, d = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    lin.backward_update_gradient(bp.asarray(x), bp.asarray(d))
    assert_close(lin._gradient["weight"], x.T @ d, f64)
    assert_close(lin._gradient["bias"], d.sum(0), f64)
    assert_close(
        lin.backward_delta(bp.asarray(x), bp.asarray(d)),
        d @ bp.to_numpy(lin._parameters["weight"]).T,
        f64,
    )


def test_accumulation_and_zero_grad(backend, rng):
    lin = bp.Linear(3, 2)
    x, d = bp.asarray(rng.normal(size=(4, 3))), bp.asarray(rng.normal(size=(4, 2)))
    lin.backward_update_gradient(x, d)
    once = {k: bp.to_numpy(g).copy() for k, g in lin._gradient.items()}
    lin.backward_update_gradient(x, d)
    for k in once:
        assert_close(lin._gradient[k], 2 * once[k], backend, rtol=1e-5)
    lin.zero_grad()
    for g in lin._gradient.values():
        assert not bp.to_numpy(g).any()
        assert_like(g, backend)


def test_update_parameters(backend, rng):
    lin = bp.Linear(3, 2)
    lin.backward_update_gradient(
        bp.asarray(rng.normal(size=(4, 3))), bp.asarray(rng.normal(size=(4, 2)))
    )
    before = {k: bp.to_numpy(p).copy() for k, p in lin._parameters.items()}
    grads = {k: bp.to_numpy(g).copy() for k, g in lin._gradient.items()}
    lin.update_parameters(0.1)
    for k in before:
        assert_close(lin._parameters[k], before[k] - 0.1 * grads[k], backend)
        assert_like(lin._parameters[k], backend)


def test_errors(backend):
    lin = bp.Linear(64, 10)
    with pytest.raises(
        ValueError,
        match=r"Linear\(64 -> 10\)\.forward: expected input of shape \(N, 64\), got \(32, 63\)",
    ):
        lin(bp.asarray(np.zeros((32, 63))))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 64\), got \(64,\)"):
        lin(bp.asarray(np.zeros(64)))
    with pytest.raises(TypeError, match="real floating input, got dtype"):
        lin(bp.asarray(np.zeros((2, 64), dtype=np.int64)))
    with pytest.raises(
        ValueError,
        match=r"backward_delta: expected delta of the output's shape \(2, 10\), got \(2, 9\)",
    ):
        lin.backward_delta(bp.asarray(np.zeros((2, 64))), bp.asarray(np.zeros((2, 9))))
    with pytest.raises(ValueError, match="input must be a positive int"):
        bp.Linear(0, 3)
    with pytest.raises(TypeError, match="got list"):
        lin([[0.0] * 64])


def test_other_precision_is_cast(backend):
    lin = bp.Linear(3, 2)
    other = "float64" if backend.dtype_name == "float32" else "float32"
    x = bp.asarray(np.ones((2, 3)), dtype=other)
    assert_like(lin(x), backend, (2, 2))


def test_input_from_another_library_says_how_to_move_it(backend_name):
    other = "numpy" if backend_name != "numpy" else "array_api_strict"
    with bp.use_backend(backend_name):
        lin = bp.Linear(3, 2)
    with bp.use_backend(other):
        x = bp.asarray(np.ones((2, 3)))
    with pytest.raises(
        TypeError, match=r"is a \w+ array but the parameters live on .*backprop.asarray"
    ):
        lin(x)


def test_strict_second_device_trains_and_rejects_cpu_input(rng):
    with bp.use_backend("array_api_strict", device="device1"):
        net = bp.Sequentiel(bp.Linear(2, 8), bp.TanH(), bp.Linear(8, 1), bp.Sigmoid())
        X = bp.asarray(rng.normal(size=(64, 2)))
        y = bp.asarray((rng.normal(size=(64, 1)) > 0) * 1.0)
        losses = bp.SGD(net, bp.MSELoss(), X, y, batch_size=16, epochs=3, eps=0.5, seed=0)
        assert len(losses) == 3 and all(np.isfinite(losses))
        assert str(net[0]._parameters["weight"].device) == str(X.device)
    with bp.use_backend("array_api_strict"):
        cpu_x = bp.asarray(rng.normal(size=(4, 2)))
    with pytest.raises(
        ValueError,
        match="is on device .*CPU_DEVICE.* but the parameters live on array_api_strict:device1",
    ):
        net(cpu_x)


def test_to_moves_parameters(rng):
    with bp.use_backend("numpy"):
        lin = bp.Linear(3, 2)
        w = bp.to_numpy(lin._parameters["weight"]).copy()
    lin.to("array_api_strict", device="device1", dtype="float64")
    assert lin._backend.name == "array_api_strict" and lin._backend.dtype_name == "float64"
    np.testing.assert_allclose(bp.to_numpy(lin._parameters["weight"]), w)
    with bp.use_backend("array_api_strict", device="device1", dtype="float64"):
        out = lin(bp.asarray(rng.normal(size=(2, 3))))
    assert out.dtype == lin._backend.dtype


def test_torch_parity(f64, rng):
    torch = try_torch()
    lin = bp.Linear(5, 3)
    x, d = rng.normal(size=(7, 5)), rng.normal(size=(7, 3))
    W = torch.tensor(bp.to_numpy(lin._parameters["weight"]), requires_grad=True)
    b = torch.tensor(bp.to_numpy(lin._parameters["bias"]), requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.linear(tx, W.T, b)
    ty.backward(torch.tensor(d))
    assert_close(lin(bp.asarray(x)), ty.detach().numpy(), f64)
    lin.backward_update_gradient(bp.asarray(x), bp.asarray(d))
    assert_close(lin._gradient["weight"], W.grad.numpy(), f64)
    assert_close(lin._gradient["bias"], b.grad.numpy(), f64)
    assert_close(lin.backward_delta(bp.asarray(x), bp.asarray(d)), tx.grad.numpy(), f64)
