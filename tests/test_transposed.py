"""ConvTranspose1D, ConvTranspose2D and Upsample (backprop/transposed.py)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backprop as bp
from conftest import assert_close, assert_like, try_torch

TIGHT = {"rtol": 1e-10, "atol": 1e-10}
# (k, stride, padding, output_padding): plain, strided with a crop and an extra tail,
# stride > kernel (gaps), a crop larger than half the kernel, a 1x1 kernel
CONFIGS_1D = [(3, 1, 0, 0), (3, 2, 1, 1), (2, 3, 0, 2), (5, 2, 3, 1), (1, 1, 0, 0)]
CONFIGS_2D = [
    (3, 1, 0, 0),
    ((3, 2), (2, 1), (1, 0), (1, 0)),
    (2, (3, 2), 0, (2, 1)),
    ((4, 3), 2, (2, 1), 1),
]


def _cls(d):
    return bp.ConvTranspose1D if d == 1 else bp.ConvTranspose2D


def _cf(d):
    """channels-last -> channels-first permutation, and back."""
    return ((0, 2, 1), (0, 2, 1)) if d == 1 else ((0, 3, 1, 2), (0, 2, 3, 1))


def naive_conv_transpose(x, w, b, stride, padding, output_padding):
    """Loops over every input position: o[i * s + j - p] += w[j] x[i] (2-D, channels last)."""
    n, h, wd, _ = x.shape
    kh, kw, _, c_out = w.shape
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, output_padding
    full = np.zeros((n, (h - 1) * sh + kh + oh, (wd - 1) * sw + kw + ow, c_out))
    for i in range(h):
        for j in range(wd):
            full[:, i * sh : i * sh + kh, j * sw : j * sw + kw] += np.einsum(
                "nc,abco->nabo", x[:, i, j], w
            )
    out = full[:, ph : full.shape[1] - ph, pw : full.shape[2] - pw]
    return out + (0 if b is None else b)


def torch_reference(torch, d, x, w, b, stride, padding, output_padding, delta):
    """Output and gradients (input, weight, bias) from torch.nn.functional, channels last, with
    the weight in the library's layout."""
    to_cf, to_cl = _cf(d)
    tx = torch.tensor(x, requires_grad=True)
    # (*kernel, C_in, C_out) -> (C_in, C_out, *kernel)
    tw = torch.tensor(np.ascontiguousarray(np.moveaxis(w, (d, d + 1), (0, 1))), requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    f = torch.nn.functional.conv_transpose1d if d == 1 else torch.nn.functional.conv_transpose2d
    ty = f(
        tx.permute(*to_cf), tw, tb, stride=stride, padding=padding, output_padding=output_padding
    ).permute(*to_cl)
    if delta is None:
        return ty.detach().numpy(), None
    ty.backward(torch.tensor(delta))
    grads = {"input": tx.grad.numpy(), "weight": np.moveaxis(tw.grad.numpy(), (0, 1), (d, d + 1))}
    if tb is not None:
        grads["bias"] = tb.grad.numpy()
    return ty.detach().numpy(), grads


def test_forward_by_hand(backend):
    layer = bp.ConvTranspose1D(2, 1, 1, bias=False)
    layer.set_parameter("weight", bp.asarray([[[1.0]], [[10.0]]]))
    x = bp.asarray([[[1.0], [2.0], [3.0]]])
    out = layer(x)
    assert_like(out, backend, (1, 4, 1))
    assert_close(out, [[[1.0], [12.0], [23.0], [30.0]]], backend)
    # stride 2: the windows do not overlap; each input spreads [x, 10 x]
    strided = bp.ConvTranspose1D(2, 1, 1, stride=2, output_padding=1)
    strided.set_parameter("weight", bp.asarray([[[1.0]], [[10.0]]]))
    strided.set_parameter("bias", bp.asarray([0.5]))
    expected = [1.5, 10.5, 2.5, 20.5, 3.5, 30.5, 0.5]  # output_padding's tail holds the bias
    assert_close(strided(x), np.array(expected).reshape(1, 7, 1), backend)
    # padding crops the output at both ends
    cropped = bp.ConvTranspose1D(2, 1, 1, padding=1, bias=False)
    cropped.set_parameter("weight", bp.asarray([[[1.0]], [[10.0]]]))
    assert_close(cropped(x), [[[12.0], [23.0]]], backend)


def test_forward_against_naive_loop(backend, rng):
    layer = bp.ConvTranspose2D((3, 2), 2, 3, stride=(2, 3), padding=(1, 0), output_padding=(1, 2))
    x = rng.normal(size=(2, 3, 4, 2))
    out = layer(bp.asarray(x))
    w, b = (bp.to_numpy(layer.get_parameter(k)) for k in ("weight", "bias"))
    expected = naive_conv_transpose(x, w, b, (2, 3), (1, 0), (1, 2))
    assert_like(out, backend, expected.shape)
    assert layer.output_shape((2, 3, 4, 2)) == expected.shape
    assert_close(out, expected, backend, rtol=1e-5, atol=1e-5)


def test_init_and_layout(backend):
    layer = bp.ConvTranspose2D((3, 2), 4, 5)
    w = bp.to_numpy(layer.get_parameter("weight"))
    assert w.shape == (3, 2, 4, 5)
    # PyTorch's default bound: 1 / sqrt(fan_in) with fan_in = chan_out * kernel
    assert np.abs(w).max() <= 1 / np.sqrt(5 * 6)
    assert tuple(layer.get_parameter("bias").shape) == (5,)
    assert "bias" not in bp.ConvTranspose1D(3, 2, 2, bias=False)._parameters
    config = {"k_size": [3, 2], "chan_in": 4, "chan_out": 5, "bias": True}
    assert bp.ConvTranspose2D.state_shapes(config) == {"weight": (3, 2, 4, 5), "bias": (5,)}


@pytest.mark.parametrize(
    "k,stride,padding,output_padding,bias",
    [(3, 1, 0, 0, True), (3, 2, 1, 1, False), (2, 3, 0, 2, True), (5, 2, 3, 1, True)],
)
def test_gradcheck_1d(f64, rng, k, stride, padding, output_padding, bias):
    layer = bp.ConvTranspose1D(k, 2, 3, stride, padding, output_padding, bias)
    assert bp.gradcheck(layer, bp.asarray(rng.normal(size=(2, 3, 2))))


@pytest.mark.parametrize("k,stride,padding,output_padding", CONFIGS_2D[1:])
def test_gradcheck_2d(f64, rng, k, stride, padding, output_padding):
    layer = bp.ConvTranspose2D(k, 1, 2, stride, padding, output_padding)
    assert bp.gradcheck(layer, bp.asarray(rng.normal(size=(2, 2, 3, 1))))


def test_gradcheck_inside_a_network(f64, rng):
    """chain_forward/chain_backward: a strided encoder and its transposed decoder."""
    net = bp.Sequential(
        bp.Conv2D(3, 1, 2, stride=2, padding=1),
        bp.TanH(),
        bp.ConvTranspose2D(3, 2, 1, stride=2, padding=1, output_padding=1),
        bp.Upsample((1, 2)),
    )
    x = bp.asarray(rng.normal(size=(2, 4, 2, 1)))
    assert tuple(net(x).shape) == (2, 4, 4, 1)
    assert bp.gradcheck(net, x)


def test_accumulation(backend, rng):
    layer = bp.ConvTranspose1D(3, 2, 2, stride=2, padding=1)
    x, d = bp.asarray(rng.normal(size=(2, 5, 2))), bp.asarray(rng.normal(size=(2, 9, 2)))
    layer.backward_update_gradient(x, d)
    once = {k: bp.to_numpy(layer.get_gradient(k)).copy() for k in ("weight", "bias")}
    layer.backward(x, d)
    for key, value in once.items():
        assert_close(layer.get_gradient(key), 2 * value, backend, rtol=1e-5)
    layer.zero_grad()
    assert not bp.to_numpy(layer.get_gradient("weight")).any()


@pytest.mark.parametrize(
    "d,config", [(1, c) for c in CONFIGS_1D] + [(2, c) for c in CONFIGS_2D[1:]]
)
def test_torch_functional_parity(f64, rng, d, config):
    """Forward, input gradient and every parameter gradient against
    torch.nn.functional.conv_transpose1d/2d in float64, on every backend."""
    torch = try_torch()
    k, stride, padding, output_padding = config
    layer = _cls(d)(k, 3, 2, stride, padding, output_padding)
    x = rng.normal(size=(2, 4, 3) if d == 1 else (2, 3, 4, 3))
    w, b = (bp.to_numpy(layer.get_parameter(key)) for key in ("weight", "bias"))
    delta = rng.normal(size=layer.output_shape(x.shape))
    expected, grads = torch_reference(torch, d, x, w, b, stride, padding, output_padding, delta)
    X, D = bp.asarray(x), bp.asarray(delta)
    assert_close(layer(X), expected, f64, **TIGHT)
    assert_close(layer.backward(X, D), grads["input"], f64, **TIGHT)
    for key in ("weight", "bias"):
        assert_close(layer.get_gradient(key), grads[key], f64, **TIGHT)


@pytest.mark.parametrize("d", [1, 2])
def test_from_torch_parity(f64, rng, d):
    """Through bp.from_torch: forward, input gradient and every parameter gradient in float64;
    bp.to_torch gives the module back."""
    torch = try_torch()
    nn = torch.nn
    kind = nn.ConvTranspose1d if d == 1 else nn.ConvTranspose2d
    torch.manual_seed(0)
    tm = kind(3, 2, 3, stride=2, padding=1, output_padding=1).double()
    layer = bp.from_torch(tm)
    assert type(layer) is _cls(d)
    x = rng.normal(size=(2, 4, 3) if d == 1 else (2, 3, 4, 3))
    to_cf, to_cl = _cf(d)
    tx = torch.tensor(x, requires_grad=True)
    ty = tm(tx.permute(*to_cf)).permute(*to_cl)
    delta = rng.normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(delta))
    X, D = bp.asarray(x), bp.asarray(delta)
    assert_close(layer(X), ty.detach().numpy(), f64, **TIGHT)
    assert_close(layer.backward(X, D), tx.grad.numpy(), f64, **TIGHT)
    w = np.moveaxis(tm.weight.grad.numpy(), (0, 1), (d, d + 1))
    assert_close(layer.get_gradient("weight"), w, f64, **TIGHT)
    assert_close(layer.get_gradient("bias"), tm.bias.grad.numpy(), f64, **TIGHT)
    back = bp.to_torch(layer)
    assert isinstance(back, kind) and back.weight.dtype == torch.float64
    assert back.stride == tm.stride and back.padding == tm.padding
    assert back.output_padding == tm.output_padding
    for key in ("weight", "bias"):
        np.testing.assert_array_equal(
            getattr(back, key).detach().numpy(), getattr(tm, key).detach().numpy()
        )


def test_autoencoder_from_and_to_torch(f64, rng):
    """A convolutional autoencoder with padding, transposed convolutions and Upsample, converted
    from PyTorch, compared, converted back and compared again."""
    torch = try_torch()
    nn = torch.nn
    torch.manual_seed(0)
    tnet = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2, padding=1),
        nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1),
        nn.Tanh(),
        nn.Upsample(scale_factor=2),
        nn.Conv2d(3, 1, 3, padding="same", bias=False),
        nn.Flatten(),
        nn.Linear(64, 2),
    ).double()
    net = bp.from_torch(tnet, input_shape=(1, 5, 6))
    x = rng.normal(size=(3, 5, 6, 1))
    tx = torch.tensor(x, requires_grad=True)
    ty = tnet(tx.permute(0, 3, 1, 2))
    delta = rng.normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(delta))
    X = bp.asarray(x)
    assert_close(net(X), ty.detach().numpy(), f64, **TIGHT)
    assert_close(net.backward(X, bp.asarray(delta)), tx.grad.numpy(), f64, **TIGHT)
    w = np.moveaxis(tnet[3].weight.grad.numpy(), (0, 1), (2, 3))
    assert_close(net[3].get_gradient("weight"), w, f64, **TIGHT)
    back = bp.to_torch(net, input_shape=(5, 6, 1))
    got = back(torch.tensor(x).permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(got, ty.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_from_torch_refuses_what_it_cannot_convert():
    torch = try_torch()
    nn = torch.nn
    with pytest.raises(ValueError, match=r"ConvTranspose1d with groups=2 is not supported"):
        bp.from_torch(nn.ConvTranspose1d(2, 2, 3, groups=2))
    with pytest.raises(ValueError, match=r"ConvTranspose2d with dilation=\(2, 2\) is not"):
        bp.from_torch(nn.ConvTranspose2d(2, 2, 3, dilation=2))
    with pytest.raises(ValueError, match=r"Upsample with mode='bilinear'.* is not supported"):
        bp.from_torch(nn.Upsample(scale_factor=2, mode="bilinear"))
    with pytest.raises(ValueError, match=r"Upsample with mode='nearest', size=4 is not"):
        bp.from_torch(nn.Upsample(size=4))
    with pytest.raises(ValueError, match=r"Upsample with scale_factor=2.5 is not supported"):
        bp.from_torch(nn.Upsample(scale_factor=2.5))
    assert bp.from_torch(nn.Upsample(scale_factor=(2.0, 3.0))).scale == (2, 3)
    assert bp.from_torch(nn.UpsamplingNearest2d(scale_factor=2)).scale == 2
    assert bp.to_torch(bp.Upsample((2, 3))).scale_factor == (2.0, 3.0)


def test_save_load_round_trip(backend, rng, tmp_path):
    net = bp.Sequential(
        bp.ConvTranspose1D(3, 2, 4, stride=2, padding=1, output_padding=1),
        bp.Upsample(3),
        bp.ConvTranspose1D(2, 4, 1, bias=False),
    )
    path = tmp_path / "net.npz"
    bp.save(net, path)
    again = bp.load(path)
    assert repr(again) == repr(net)
    for (name, p), (name2, q) in zip(net.named_parameters(), again.named_parameters()):
        assert name == name2
        np.testing.assert_array_equal(bp.to_numpy(p), bp.to_numpy(q))
    x = bp.asarray(rng.normal(size=(2, 5, 2)))
    np.testing.assert_array_equal(bp.to_numpy(net(x)), bp.to_numpy(again(x)))
    for m in net.modules():
        json.dumps(m.get_config())
    two_d = bp.Sequential(
        bp.ConvTranspose2D((2, 3), 1, 2, (2, 1), (0, 1), (1, 0)), bp.Upsample((2, 1))
    )
    bp.save(two_d, path)
    assert repr(bp.load(path)) == repr(two_d)


def test_summary_rows(backend):
    net = bp.Sequential(
        bp.ConvTranspose2D(3, 2, 4, stride=2, padding=1, output_padding=1), bp.Upsample(2)
    )
    text = net.summary((5, 6, 2))
    rows = text.splitlines()
    assert any(
        "ConvTranspose2D" in r and "(N, 10, 12, 4)" in r and r.rstrip().endswith("76") for r in rows
    )
    assert any("Upsample" in r and "(N, 20, 24, 4)" in r for r in rows)
    assert net.output_shape((7, 5, 6, 2)) == (7, 20, 24, 4)


def test_repr():
    assert repr(bp.ConvTranspose1D(3, 2, 4)) == "ConvTranspose1D(k=3, 2 -> 4, stride=1)"
    assert (
        repr(bp.ConvTranspose2D(3, 2, 4, stride=2, padding=1, output_padding=(1, 0), bias=False))
        == "ConvTranspose2D(k=(3, 3), 2 -> 4, stride=(2, 2), padding=(1, 1), "
        "output_padding=(1, 0), bias=False)"
    )
    assert repr(bp.Upsample((2, 3))) == "Upsample(scale_factor=(2, 3))"


# ----------------------------------------------------------------- Upsample


def test_upsample_by_hand(backend):
    x = bp.asarray([[[1.0, -1.0], [2.0, -2.0]]])
    out = bp.Upsample(2)(x)
    assert_like(out, backend, (1, 4, 2))
    assert_close(out, [[[1.0, -1.0], [1.0, -1.0], [2.0, -2.0], [2.0, -2.0]]], backend)
    img = bp.asarray(np.arange(4.0).reshape(1, 2, 2, 1))
    expected = np.repeat(np.repeat(np.arange(4.0).reshape(1, 2, 2, 1), 2, axis=1), 3, axis=2)
    assert_close(bp.Upsample((2, 3))(img), expected, backend)
    # the gradient of a value is the sum over its copies
    g = bp.Upsample(2).backward_delta(x, bp.asarray(np.arange(8.0).reshape(1, 4, 2)))
    assert_close(g, [[[2.0, 4.0], [10.0, 12.0]]], backend)


@pytest.mark.parametrize("scale,shape", [(2, (2, 3, 2)), (3, (1, 2, 3, 2)), ((2, 1), (2, 2, 3, 1))])
def test_upsample_gradcheck(f64, rng, scale, shape):
    assert bp.gradcheck(bp.Upsample(scale), bp.asarray(rng.normal(size=shape)))


@pytest.mark.parametrize("scale,shape", [(2, (2, 3, 2)), (3, (2, 5, 1)), ((2, 3), (2, 3, 2, 2))])
def test_upsample_torch_parity(f64, rng, scale, shape):
    torch = try_torch()
    d = len(shape) - 2
    to_cf, to_cl = _cf(d)
    x = rng.normal(size=shape)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.Upsample(scale_factor=scale, mode="nearest")(tx.permute(*to_cf)).permute(*to_cl)
    delta = rng.normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(delta))
    layer = bp.Upsample(scale)
    X = bp.asarray(x)
    assert_close(layer(X), ty.detach().numpy(), f64, **TIGHT)
    assert_close(layer.backward_delta(X, bp.asarray(delta)), tx.grad.numpy(), f64, **TIGHT)
    converted = bp.from_torch(torch.nn.Upsample(scale_factor=scale, mode="nearest"))
    assert_close(converted(X), ty.detach().numpy(), f64, **TIGHT)


# ----------------------------------------------------------------- ONNX


@pytest.mark.parametrize("d", [1, 2])
def test_onnx_export(rng, tmp_path, d):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")

    with bp.use_backend("numpy"):
        bp.manual_seed(0)
        cls = _cls(d)
        net = bp.Sequential(
            cls(3, 2, 3, stride=2, padding=1, output_padding=1),
            bp.ReLU(),
            bp.Upsample(2),
            cls(2, 3, 2),
        )
        sample = (5, 2) if d == 1 else (4, 5, 2)
        bp.export_onnx(net, tmp_path / "m.onnx", sample)
        session = ort.InferenceSession(str(tmp_path / "m.onnx"))
        for n in (1, 7):
            x = rng.normal(size=(n, *sample)).astype(np.float32)
            (got,) = session.run(None, {"input": x})
            np.testing.assert_allclose(got, bp.to_numpy(net(bp.asarray(x))), rtol=1e-5, atol=1e-5)
        # Upsample alone stays channels-last
        bp.export_onnx(bp.Upsample(3), tmp_path / "u.onnx", sample)
        session = ort.InferenceSession(str(tmp_path / "u.onnx"))
        x = rng.normal(size=(7, *sample)).astype(np.float32)
        (got,) = session.run(None, {"input": x})
        np.testing.assert_array_equal(got, bp.to_numpy(bp.Upsample(3)(bp.asarray(x))))


# ----------------------------------------------------------------- hostile inputs


def test_errors(backend):
    layer = bp.ConvTranspose1D(3, 2, 4, stride=2)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, L, 2\), got \(1, 5, 3\)"):
        layer(bp.asarray(np.zeros((1, 5, 3))))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, L, 2\), got \(5, 2\)"):
        layer(bp.asarray(np.zeros((5, 2))))
    with pytest.raises(ValueError, match=r"ConvTranspose1D.*spatial sizes must be at least 1"):
        layer(bp.asarray(np.zeros((1, 0, 2))))
    with pytest.raises(TypeError, match=r"ConvTranspose1D.*real floating"):
        layer(bp.asarray(np.zeros((1, 5, 2), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"expected delta of the output's shape \(1, 11, 4\)"):
        layer.backward_delta(bp.asarray(np.zeros((1, 5, 2))), bp.asarray(np.zeros((1, 10, 4))))
    with pytest.raises(ValueError, match=r"expected delta of the output's shape"):
        layer.backward_update_gradient(
            bp.asarray(np.zeros((1, 5, 2))), bp.asarray(np.zeros((1, 11, 3)))
        )
    # a crop that leaves nothing
    with pytest.raises(ValueError, match=r"ConvTranspose2D.*gives an output of size \(0, 3\)"):
        bp.ConvTranspose2D(2, 1, 1, padding=(1, 0))(bp.asarray(np.zeros((1, 1, 2, 1))))
    with pytest.raises(ValueError, match=r"output_padding must be smaller than stride"):
        bp.ConvTranspose1D(3, 1, 1, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"output_padding must be smaller than stride"):
        bp.ConvTranspose2D(3, 1, 1, stride=(2, 1), output_padding=(1, 1))
    for bad in (
        {"k_size": 0},
        {"stride": 0},
        {"padding": -1},
        {"output_padding": -1},
        {"padding": "same"},
        {"padding": True},
        {"chan_in": 1.5},
        {"chan_out": 0},
        {"k_size": (2, 2)},
    ):
        args = {"k_size": 3, "chan_in": 1, "chan_out": 1, **bad}
        with pytest.raises(ValueError, match=r"ConvTranspose1D: .* must be"):
            bp.ConvTranspose1D(**args)
    with pytest.raises(TypeError, match=r"ConvTranspose1D: bias must be True or False"):
        bp.ConvTranspose1D(3, 1, 1, bias=np.array([1, 1]))


def test_upsample_errors(backend):
    with pytest.raises(ValueError, match=r"Upsample.*expected input of shape \(N, L, C\) or"):
        bp.Upsample(2)(bp.asarray(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"Upsample.*expected input of shape \(N, H, W, C\)"):
        bp.Upsample((2, 2))(bp.asarray(np.zeros((2, 3, 1))))
    with pytest.raises(ValueError, match=r"expected delta of the output's shape \(1, 6, 1\)"):
        bp.Upsample(2).backward_delta(
            bp.asarray(np.zeros((1, 3, 1))), bp.asarray(np.zeros((1, 3, 1)))
        )
    with pytest.raises(TypeError, match=r"Upsample.*real floating"):
        bp.Upsample(2)(bp.asarray(np.zeros((1, 3, 1), dtype=np.int32)))
    for bad in (0, 1.5, (2, 2, 2), (2, 0), True, "2"):
        with pytest.raises(ValueError, match=r"Upsample: scale_factor must be"):
            bp.Upsample(bad)
    with pytest.raises(ValueError, match=r"Upsample: mode must be 'nearest'"):
        bp.Upsample(2, mode="bilinear")


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: bp.ConvTranspose1D(3, 2, 3, stride=2, padding=1), (0, 4, 2)),
        (lambda: bp.ConvTranspose2D(2, 2, 3, stride=2, output_padding=1), (0, 3, 2, 2)),
        (lambda: bp.Upsample(2), (0, 3, 2)),
    ],
)
def test_empty_batch(backend, make, shape):
    layer = make()
    x = bp.asarray(np.zeros(shape))
    out = layer(x)
    assert_like(out, backend, layer.output_shape(shape))
    dx = layer.backward(x, bp.asarray(np.zeros(tuple(out.shape))))
    assert_like(dx, backend, shape)
    if layer.has_parameters():
        assert not bp.to_numpy(layer.get_gradient("weight")).any()


def test_nan_reaches_exactly_the_outputs_it_feeds(backend):
    layer = bp.ConvTranspose1D(2, 1, 1, stride=3, bias=False)
    x = np.ones((1, 3, 1))
    x[0, 1, 0] = np.nan
    out = bp.to_numpy(layer(bp.asarray(x)))[0, :, 0]
    # windows [0, 2), [3, 5), [6, 8); the gaps (2, 5) hold zeros
    np.testing.assert_array_equal(
        np.isnan(out), [False, False, False, True, True, False, False, False]
    )
    assert out[2] == 0 and out[5] == 0
    up = bp.to_numpy(bp.Upsample(2)(bp.asarray(x)))[0, :, 0]
    np.testing.assert_array_equal(np.isnan(up), [False, False, True, True, False, False])


def test_outputs_never_share_the_input(backend, rng):
    x_host = rng.normal(size=(2, 3, 2))
    for layer in (bp.Upsample(1), bp.Upsample(2), bp.ConvTranspose1D(1, 2, 2, bias=False)):
        x = bp.asarray(x_host)
        out = layer(x)
        before = bp.to_numpy(out).copy()
        if backend.name != "jax":  # JAX arrays cannot be written
            x[...] = 7.0
            np.testing.assert_array_equal(bp.to_numpy(out), before)


def test_shared_layer_in_two_places(f64, rng):
    """One layer used twice: its gradient is the sum of both uses, and gradcheck holds."""
    up = bp.ConvTranspose1D(2, 1, 1, stride=2)
    net = bp.Sequential(up, bp.TanH(), up)
    assert bp.gradcheck(net, bp.asarray(rng.normal(size=(2, 2, 1))))


@given(length=st.integers(1, 12), k=st.integers(1, 5), stride=st.integers(1, 4), data=st.data())
@settings(max_examples=100, deadline=None)
def test_output_length_formula(length, k, stride, data):
    padding = data.draw(st.integers(0, 3))
    output_padding = data.draw(st.integers(0, stride - 1))
    expected = (length - 1) * stride - 2 * padding + k + output_padding
    with bp.use_backend("numpy"):
        layer = bp.ConvTranspose1D(k, 1, 1, stride, padding, output_padding)
        x = bp.asarray(np.ones((1, length, 1)))
        if expected < 1:
            with pytest.raises(ValueError, match="gives an output of size"):
                layer(x)
            return
        assert layer(x).shape == (1, expected, 1) == layer.output_shape((1, length, 1))


def test_compiled_jax_step_equals_eager(rng):
    """Padded convolutions and pools, a transposed convolution and Upsample inside one compiled
    JAX training step: the same losses and parameters as the eager step."""
    pytest.importorskip("jax")
    x, y = rng.normal(size=(4, 6, 5, 1)), rng.normal(size=(4, 8, 12, 1))
    results = []
    for compile_ in (False, True):
        with bp.use_backend("jax", dtype="float64"):
            bp.manual_seed(1)
            net = bp.Sequential(
                bp.Conv2D(3, 1, 2, stride=2, padding=1),
                bp.MaxPool2D(2, 1, padding=1),
                bp.AvgPool2D(3, 1, padding=1),
                bp.ConvTranspose2D(3, 2, 2, stride=2, padding=(1, 2), output_padding=1),
                bp.TanH(),
                bp.Upsample((1, 2)),
                bp.Conv2D(2, 2, 1, padding="same"),
            )
            opt = bp.Optim(net, bp.MSELoss(), 0.05, compile=compile_)
            X, Y = bp.asarray(x), bp.asarray(y)
            losses = [bp.to_numpy(opt.step(X, Y)) for _ in range(3)]
            results.append((losses, [bp.to_numpy(p) for p in net.parameters()]))
    (eager, eager_params), (compiled, compiled_params) = results
    np.testing.assert_allclose(compiled, eager, rtol=1e-12, atol=1e-12)
    for a, b in zip(compiled_params, eager_params):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["bilinear", np.array([1, 0]), None, 3])
def test_upsample_names_itself_for_a_mode_it_lacks(mode):
    """Any mode but 'nearest', an array included (which compares per entry), is one clear
    error naming the layer."""
    with pytest.raises(ValueError, match=r"Upsample: mode must be 'nearest'"):
        bp.Upsample(2, mode)
