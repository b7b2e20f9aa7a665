"""Every module and loss gives the same numbers on every backend as on NumPy, forward and backward.

On this machine that compares NumPy with PyTorch (CPU) and array-api-strict;
on a GPU machine the same tests compare it with CuPy and PyTorch CUDA
(``BACKPROP_BACKEND=cupy`` or ``BACKPROP_BACKEND=torch BACKPROP_DEVICE=cuda``).
Tolerances: float64 within 1e-9, float32 within 1e-4 (relative).
"""

import numpy as np
import pytest

import backprop as bp
from conftest import _device_for


def _tied():
    enc = bp.Linear(6, 4)
    return bp.Sequentiel(enc, bp.TanH(), bp.TiedLinear(enc), bp.Sigmoid())


MODULES = {
    "Linear": (lambda: bp.Linear(6, 4), (5, 6)),
    "TanH": (bp.TanH, (5, 6)),
    "Sigmoid": (bp.Sigmoid, (5, 6)),
    "ReLU": (bp.ReLU, (5, 6)),
    "Softmax": (bp.Softmax, (5, 6)),
    "LogSoftmax": (bp.LogSoftmax, (5, 6)),
    "Conv1D": (lambda: bp.Conv1D(3, 2, 4, stride=2), (3, 11, 2)),
    "Conv2D": (lambda: bp.Conv2D((3, 2), 2, 3, stride=(1, 2)), (2, 7, 6, 2)),
    "MaxPool1D": (lambda: bp.MaxPool1D(2), (3, 11, 2)),
    "MaxPool1D-overlap": (lambda: bp.MaxPool1D(3, 1), (3, 11, 2)),
    "AvgPool1D": (lambda: bp.AvgPool1D(3, 2), (3, 11, 2)),
    "MaxPool2D": (lambda: bp.MaxPool2D(2), (2, 7, 6, 2)),
    "AvgPool2D": (lambda: bp.AvgPool2D(2, 1), (2, 7, 6, 2)),
    "Flatten": (bp.Flatten, (3, 4, 2)),
    "Reshape": (lambda: bp.Reshape((3, 4)), (2, 12)),
    "Transpose": (lambda: bp.Transpose((1, 0)), (2, 3, 4)),
    "Concat": (
        lambda: bp.Concat(bp.Linear(6, 2), bp.Sequentiel(bp.Linear(6, 3), bp.ReLU())),
        (5, 6),
    ),
    "Dropout": (lambda: bp.Dropout(0.3, rng=5), (5, 6)),
    "TiedLinear": (_tied, (5, 6)),
}

LOSSES = ["MSELoss", "BCELoss", "CrossEntropyLoss", "CELogSoftmax", "CELogSoftmax-labels"]


def tolerance(dtype):
    return {"rtol": 1e-9, "atol": 1e-12} if dtype == "float64" else {"rtol": 1e-4, "atol": 1e-5}


def _run_module(name, backend_name, dtype, x, d):
    factory, _ = MODULES[name]
    with bp.use_backend(backend_name, device=_device_for(backend_name), dtype=dtype):
        bp.manual_seed(0)
        m = factory()
        X, D = bp.asarray(x), bp.asarray(d)
        out = m.forward(X)
        m.zero_grad()
        grad_in = m.backward(X, D)
        grads = [
            bp.to_numpy(g[k]).copy()
            for g in (mod._gradient for mod in m.modules())
            for k in sorted(g)
        ]
        return bp.to_numpy(out), bp.to_numpy(grad_in), grads


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", MODULES)
def test_module_parity_with_numpy(other_backend_name, dtype, name):
    backend_name = other_backend_name
    rng = np.random.default_rng(1)
    shape = MODULES[name][1]
    # distinct values with a few exact ties: max-pool must break them the same way everywhere
    x = np.round(rng.normal(size=shape), 1)
    with bp.use_backend("numpy"):
        probe = MODULES[name][0]()
        out_shape = tuple(probe.forward(bp.asarray(x)).shape)
    d = rng.normal(size=out_shape)
    ref = _run_module(name, "numpy", dtype, x, d)
    got = _run_module(name, backend_name, dtype, x, d)
    tol = tolerance(dtype)
    np.testing.assert_allclose(got[0], ref[0], **tol, err_msg=f"{name} forward")
    np.testing.assert_allclose(got[1], ref[1], **tol, err_msg=f"{name} input gradient")
    assert len(got[2]) == len(ref[2])
    for a, b in zip(got[2], ref[2]):
        np.testing.assert_allclose(a, b, **tol, err_msg=f"{name} parameter gradient")


def _loss_case(name, rng):
    n, c = 6, 5
    if name == "MSELoss":
        return bp.MSELoss(), rng.normal(size=(n, c)), rng.normal(size=(n, c))
    if name == "BCELoss":
        return (
            bp.BCELoss(),
            rng.uniform(size=(n, c)),
            np.r_[rng.uniform(0.01, 0.99, size=(n - 1, c)), [[0, 1, 0.5, 1, 0]]],
        )
    labels = rng.integers(0, c, size=n)
    z = rng.normal(size=(n, c)) * 3
    if name == "CrossEntropyLoss":
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return bp.CrossEntropyLoss(), np.eye(c)[labels], logp
    return bp.CELogSoftmax(), (labels if name.endswith("labels") else np.eye(c)[labels]), z


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", LOSSES)
def test_loss_parity_with_numpy(other_backend_name, dtype, name):
    backend_name = other_backend_name
    loss, y, yhat = _loss_case(name, np.random.default_rng(2))

    def run(b):
        with bp.use_backend(b, device=_device_for(b), dtype=dtype):
            Y, P = bp.asarray(y), bp.asarray(yhat)
            value, grad = loss.forward_backward(Y, P)
            return bp.to_numpy(value), bp.to_numpy(grad)

    ref, got = run("numpy"), run(backend_name)
    tol = tolerance(dtype)
    np.testing.assert_allclose(got[0], ref[0], **tol, err_msg=f"{name} cost")
    np.testing.assert_allclose(got[1], ref[1], **tol, err_msg=f"{name} gradient")


def test_training_parity_with_numpy(other_backend_name):
    """A few steps of the assignment's 1-D CNN with Adam and dropout: same costs and weights on
    every backend."""
    backend_name = other_backend_name
    rng = np.random.default_rng(3)
    X, y = rng.random((40, 32, 1)), rng.integers(0, 4, size=40)

    def run(b):
        with bp.use_backend(b, device=_device_for(b), dtype="float64"):
            bp.manual_seed(0)
            net = bp.Sequentiel(
                bp.Conv1D(3, 1, 4),
                bp.ReLU(),
                bp.MaxPool1D(2),
                bp.Flatten(),
                bp.Dropout(0.2),
                bp.Linear(60, 4),
            )
            hist = _two_adam_epochs(net, X, y)
            return list(hist), [bp.to_numpy(p) for p in net.parameters()]

    ref, got = run("numpy"), run(backend_name)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-9)
    for a, b in zip(got[1], ref[1]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def _two_adam_epochs(net, X, y, **more):
    """Two epochs of Adam in batches of 8, the training both mixed-network tests run."""
    return bp.SGD(
        net, bp.CELogSoftmax(), X, y, batch_size=8, epochs=2, eps=1e-2, seed=0, optimizer="adam",
        **more,
    )  # fmt: skip


def test_everything_stays_on_a_second_device(tmp_path):
    """array_api_strict's device1 refuses to mix devices: any array created on the default device
    fails here."""
    import array_api_strict as strict

    rng = np.random.default_rng(4)
    dev = strict.Device("device1")
    with bp.use_backend("array_api_strict", device="device1", dtype="float64"):
        bp.manual_seed(0)
        enc = bp.Linear(92, 8)
        net = bp.Sequentiel(
            bp.Concat(
                bp.Sequentiel(bp.Conv1D(3, 1, 4), bp.ReLU(), bp.MaxPool1D(2), bp.Flatten()),
                bp.Sequentiel(
                    bp.Conv1D(2, 1, 4, stride=2), bp.TanH(), bp.AvgPool1D(2), bp.Flatten()
                ),
                axis=1,
            ),
            bp.Dropout(0.2),
            enc,
            bp.Sigmoid(),
            bp.TiedLinear(enc),
            bp.Linear(92, 3),
        )
        X, y = rng.random((24, 32, 1)), rng.integers(0, 3, size=24)
        hist = _two_adam_epochs(net, X, y, validation=(X, y), metric=bp.accuracy, patience=3)
        assert len(hist) == 2 and np.isfinite(hist).all()
        ae = bp.build_autoencoder((32, 8, 2), tied=True)
        Z = bp.asarray(rng.random((10, 32)))
        bp.SGD(
            ae.network, bp.BCELoss(), bp.gaussian_noise(Z, 0.1), Z, epochs=1, optimizer="momentum"
        )
        conv2 = bp.Sequentiel(
            bp.Reshape((4, 8, 1)),
            bp.Conv2D(2, 1, 2),
            bp.MaxPool2D(2),
            bp.Flatten(),
            bp.Linear(6, 2),
        )
        bp.SGD(conv2, bp.MSELoss(), Z, bp.asarray(rng.random((10, 2))), epochs=1)
        for p in net.parameters() + ae.network.parameters() + conv2.parameters():
            assert p.device == dev
        bp.save(net, tmp_path / "net.npz")
        loaded = bp.load(tmp_path / "net.npz")
        assert all(p.device == dev for p in loaded.parameters())
