"""The layer protocol: registration by qualified name, public hooks for layers and containers,
buffers, the new structural layers (Identity, Sum, Residual, Select, Embedding), per-call state,
and the PyTorch conversion of the library's layers."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import (
    Concat,
    Conv1D,
    Dropout,
    Flatten,
    Identity,
    Linear,
    MaxPool1D,
    ReLU,
    Residual,
    Select,
    Sequentiel,
    Sum,
    TanH,
)
from backprop.module import MODULE_TYPES, module_type, type_name


def _np(x):
    return bp.to_numpy(x)


def _x(shape, seed=0):
    return bp.asarray(np.random.default_rng(seed).normal(size=shape))


# ------------------------------------------------------------------ registration


def test_types_are_registered_under_their_qualified_name():
    assert MODULE_TYPES["backprop.linear.Linear"] is Linear
    assert type_name(Linear) == "backprop.linear.Linear"
    assert module_type("Linear") is Linear  # files written before names were qualified


def test_a_users_class_never_replaces_a_library_class(tmp_path):
    class TanH(bp.Module):  # same bare name as the library's
        def forward(self, X):
            return X

    assert module_type("backprop.activations.TanH") is bp.TanH
    net = Sequentiel(Linear(3, 2), bp.TanH())
    bp.save(net, tmp_path / "m.npz")
    assert type(bp.load(tmp_path / "m.npz")[1]) is bp.TanH
    assert TanH is not bp.TanH


def test_loading_a_model_whose_user_class_is_not_imported_names_it(tmp_path):
    import json
    import zipfile

    net = Sequentiel(Linear(3, 2), TanH())
    path = tmp_path / "m.npz"
    bp.save(net, path)
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    arch = np.load(path)["__architecture__"].tobytes().decode()
    arch = arch.replace("backprop.activations.TanH", "mylayers.gates.Gate")
    record = json.loads(arch)
    assert record["architecture"]["children"][1]["type"] == "mylayers.gates.Gate"
    out = tmp_path / "user.npz"
    np.savez(
        out,
        **{k[:-4]: np.load(path)[k[:-4]] for k in entries if k.endswith(".npy")}
        | {"__architecture__": np.frombuffer(arch.encode(), dtype=np.uint8)},
    )
    with pytest.raises(
        ValueError, match=r"unknown layer type 'mylayers\.gates\.Gate': import mylayers\.gates"
    ):
        bp.load(out)


# ------------------------------------------------------------------ parameters and buffers


class Scale(bp.Module):
    """A user layer with a parameter and a buffer: y = a * x, counting the forwards."""

    def __init__(self, n):
        super().__init__()
        self.n = n
        self.add_parameter("a", np.linspace(0.5, 1.5, n))  # float64 host data
        self.add_buffer("calls", np.zeros(1))

    def get_config(self):
        return {"n": self.n}

    def forward(self, X):
        X = self.check_array(X)
        self.set_buffer("calls", self.get_buffer("calls") + 1)
        return X * self.get_parameter("a")

    def backward_update_gradient(self, input, delta):
        self.accumulate_gradient("a", self.backend.xp.sum(input * delta, axis=0))

    def backward_delta(self, input, delta):
        return delta * self.get_parameter("a")


def test_add_parameter_casts_host_data_to_the_backend(backend):
    layer = Scale(4)
    a = layer.get_parameter("a")
    assert a.dtype == backend.dtype and backend.owns(a)
    assert layer.get_buffer("calls").dtype == backend.dtype
    with pytest.raises(TypeError, match=r"Scale\(\)\.add_parameter: 'b' must hold real numbers"):
        layer.add_parameter("b", np.array([True]))
    with pytest.raises(ValueError, match="already registered"):
        layer.add_parameter("a", np.ones(4))


def test_buffers_are_saved_loaded_moved_and_never_optimized(backend, tmp_path):
    net = Sequentiel(Linear(4, 4), Scale(4))
    X, y = _x((8, 4)), bp.asarray(np.arange(8) % 4)
    bp.SGD(net, bp.CELogSoftmax(), X, y, batch_size=4, epochs=2, eps=0.1, optimizer="adam")
    calls = _np(net[1].get_buffer("calls")).copy()
    assert calls[0] >= 4  # four steps, never reset by an optimizer
    assert "1.calls" in net.state_dict() and "1.calls" not in dict(net.named_parameters())
    bp.save(net, tmp_path / "s.npz")
    back = bp.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(_np(back[1].get_buffer("calls")), calls)
    net.to(dtype="float64")
    assert net[1].get_buffer("calls").dtype == net[1].backend.xp.float64


# ------------------------------------------------------------------ the new layers


def _gradcheck(net, X):
    assert bp.gradcheck(net, X)


def test_sum_residual_identity_select_gradients(f64):
    _gradcheck(
        Sum(Linear(5, 3), Sequentiel(Linear(5, 3), TanH()), Sequentiel(Linear(5, 3))), _x((4, 5))
    )
    _gradcheck(Residual(Sequentiel(Linear(5, 5), TanH())), _x((4, 5)))
    _gradcheck(Sum(Identity(), Sequentiel(Linear(5, 5), TanH())), _x((4, 5)))
    _gradcheck(Sequentiel(Select(1, -1), Linear(3, 2)), _x((4, 6, 3)))
    _gradcheck(Sequentiel(Select(-1, 0), Linear(6, 2)), _x((4, 6, 3)))


def test_residual_equals_a_hand_sum(f64):
    inner = Sequentiel(Linear(5, 5), TanH())
    X = _x((3, 5))
    np.testing.assert_allclose(_np(Residual(inner).forward(X)), _np(X) + _np(inner.forward(X)))


def test_structural_layers_refuse_bad_shapes(backend):
    with pytest.raises(ValueError, match="must keep its input's shape"):
        Residual(Linear(5, 3)).forward(_x((2, 5)))
    with pytest.raises(ValueError, match="must have the same shape"):
        Sum(Linear(5, 3), Linear(5, 4)).forward(_x((2, 5)))
    with pytest.raises(ValueError, match="out of range"):
        Select(1, 7).forward(_x((2, 5, 3)))
    with pytest.raises(ValueError, match="axis 0 is the batch"):
        Select(0, 1)
    with pytest.raises(ValueError, match="expected at least one branch"):
        Sum()


# ------------------------------------------------------------------ per-call state


def test_one_dropout_at_the_head_of_two_branches_keeps_each_mask(f64):
    drop = Dropout(0.5)
    net = Concat(Sequentiel(drop, Linear(6, 2)), Sequentiel(drop, Linear(6, 3)), axis=1)
    X = _x((5, 6))
    bp.manual_seed(3)
    Y = net.forward(X)
    delta = _x((5, 5), seed=1)
    net.zero_grad()
    gx = net.backward(X, delta)
    # the same network with the masks it drew made explicit: two distinct Dropouts, same draws
    bp.manual_seed(3)
    d1, d2 = Dropout(0.5), Dropout(0.5)
    twin = Concat(
        Sequentiel(d1, net.children()[0][1]), Sequentiel(d2, net.children()[1][1]), axis=1
    )
    np.testing.assert_allclose(_np(twin.forward(X)), _np(Y))
    net.zero_grad()
    np.testing.assert_allclose(_np(twin.backward(X, delta)), _np(gx), atol=1e-12)


def test_a_dropout_used_many_times_in_one_network(backend):
    drop = Dropout(0.2)
    net = Sequentiel(*[m for _ in range(6) for m in (Linear(4, 4), drop)])
    X = _x((3, 4))
    net.forward(X)
    net.backward(X, _x((3, 4), seed=2))  # no "call forward on it first"


# ------------------------------------------------------------------ PyTorch conversion


torch = pytest.importorskip("torch", reason="torch is not installed")


def _torch_cnn():
    nn = torch.nn
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(2, 4, 3), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(4 * 5, 6),
        nn.Tanh(), nn.Dropout(0.1), nn.Linear(6, 3), nn.LogSoftmax(dim=1),
    ).double().eval()  # fmt: skip


def test_from_torch_matches_pytorch_forward_and_gradients(f64):
    tnet = _torch_cnn()
    net = bp.from_torch(tnet, input_shape=(2, 12))
    x = torch.randn(7, 2, 12, dtype=torch.float64, requires_grad=True)
    out = tnet(x)
    X = bp.asarray(x.detach().permute(0, 2, 1).numpy())
    Y = net.forward(X)
    np.testing.assert_allclose(_np(Y), out.detach().numpy(), rtol=0, atol=1e-10)
    g = torch.randn(7, 3, dtype=torch.float64)
    out.backward(g)
    net.zero_grad()
    gx = net.backward(X, bp.asarray(g.numpy()))
    np.testing.assert_allclose(_np(gx), x.grad.permute(0, 2, 1).numpy(), atol=1e-10)
    np.testing.assert_allclose(
        _np(net[0].get_gradient("weight")), tnet[0].weight.grad.permute(2, 1, 0).numpy(), atol=1e-10
    )
    np.testing.assert_allclose(
        _np(net[7].get_gradient("weight")), tnet[7].weight.grad.T.numpy(), atol=1e-10
    )


def test_to_torch_round_trip(f64):
    net = Sequentiel(Conv1D(3, 2, 4), ReLU(), MaxPool1D(2), Flatten(), Linear(20, 3))
    tnet = bp.to_torch(net, input_shape=(12, 2))
    X = _x((5, 12, 2))
    expected = _np(net.forward(X))
    got = tnet(torch.from_numpy(np.array(_np(X))).permute(0, 2, 1)).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-10)
    again = bp.from_torch(tnet, input_shape=(2, 12))
    np.testing.assert_allclose(_np(again.forward(X)), expected, atol=1e-10)


def test_embedding_and_identity_convert(f64):
    nn = torch.nn
    tnet = nn.Sequential(nn.Embedding(7, 3), nn.Identity(), nn.Flatten(), nn.Linear(6, 2)).double()
    net = bp.from_torch(tnet)
    idx = np.array([[1, 6], [0, 0], [3, 2]])
    np.testing.assert_allclose(
        _np(net.forward(bp.asarray(idx))), tnet(torch.from_numpy(idx)).detach().numpy(), atol=1e-12
    )


def test_unsupported_torch_modules_are_named():
    nn = torch.nn
    with pytest.raises(ValueError, match="cannot convert Bilinear"):
        bp.from_torch(nn.Sequential(nn.Bilinear(2, 2, 2)))
    with pytest.raises(ValueError, match="padding_idx=0 is not supported"):
        bp.from_torch(nn.Embedding(4, 2, padding_idx=0))
    with pytest.raises(ValueError, match="needs the sample shape"):
        bp.from_torch(nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)))
    with pytest.raises(ValueError, match="has no PyTorch counterpart"):
        bp.to_torch(Sequentiel(Linear(3, 3), Select(1, 0)))


# ------------------------------------------------------------------ ONNX


def test_new_layers_export_to_onnx(tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    net = Sequentiel(
        Residual(Sequentiel(Linear(6, 6), TanH())),
        Sum(Identity(), Linear(6, 6)),
        bp.Reshape((3, 2)),
        Select(1, -1),
        Linear(2, 2),
    )
    bp.export_onnx(net, tmp_path / "n.onnx", (6,))
    X = np.random.default_rng(0).normal(size=(7, 6)).astype(np.float32)
    got = ort.InferenceSession(str(tmp_path / "n.onnx")).run(None, {"input": X})[0]
    np.testing.assert_allclose(got, _np(net.forward(bp.asarray(X))), atol=1e-5)


def test_a_tensor_that_requires_grad_leaves_no_graph_in_the_parameters():
    with bp.use_backend("torch"):
        net = Sequentiel(Linear(3, 2), TanH())
        x = torch.randn(4, 3, requires_grad=True)
        net.forward(x)
        net.backward(x, torch.ones(4, 2))
        net.update_parameters(0.1)
        layer = Linear(3, 2)
        layer.backward_update_gradient(x, torch.ones(4, 2))
        layer.update_parameters(0.1)
        for m in (net[0], layer):
            assert m.get_parameter("weight").grad_fn is None
            assert not m.get_parameter("weight").requires_grad


def test_moving_a_tied_autoencoder_moves_every_array(backend):
    ae = bp.build_autoencoder((6, 4, 2), tied=True).network
    ae.to(dtype="float64")
    for m, k in ae.parameter_slots():
        assert m.get_parameter(k).dtype == m.backend.xp.float64, (m, k)
        assert m.get_gradient(k).dtype == m.backend.xp.float64, (m, k)
    torch = pytest.importorskip("torch", reason="torch is not installed")
    ae.to("torch")
    for m, k in ae.parameter_slots():
        assert isinstance(m.get_parameter(k), torch.Tensor), (m, k)
    ae.zero_grad()  # no AttributeError from an array left behind
    X = bp.asarray(np.random.default_rng(0).random((3, 6)), backend=ae[0][0].backend)
    ae.forward(X)
