"""padding= on Conv1D/Conv2D and on the max and average pools (backprop/conv.py, pooling.py,
_windowed.py): finite differences, PyTorch parity, ONNX, save/load and hostile arguments."""

import numpy as np
import pytest

import backprop as bp
from conftest import assert_close, assert_like, try_torch

TIGHT = {"rtol": 1e-10, "atol": 1e-10}
POOLS = {
    "MaxPool1D": (bp.MaxPool1D, 1),
    "AvgPool1D": (bp.AvgPool1D, 1),
    "MaxPool2D": (bp.MaxPool2D, 2),
    "AvgPool2D": (bp.AvgPool2D, 2),
}
# (k, stride, padding): 'same' with odd and even kernels (PyTorch puts the extra zero at the
# end), symmetric padding with a stride, a kernel longer than the input once unpadded
CONV_1D = [(3, 1, "same"), (4, 1, "same"), (3, 2, 1), (5, 1, 2), (2, 3, 1)]
CONV_2D = [((3, 2), 1, "same"), (3, (2, 1), (1, 2)), ((2, 4), 2, (0, 1))]


def _cf(d):
    return ((0, 2, 1), (0, 2, 1)) if d == 1 else ((0, 3, 1, 2), (0, 2, 3, 1))


def test_conv_forward_by_hand(backend):
    conv = bp.Conv1D(3, 1, 1, padding=1, bias=False)
    conv.set_parameter("weight", bp.asarray([[[1.0]], [[10.0]], [[100.0]]]))
    out = conv(bp.asarray([[[1.0], [2.0], [3.0]]]))
    assert_like(out, backend, (1, 3, 1))
    # zeros at both ends: [0, 1, 2, 3, 0]
    assert_close(out, [[[210.0], [321.0], [32.0]]], backend)
    same = bp.Conv1D(2, 1, 1, padding="same", bias=False)
    same.set_parameter("weight", bp.asarray([[[1.0]], [[10.0]]]))
    # an even kernel's one zero goes at the end: [1, 2, 3, 0]
    assert_close(same(bp.asarray([[[1.0], [2.0], [3.0]]])), [[[21.0], [32.0], [3.0]]], backend)


def test_pool_forward_by_hand(backend):
    x = bp.asarray([[[-1.0], [-2.0], [-3.0]]])
    # -inf padding never wins a max; zeros count in the mean
    assert_close(bp.MaxPool1D(2, padding=1)(x), [[[-1.0], [-2.0]]], backend)
    assert_close(bp.AvgPool1D(2, padding=1)(x), [[[-0.5], [-2.5]]], backend)
    g = bp.AvgPool1D(2, padding=1).backward_delta(x, bp.asarray([[[2.0], [4.0]]]))
    assert_close(g, [[[1.0], [2.0], [2.0]]], backend)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_same_keeps_the_size(backend, k):
    x = bp.asarray(np.ones((2, 6, 5, 1)))
    assert tuple(bp.Conv2D(k, 1, 2, padding="same")(x).shape) == (2, 6, 5, 2)
    assert tuple(bp.Conv1D(k, 1, 2, padding="same")(x[:, :, 0, :]).shape) == (2, 6, 2)
    assert bp.Conv2D((k, 1), 1, 2, padding="same").output_shape((3, 6, 5, 1)) == (3, 6, 5, 2)


@pytest.mark.parametrize("k,stride,padding", [(4, 1, "same"), (3, 2, 1), (2, 3, 1)])
def test_conv1d_gradcheck(f64, rng, k, stride, padding):
    conv = bp.Conv1D(k, 2, 2, stride=stride, padding=padding)
    assert bp.gradcheck(conv, bp.asarray(rng.normal(size=(2, 4, 2))))


@pytest.mark.parametrize("k,stride,padding", CONV_2D[:2])
def test_conv2d_gradcheck(f64, rng, k, stride, padding):
    conv = bp.Conv2D(k, 1, 2, stride=stride, padding=padding)
    assert bp.gradcheck(conv, bp.asarray(rng.normal(size=(2, 3, 4, 1))))


@pytest.mark.parametrize("name", POOLS)
@pytest.mark.parametrize("k,stride,padding", [(3, 2, 1)])
def test_pool_gradcheck(f64, rng, name, k, stride, padding):
    cls, d = POOLS[name]
    shape = (2, 5, 2) if d == 1 else (1, 4, 5, 2)
    # distinct negative values: no ties, and a zero padding would win every max at the border
    x = -(rng.permutation(np.prod(shape)).reshape(shape) + 1.0) * 0.1
    assert bp.gradcheck(cls(k, stride, padding), bp.asarray(x))


def _torch_conv(torch, d, x, w, b, stride, padding, delta):
    F = torch.nn.functional
    to_cf, to_cl = _cf(d)
    tx = torch.tensor(x, requires_grad=True)
    # (*kernel, C_in, C_out) -> (C_out, C_in, *kernel)
    tw = torch.tensor(np.ascontiguousarray(np.moveaxis(w, (d, d + 1), (1, 0))), requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    f = F.conv1d if d == 1 else F.conv2d
    ty = f(tx.permute(*to_cf), tw, tb, stride=stride, padding=padding).permute(*to_cl)
    ty.backward(torch.tensor(delta))
    w_grad = np.moveaxis(tw.grad.numpy(), (1, 0), (d, d + 1))
    return ty.detach().numpy(), tx.grad.numpy(), w_grad, tb.grad.numpy()


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("d,config", [(1, c) for c in CONV_1D] + [(2, c) for c in CONV_2D])
def test_conv_torch_parity(f64, rng, d, config):
    """Forward, input, weight and bias gradients against torch.nn.functional.conv1d/conv2d with
    the same padding, in float64."""
    torch = try_torch()
    k, stride, padding = config
    conv = (bp.Conv1D if d == 1 else bp.Conv2D)(k, 2, 3, stride=stride, padding=padding)
    x = rng.normal(size=(2, 5, 2) if d == 1 else (2, 4, 5, 2))
    delta = rng.normal(size=conv.output_shape(x.shape))
    w, b = (bp.to_numpy(conv.get_parameter(key)) for key in ("weight", "bias"))
    y, dx, dw, db = _torch_conv(torch, d, x, w, b, stride, padding, delta)
    X, D = bp.asarray(x), bp.asarray(delta)
    assert_close(conv(X), y, f64, **TIGHT)
    assert_close(conv.backward(X, D), dx, f64, **TIGHT)
    assert_close(conv.get_gradient("weight"), dw, f64, **TIGHT)
    assert_close(conv.get_gradient("bias"), db, f64, **TIGHT)
    # the internal pair (a container's path) gives the same
    conv.zero_grad()
    net = bp.Sequential(conv)
    assert_close(net(X), y, f64, **TIGHT)
    assert_close(net.backward(X, D), dx, f64, **TIGHT)
    assert_close(conv.get_gradient("weight"), dw, f64, **TIGHT)


def _torch_pool(torch, name, x, k, s, p):
    F = torch.nn.functional
    d = 1 if name.endswith("1D") else 2
    to_cf, to_cl = _cf(d)
    f = {
        "MaxPool1D": F.max_pool1d,
        "AvgPool1D": F.avg_pool1d,
        "MaxPool2D": F.max_pool2d,
        "AvgPool2D": F.avg_pool2d,
    }[name]
    return f(x.permute(*to_cf), k, s, p).permute(*to_cl)


@pytest.mark.parametrize("name", POOLS)
@pytest.mark.parametrize("k,stride,padding", [(3, 1, 1), (4, 3, 2), ((3, 2), 2, (1, 0))])
def test_pool_torch_parity_with_ties(f64, rng, name, k, stride, padding):
    torch = try_torch()
    cls, d = POOLS[name]
    if d == 1 and isinstance(k, tuple):
        k, padding = k[0], padding[0]
    shape = (2, 7, 2) if d == 1 else (2, 5, 6, 2)
    # few distinct values, negative ones among them: ties, and maxima below the zero padding
    x = rng.integers(-3, 1, size=shape).astype(np.float64)
    x[0, 1, ...] = -np.inf  # windows of -inf too: their gradient goes to an input, not padding
    tx = torch.tensor(x, requires_grad=True)
    ty = _torch_pool(torch, name, tx, k, stride, padding)
    delta = rng.normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(delta))
    layer = cls(k, stride, padding)
    X = bp.asarray(x)
    assert layer.output_shape(shape) == tuple(ty.shape)
    assert_close(layer(X), ty.detach().numpy(), f64, **TIGHT)
    assert_close(layer.backward_delta(X, bp.asarray(delta)), tx.grad.numpy(), f64, **TIGHT)
    # the internal pair (max-pool keeps its output for the backward mask)
    net = bp.Sequential(layer)
    assert_close(net(X), ty.detach().numpy(), f64, **TIGHT)
    assert_close(net.backward(X, bp.asarray(delta)), tx.grad.numpy(), f64, **TIGHT)


def test_onnx_export_with_padding(rng, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    with bp.use_backend("numpy"):
        bp.manual_seed(0)
        nets = {
            (9, 2): bp.Sequential(
                bp.Conv1D(4, 2, 3, padding="same"),  # asymmetric pads (1, 2)
                bp.ReLU(),
                bp.MaxPool1D(3, 2, padding=1),
                bp.AvgPool1D(2, padding=1),  # the zeros count in the mean
                bp.Conv1D(3, 3, 2, stride=2, padding=2),
            ),
            (5, 6, 1): bp.Sequential(
                bp.Conv2D((3, 2), 1, 3, padding=(1, 2)),
                bp.TanH(),
                bp.AvgPool2D(2, padding=(1, 0)),
                bp.MaxPool2D(3, 1, padding=1),
                bp.Conv2D(2, 3, 2, padding="same"),
            ),
        }
        for sample, net in nets.items():
            path = tmp_path / "net.onnx"
            bp.export_onnx(net, path, sample)
            session = ort.InferenceSession(str(path))
            for n in (1, 7):
                x = -np.abs(rng.normal(size=(n, *sample))).astype(np.float32)
                (got,) = session.run(None, {"input": x})
                expected = bp.to_numpy(net(bp.asarray(x)))
                assert got.shape == expected.shape
                np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_save_load_and_repr(backend, rng, tmp_path):
    net = bp.Sequential(
        bp.Conv2D(2, 1, 2, padding="same"),
        bp.MaxPool2D(2, padding=(1, 0)),
        bp.Conv2D((3, 1), 2, 2, padding=(1, 0), bias=False),
        bp.AvgPool2D(3, 1, padding=1),
    )
    assert repr(net[0]) == "Conv2D(k=(2, 2), 1 -> 2, stride=(1, 1), padding='same')"
    assert repr(net[1]) == "MaxPool2D(k=(2, 2), stride=(2, 2), padding=(1, 0))"
    assert repr(bp.Conv1D(3, 1, 1, padding=2)) == "Conv1D(k=3, 1 -> 1, stride=1, padding=2)"
    assert repr(bp.AvgPool1D(2)) == "AvgPool1D(k=2, stride=2)"
    assert net[0].get_config()["padding"] == "same"
    assert net[1].get_config()["padding"] == [1, 0]
    assert bp.Conv1D(3, 1, 1, padding=1).get_config()["padding"] == 1
    path = tmp_path / "net.npz"
    bp.save(net, path)
    again = bp.load(path)
    assert repr(again) == repr(net)
    x = bp.asarray(rng.normal(size=(2, 5, 4, 1)))
    np.testing.assert_array_equal(bp.to_numpy(again(x)), bp.to_numpy(net(x)))
    text = net.summary((5, 4, 1))
    assert "(N, 5, 4, 2)" in text and "(N, 3, 2, 2)" in text


def test_padding_lets_a_short_input_through(backend):
    conv = bp.Conv1D(5, 1, 1, padding=2)
    assert tuple(conv(bp.asarray(np.ones((1, 1, 1)))).shape) == (1, 1, 1)
    with pytest.raises(
        ValueError,
        match=r"Conv1D\(k=5, 1 -> 1, stride=1, padding=1\)\.forward: input length 2 with "
        r"padding 1 \+ 1 is shorter than kernel_size 5",
    ):
        bp.Conv1D(5, 1, 1, padding=1)(bp.asarray(np.ones((1, 2, 1))))
    with pytest.raises(ValueError, match="input width 1 with padding 0 \\+ 0 is shorter"):
        bp.Conv2D(3, 1, 1, padding=(1, 0))(bp.asarray(np.ones((1, 3, 1, 1))))
    with pytest.raises(ValueError, match="MaxPool2D.*input height 1 with padding 1 \\+ 1"):
        bp.MaxPool2D(4, padding=(1, 2))(bp.asarray(np.ones((1, 1, 9, 1))))


def test_padding_errors():
    for bad in (-1, 1.5, True, "valid", "SAME", (1, 1), None):
        with pytest.raises(ValueError, match=r"Conv1D: padding must be"):
            bp.Conv1D(3, 1, 1, padding=bad)
    with pytest.raises(ValueError, match=r"Conv2D: padding must be an int or 2 ints"):
        bp.Conv2D(3, 1, 1, padding=(1, 1, 1))
    with pytest.raises(ValueError, match=r"Conv1D: padding='same' needs stride 1"):
        bp.Conv1D(3, 1, 1, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"Conv2D: padding='same' needs stride 1"):
        bp.Conv2D(3, 1, 1, stride=(1, 2), padding="same")
    for name, (cls, _) in POOLS.items():
        with pytest.raises(
            ValueError, match=f"{name}: padding (2|\\(2, 2\\)) must be at most half"
        ):
            cls(3, padding=2)
        with pytest.raises(ValueError, match=f"{name}: padding must be"):
            cls(3, padding="same")
        with pytest.raises(ValueError, match=f"{name}: padding must be"):
            cls(3, padding=-1)
    with pytest.raises(ValueError, match=r"MaxPool2D: padding \(1, 2\) must be at most half"):
        bp.MaxPool2D((2, 3), padding=(1, 2))
    assert bp.MaxPool2D((2, 4), padding=(1, 2)).pads == ((1, 1), (2, 2))


def test_empty_batch_pools(backend):
    for cls, d in POOLS.values():
        shape = (0, 5, 2) if d == 1 else (0, 4, 5, 2)
        layer = cls(3, 2, padding=1)
        x = bp.asarray(np.zeros(shape))
        out = layer(x)
        assert_like(out, backend, layer.output_shape(shape))
        assert_like(layer.backward_delta(x, bp.asarray(np.zeros(tuple(out.shape)))), backend, shape)


def test_nan_passes_through_padding(backend):
    x = np.zeros((1, 4, 1))
    x[0, 0, 0] = np.nan
    for layer in (bp.Conv1D(3, 1, 1, padding=1), bp.AvgPool1D(3, 1, padding=1)):
        out = bp.to_numpy(layer(bp.asarray(x)))[0, :, 0]
        np.testing.assert_array_equal(np.isnan(out), [True, True, False, False])
    out = bp.to_numpy(bp.MaxPool1D(3, 1, padding=1)(bp.asarray(x)))[0, :, 0]
    np.testing.assert_array_equal(np.isnan(out), [True, True, False, False])


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_from_torch_and_back_with_padding(f64, rng):
    """Padded torch convolutions and pools through bp.from_torch (forward, input and parameter
    gradients in float64) and back through bp.to_torch."""
    torch = try_torch()
    nn = torch.nn
    torch.manual_seed(0)
    tnet = nn.Sequential(
        nn.Conv1d(2, 3, 4, padding="same"),
        nn.ReLU(),
        nn.MaxPool1d(3, stride=2, padding=1),
        nn.Conv1d(3, 3, 3, stride=2, padding=2),
        nn.AvgPool1d(2, padding=1),
        nn.Conv1d(3, 2, 2, padding="valid"),
    ).double()
    net = bp.from_torch(tnet)
    assert net[0].padding == "same" and net[2].padding == (1,) and net[5].padding == (0,)
    x = -np.abs(rng.normal(size=(3, 9, 2)))
    tx = torch.tensor(x, requires_grad=True)
    ty = tnet(tx.permute(0, 2, 1)).permute(0, 2, 1)
    delta = rng.normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(delta))
    X = bp.asarray(x)
    assert_close(net(X), ty.detach().numpy(), f64, **TIGHT)
    assert_close(net.backward(X, bp.asarray(delta)), tx.grad.numpy(), f64, **TIGHT)
    for i in (0, 3):
        w = tnet[i].weight.grad.permute(2, 1, 0).numpy()
        assert_close(net[i].get_gradient("weight"), w, f64, **TIGHT)
        assert_close(net[i].get_gradient("bias"), tnet[i].bias.grad.numpy(), f64, **TIGHT)
    back = bp.to_torch(net)
    assert back[0].padding == "same" and back[2].padding == 1 and back[3].padding == (2,)
    got = back(torch.tensor(x).permute(0, 2, 1)).permute(0, 2, 1).detach().numpy()
    np.testing.assert_allclose(got, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    two_d = nn.Sequential(nn.Conv2d(1, 2, (3, 2), padding=(1, 0)), nn.MaxPool2d(2, padding=(1, 0)))
    net2 = bp.from_torch(two_d.double())
    x2 = rng.normal(size=(2, 5, 4, 1))
    expected = two_d(torch.tensor(x2).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
    assert_close(net2(bp.asarray(x2)), expected, f64, **TIGHT)
    assert bp.to_torch(net2)[1].padding == (1, 0)
    with pytest.raises(ValueError, match="count_include_pad=False is not supported"):
        bp.from_torch(nn.AvgPool1d(3, padding=1, count_include_pad=False))
