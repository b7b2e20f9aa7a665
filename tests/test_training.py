"""Trainings that prove the assignment's claims, with fixed seeds and honest thresholds."""

import numpy as np

import backprop as bp
from backprop.experiments import assignment


def test_moons_two_layer_tanh_sigmoid_mse(backend_name):
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split

    X, y = make_moons(n_samples=1000, noise=0.1, random_state=0)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    with bp.use_backend(backend_name):
        bp.manual_seed(0)
        net = bp.Sequentiel(bp.Linear(2, 16), bp.TanH(), bp.Linear(16, 1), bp.Sigmoid())
        bp.SGD(
            net, bp.MSELoss(), X_tr, y_tr[:, None] * 1.0, batch_size=16, epochs=60, eps=1.0, seed=0
        )
        pred = bp.to_numpy(net(bp.asarray(X_te)))[:, 0] > 0.5
    acc = (pred == y_te).mean()
    assert acc >= 0.97, acc


def test_digits_mlp(backend_name):
    with bp.use_backend(backend_name):
        result = assignment.mlp()
    assert result.accuracy >= 0.96, result
    assert result.losses[-1] < result.losses[0] / 10


def test_digits_binary(backend_name):
    with bp.use_backend(backend_name):
        result = assignment.binary_classifier()
    assert result.accuracy >= 0.97, result


def test_same_result_on_every_backend(backend_name):
    with bp.use_backend(backend_name, dtype="float64"):
        here = assignment.mlp(epochs=3)
    with bp.use_backend("numpy", dtype="float64"):
        ref = assignment.mlp(epochs=3)
    np.testing.assert_allclose(here.losses, ref.losses, rtol=1e-9)


def test_seed_cnn(backend_name):
    with bp.use_backend(backend_name):
        result = assignment.cnn()
    assert result.accuracy >= 0.97, result


def test_conv2d_network(backend_name):
    with bp.use_backend(backend_name):
        result = assignment.cnn2d()
    assert result.accuracy >= 0.97, result


def test_two_branch_network_trains(backend_name):
    with bp.use_backend(backend_name):
        result = assignment.two_branch()
    assert result.losses[-1] < result.losses[0] / 20
    assert result.accuracy >= 0.96, result
