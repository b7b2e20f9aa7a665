import numpy as np
import pytest

import backprop as bp
from conftest import assert_close, assert_like, try_torch


def log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def test_mse_by_hand(backend):
    y = bp.asarray([[1.0, 2.0], [0.0, 0.0]])
    yhat = bp.asarray([[1.0, 0.0], [3.0, 4.0]])
    loss = bp.MSELoss()
    out = loss(y, yhat)
    assert_like(out, backend, (2,))
    assert_close(out, [4.0, 25.0], backend)
    assert_close(loss.backward(y, yhat), [[0.0, -2.0], [3.0, 4.0]], backend)


def test_bce_by_hand(backend):
    y = bp.asarray([[1.0, 0.0]])
    yhat = bp.asarray([[0.8, 0.25]])
    expected = -(np.log(0.8) + np.log(0.75))
    assert_close(bp.BCELoss()(y, yhat), [expected], backend)


def test_bce_clamps_at_zero_and_one(backend):
    y = bp.asarray([[1.0, 0.0, 1.0, 0.0]])
    yhat = bp.asarray([[0.0, 1.0, 1.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        value = bp.to_numpy(bp.BCELoss()(y, yhat))
        grad = bp.to_numpy(bp.BCELoss().backward(y, yhat))
    assert value == pytest.approx([200.0])
    assert np.all(np.isfinite(grad))


def test_cross_entropy_by_hand(backend):
    logp = bp.asarray(np.log([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    labels = bp.asarray(np.array([0, 2]))
    onehot = bp.asarray(np.eye(3)[[0, 2]])
    for y in (labels, onehot):
        assert_close(bp.CrossEntropyLoss()(y, logp), [np.log(2), -np.log(0.8)], backend)
        assert_close(bp.CrossEntropyLoss().backward(y, logp), -np.eye(3)[[0, 2]] / 2, backend)


def test_celogsoftmax_matches_logsoftmax_then_ce(backend, rng):
    z = rng.normal(size=(6, 4)) * 4
    y = rng.integers(0, 4, size=6)
    fused = bp.CELogSoftmax()(bp.asarray(y), bp.asarray(z))
    assert_close(fused, -log_softmax(z)[np.arange(6), y], backend)
    two = bp.CrossEntropyLoss()(bp.asarray(y), bp.LogSoftmax()(bp.asarray(z)))
    assert_close(fused, bp.to_numpy(two), backend)


LOSSES = ["MSELoss", "BCELoss", "CrossEntropyLoss", "CELogSoftmax"]


def _case(name, rng, labels=False):
    n, c = 5, 4
    if name == "MSELoss":
        return rng.normal(size=(n, c)), rng.normal(size=(n, c))
    if name == "BCELoss":
        return rng.uniform(size=(n, c)), rng.uniform(0.05, 0.95, size=(n, c))
    y = rng.integers(0, c, size=n)
    y = y if labels else np.eye(c)[y]
    z = rng.normal(size=(n, c))
    return y, (log_softmax(z) if name == "CrossEntropyLoss" else z)


# integer labels apply to the classification losses only
GRADCHECK_CASES = [(name, False) for name in LOSSES] + [("CrossEntropyLoss", True), ("CELogSoftmax", True)]


@pytest.mark.parametrize("name,labels", GRADCHECK_CASES)
def test_gradcheck(f64, rng, name, labels):
    y, yhat = _case(name, rng, labels)
    assert bp.gradcheck(getattr(bp, name)(), bp.asarray(y), bp.asarray(yhat))


@pytest.mark.parametrize("name", LOSSES)
def test_forward_backward_agrees(backend, rng, name):
    y, yhat = _case(name, rng)
    loss = getattr(bp, name)()
    value, grad = loss.forward_backward(bp.asarray(y), bp.asarray(yhat))
    assert_like(value, backend, (5,))
    assert_like(grad, backend, (5, 4))
    assert_close(value, bp.to_numpy(loss.forward(bp.asarray(y), bp.asarray(yhat))), backend)
    assert_close(grad, bp.to_numpy(loss.backward(bp.asarray(y), bp.asarray(yhat))), backend)


def test_backward_is_gradient_of_batch_mean(f64, rng):
    y, yhat = _case("MSELoss", rng)
    g = bp.to_numpy(bp.MSELoss().backward(bp.asarray(y), bp.asarray(yhat)))
    assert_close(g, 2 * (yhat - y) / 5, f64)


def test_label_errors(backend):
    z = bp.asarray(np.zeros((3, 10)))
    for loss in (bp.CrossEntropyLoss(), bp.CELogSoftmax()):
        name = type(loss).__name__
        with pytest.raises(ValueError, match=f"{name}.forward: label 12 is out of range for 10 classes"):
            loss(bp.asarray(np.array([1, 12, 3])), z)
        with pytest.raises(ValueError, match="label -1 is out of range"):
            loss.backward(bp.asarray(np.array([-1, 0, 3])), z)
        with pytest.raises(TypeError, match="must be integers"):
            loss(bp.asarray(np.array([1.0, 2.0, 3.0])), z)
        with pytest.raises(ValueError, match=r"expected 3 labels"):
            loss(bp.asarray(np.array([1, 2])), z)
        with pytest.raises(ValueError, match=r"one-hot rows of shape \(3, 10\), got \(3, 9\)"):
            loss(bp.asarray(np.zeros((3, 9))), z)


def test_shape_and_type_errors(backend):
    with pytest.raises(ValueError, match=r"MSELoss.forward: expected y of the same shape as yhat \(2, 3\), got \(2, 2\)"):
        bp.MSELoss()(bp.asarray(np.zeros((2, 2))), bp.asarray(np.zeros((2, 3))))
    with pytest.raises(TypeError, match="BCELoss.backward: expected a real floating yhat"):
        bp.BCELoss().backward(bp.asarray(np.zeros((2, 2))), bp.asarray(np.zeros((2, 2), dtype=np.int64)))
    with pytest.raises(TypeError, match="y: expected an array"):
        bp.MSELoss()([[0.0]], bp.asarray(np.zeros((1, 1))))


def test_integer_targets_accepted_for_dense_losses(backend):
    y = bp.asarray(np.array([[1], [0]]))
    yhat = bp.asarray([[0.5], [0.5]])
    assert_close(bp.MSELoss()(y, yhat), [0.25, 0.25], backend)


@pytest.mark.parametrize("name", LOSSES)
def test_torch_parity(f64, rng, name):
    torch = try_torch()
    F = torch.nn.functional
    y, yhat = _case(name, rng, labels=name in ("CrossEntropyLoss", "CELogSoftmax"))
    ty, tp = torch.tensor(y), torch.tensor(yhat, requires_grad=True)
    if name == "MSELoss":
        per_row = ((tp - ty) ** 2).sum(1)
    elif name == "BCELoss":
        per_row = F.binary_cross_entropy(tp, ty, reduction="none").sum(1)
    elif name == "CrossEntropyLoss":
        per_row = F.nll_loss(tp, ty, reduction="none")
    else:
        per_row = F.cross_entropy(tp, ty, reduction="none")
    per_row.mean().backward()
    loss = getattr(bp, name)()
    assert_close(loss(bp.asarray(y), bp.asarray(yhat)), per_row.detach().numpy(), f64)
    assert_close(loss.backward(bp.asarray(y), bp.asarray(yhat)), tp.grad.numpy(), f64)


def test_bce_torch_parity_at_the_edges(f64):
    torch = try_torch()
    y = np.array([[1.0, 0.0, 1.0, 0.0, 0.3]])
    p = np.array([[0.0, 1.0, 1e-50, 1 - 1e-17, 0.5]])
    ref = torch.nn.functional.binary_cross_entropy(torch.tensor(p), torch.tensor(y), reduction="none").sum(1)
    assert_close(bp.BCELoss()(bp.asarray(y), bp.asarray(p)), ref.numpy(), f64, rtol=1e-9)
