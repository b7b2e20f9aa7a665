"""Embedding: forward, gradient, errors, PyTorch parity, save/load and ONNX."""

import numpy as np
import pytest

import backprop as bp
from backprop import Embedding, Flatten, Linear, Sequentiel


def _np(x):
    return bp.to_numpy(x)


def _x(shape, seed=0):
    return bp.asarray(np.random.default_rng(seed).normal(size=shape))


def test_embedding_forward_gradient_and_errors(f64):
    emb = Embedding(6, 3)
    idx = bp.asarray(np.array([[0, 2, 2], [5, 0, 1]]))
    out = emb.forward(idx)
    np.testing.assert_array_equal(_np(out), _np(emb.get_parameter("weight"))[_np(idx)])
    delta = _x((2, 3, 3))
    emb.zero_grad()
    emb.backward_update_gradient(idx, delta)
    expected = np.zeros((6, 3))
    np.add.at(expected, _np(idx).ravel(), _np(delta).reshape(-1, 3))
    np.testing.assert_allclose(_np(emb.get_gradient("weight")), expected, atol=1e-12)
    assert emb.backward_delta(idx, delta) is None
    with pytest.raises(TypeError, match="expected integer indices"):
        emb.forward(_x((2, 3)))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 6\), got values from -1 to 6"):
        emb.forward(bp.asarray(np.array([[-1, 6]])))
    assert tuple(emb.forward(bp.asarray(np.zeros((0, 2), dtype=np.int64))).shape) == (0, 2, 3)


def test_embedding_gradient_by_finite_differences(f64):
    emb = Embedding(5, 3)
    idx = bp.asarray(np.array([[0, 4, 4, 1]]))
    delta = _x((1, 4, 3), seed=3)
    emb.zero_grad()
    emb.backward_update_gradient(idx, delta)
    W = _np(emb.get_parameter("weight")).copy()
    eps, numeric = 1e-6, np.zeros_like(W)
    for r in range(5):
        for c in range(3):
            for sign in (1, -1):
                Wp = W.copy()
                Wp[r, c] += sign * eps
                emb.load_state_dict({"weight": Wp})
                numeric[r, c] += (
                    sign * float(np.sum(_np(emb.forward(idx)) * _np(delta))) / (2 * eps)
                )
    np.testing.assert_allclose(_np(emb.get_gradient("weight")), numeric, atol=1e-7)


def test_embedding_trains_saves_and_loads(backend, tmp_path):
    net = Sequentiel(Embedding(6, 4), Flatten(), Linear(8, 2))
    X = bp.asarray(np.random.default_rng(0).integers(0, 6, size=(40, 2)))
    y = bp.asarray(np.random.default_rng(1).integers(0, 2, size=40))
    bp.SGD(net, bp.CELogSoftmax(), X, y, batch_size=8, epochs=3, eps=0.1)
    bp.save(net, tmp_path / "e.npz")
    back = bp.load(tmp_path / "e.npz")
    np.testing.assert_array_equal(_np(back.forward(X)), _np(net.forward(X)))


def test_embedding_matches_pytorch(f64):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    t = torch.nn.Embedding(7, 3).double()
    emb = bp.from_torch(t)
    idx = np.array([[1, 6, 6], [0, 2, 1]])
    out = t(torch.from_numpy(idx))
    np.testing.assert_allclose(_np(emb.forward(bp.asarray(idx))), out.detach().numpy(), atol=1e-12)
    g = torch.randn(2, 3, 3, dtype=torch.float64)
    out.backward(g)
    emb.zero_grad()
    emb.backward_update_gradient(bp.asarray(idx), bp.asarray(g.numpy()))
    np.testing.assert_allclose(_np(emb.get_gradient("weight")), t.weight.grad.numpy(), atol=1e-12)
    back = bp.to_torch(emb)
    np.testing.assert_allclose(back.weight.detach().numpy(), t.weight.detach().numpy())


def test_embedding_exports_to_onnx(tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    net = Sequentiel(Embedding(9, 3), Flatten(), Linear(6, 2))
    bp.export_onnx(net, tmp_path / "e.onnx", (2,))
    idx = np.array([[0, 8], [3, 3], [1, 2]])
    got = ort.InferenceSession(str(tmp_path / "e.onnx")).run(
        None, {"input": idx.astype(np.float32)}
    )[0]
    np.testing.assert_allclose(got, _np(net.forward(bp.asarray(idx))), atol=1e-5)
