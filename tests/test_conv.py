import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backprop as bp
from conftest import assert_close, assert_like, try_torch

HYPO = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def naive_conv1d(x, w, b, stride):
    n, length, _ = x.shape
    k, _, c_out = w.shape
    l_out = (length - k) // stride + 1
    out = np.zeros((n, l_out, c_out))
    for i in range(l_out):
        out[:, i] = np.einsum("nkc,kco->no", x[:, i * stride : i * stride + k], w)
    return out + b


def test_forward_against_naive_loop(backend, rng):
    conv = bp.Conv1D(3, 2, 4, stride=2)
    x = rng.normal(size=(3, 11, 2))
    out = conv(bp.asarray(x))
    assert_like(out, backend, (3, 5, 4))
    w, b = (bp.to_numpy(conv._parameters[k]) for k in ("weight", "bias"))
    assert_close(out, naive_conv1d(x, w, b, 2), backend, rtol=1e-5, atol=1e-5)


def test_forward_by_hand(backend):
    conv = bp.Conv1D(2, 1, 1, bias=False)
    conv._parameters["weight"] = bp.asarray([[[1.0]], [[-1.0]]])
    out = conv(bp.asarray([[[1.0], [4.0], [9.0], [16.0]]]))
    assert_close(out, [[[-3.0], [-5.0], [-7.0]]], backend)


def test_init(backend):
    conv = bp.Conv1D(3, 4, 8)
    w = bp.to_numpy(conv._parameters["weight"])
    assert w.shape == (3, 4, 8) and np.abs(w).max() <= 1 / np.sqrt(12)
    assert bp.to_numpy(conv._parameters["bias"]).shape == (8,)
    assert tuple(bp.Conv2D((3, 2), 4, 5)._parameters["weight"].shape) == (3, 2, 4, 5)


@pytest.mark.parametrize("k,stride", [(3, 1), (3, 2), (3, 3), (2, 3), (3, 5), (1, 1), (4, 3)])
@pytest.mark.parametrize("chan_in,chan_out,n", [(1, 1, 1), (2, 3, 2)])
def test_conv1d_gradcheck(f64, rng, k, stride, chan_in, chan_out, n):
    # length 11 is not a multiple of the strides: the tail must get zero gradient
    conv = bp.Conv1D(k, chan_in, chan_out, stride=stride)
    assert bp.gradcheck(conv, bp.asarray(rng.normal(size=(n, 11, chan_in))))


@pytest.mark.parametrize("k,stride", [(3, 1), ((2, 3), (2, 1)), (2, 2), ((3, 1), 3)])
def test_conv2d_gradcheck(f64, rng, k, stride):
    conv = bp.Conv2D(k, 2, 3, stride=stride)
    assert bp.gradcheck(conv, bp.asarray(rng.normal(size=(2, 7, 6, 2))))


def test_input_gradient_is_zero_where_no_window_reads(f64, rng):
    conv = bp.Conv1D(2, 1, 1, stride=3)
    x = bp.asarray(rng.normal(size=(1, 10, 1)))
    g = bp.to_numpy(conv.backward_delta(x, bp.asarray(np.ones((1, 3, 1)))))[0, :, 0]
    np.testing.assert_array_equal(g[[2, 5, 8, 9]], 0.0)
    assert np.all(g[[0, 1, 3, 4, 6, 7]] != 0)


def test_accumulation(backend, rng):
    conv = bp.Conv1D(3, 2, 2)
    x, d = bp.asarray(rng.normal(size=(2, 8, 2))), bp.asarray(rng.normal(size=(2, 6, 2)))
    conv.backward_update_gradient(x, d)
    once = bp.to_numpy(conv._gradient["weight"]).copy()
    conv.backward_update_gradient(x, d)
    assert_close(conv._gradient["weight"], 2 * once, backend, rtol=1e-5)
    conv.zero_grad()
    assert not bp.to_numpy(conv._gradient["weight"]).any()


@given(length=st.integers(1, 64), data=st.data())
@settings(max_examples=200, deadline=None)
def test_output_length_formula(length, data):
    k = data.draw(st.integers(1, length))
    stride = data.draw(st.integers(1, 8))
    with bp.use_backend("numpy"):
        conv = bp.Conv1D(k, 1, 1, stride=stride)
        out = conv(bp.asarray(np.zeros((1, length, 1))))
    assert out.shape[1] == (length - k) // stride + 1 >= 1
    assert len(range(0, length - k + 1, stride)) == out.shape[1]


def test_errors(backend):
    conv = bp.Conv1D(5, 2, 3)
    with pytest.raises(
        ValueError,
        match=r"Conv1D\(k=5, 2 -> 3, stride=1\)\.forward: "
        r"input length 3 is shorter than kernel_size 5",
    ):
        conv(bp.asarray(np.zeros((1, 3, 2))))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, L, 2\), got \(1, 8, 3\)"):
        conv(bp.asarray(np.zeros((1, 8, 3))))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, L, 2\), got \(8, 2\)"):
        conv(bp.asarray(np.zeros((8, 2))))
    with pytest.raises(
        ValueError, match=r"expected delta of the output's shape \(1, 4, 3\), got \(1, 5, 3\)"
    ):
        conv.backward_delta(bp.asarray(np.zeros((1, 8, 2))), bp.asarray(np.zeros((1, 5, 3))))
    with pytest.raises(ValueError, match="input width 2 is shorter than kernel_size 3"):
        bp.Conv2D(3, 1, 1)(bp.asarray(np.zeros((1, 5, 2, 1))))
    for bad in (
        {"k_size": 0},
        {"stride": 0},
        {"chan_in": 1.5},
        {"chan_out": -1},
        {"k_size": (2, 2)},
    ):
        args = {"k_size": 3, "chan_in": 1, "chan_out": 1, **bad}
        with pytest.raises(ValueError, match="must be"):
            bp.Conv1D(**args)


def _torch_conv(torch, x, w, b, stride, d):
    F = torch.nn.functional
    if d == 1:
        out = F.conv1d(x.permute(0, 2, 1), w.permute(2, 1, 0).contiguous(), b, stride=stride)
        return out.permute(0, 2, 1)
    out = F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1).contiguous(), b, stride=stride)
    return out.permute(0, 2, 3, 1)


def _parity(f64, torch, layer, x, d):
    w0, b0 = (bp.to_numpy(layer._parameters[k]) for k in ("weight", "bias"))
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w0, requires_grad=True)
    tb = torch.tensor(b0, requires_grad=True)
    ty = _torch_conv(torch, tx, tw, tb, layer.stride if d == 2 else layer.stride[0], d)
    delta = np.random.default_rng(0).normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(delta))
    X = bp.asarray(x)
    assert_close(layer(X), ty.detach().numpy(), f64, rtol=1e-10, atol=1e-10)
    layer.backward_update_gradient(X, bp.asarray(delta))
    assert_close(layer._gradient["weight"], tw.grad.numpy(), f64, rtol=1e-10, atol=1e-10)
    assert_close(layer._gradient["bias"], tb.grad.numpy(), f64, rtol=1e-10, atol=1e-10)
    assert_close(
        layer.backward_delta(X, bp.asarray(delta)), tx.grad.numpy(), f64, rtol=1e-10, atol=1e-10
    )


@pytest.mark.random_shapes
@HYPO
@given(data=st.data())
def test_conv1d_torch_parity(f64, data):
    torch = try_torch()
    n, length = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 20))
    k, stride = data.draw(st.integers(1, length)), data.draw(st.integers(1, 5))
    c_in, c_out = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    x = np.random.default_rng(data.draw(st.integers(0, 9999))).normal(size=(n, length, c_in))
    _parity(f64, torch, bp.Conv1D(k, c_in, c_out, stride=stride), x, 1)


@pytest.mark.random_shapes
@HYPO
@given(data=st.data())
def test_conv2d_torch_parity(f64, data):
    torch = try_torch()
    n, h, w = (
        data.draw(st.integers(1, 2)),
        data.draw(st.integers(1, 9)),
        data.draw(st.integers(1, 9)),
    )
    kh, kw = data.draw(st.integers(1, h)), data.draw(st.integers(1, w))
    sh, sw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    c_in, c_out = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    x = np.random.default_rng(data.draw(st.integers(0, 9999))).normal(size=(n, h, w, c_in))
    _parity(f64, torch, bp.Conv2D((kh, kw), c_in, c_out, stride=(sh, sw)), x, 2)
