"""Recurrent layers: RNN (tanh, relu), LSTM, GRU, on every backend.

Forward by hand, finite differences (input, initial state, every parameter),
parity with torch.nn in float64, conversion both ways, save/load, ONNX Runtime,
summary rows and hostile input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop as bp
from backprop.interop import TorchConverter
from conftest import assert_close, assert_like

N, L, C, H = 3, 5, 4, 3

#: name -> (backprop class, extra constructor arguments, torch.nn class name)
LAYERS = {
    "rnn_tanh": (bp.RNN, {}, "RNN"),
    "rnn_relu": (bp.RNN, {"nonlinearity": "relu"}, "RNN"),
    "lstm": (bp.LSTM, {}, "LSTM"),
    "gru": (bp.GRU, {}, "GRU"),
}


def make(name, c=C, h=H, **kw):
    cls, extra, _ = LAYERS[name]
    return cls(c, h, **{**extra, **kw})


def n_states(layer) -> int:
    return 2 if isinstance(layer, bp.LSTM) else 1


def pack(layer, arrays):
    """The state in the layer's form (one array or a tuple) from a list of host arrays."""
    values = [None if a is None else bp.asarray(a) for a in arrays]
    return values[0] if n_states(layer) == 1 else tuple(values)


def unpack(layer, state) -> list:
    return [state] if n_states(layer) == 1 else list(state)


# ----------------------------------------------------------------- forward


def test_rnn_forward_by_hand(backend):
    rnn = bp.RNN(1, 1)
    for key, v in {"weight_ih": 0.5, "weight_hh": -1.0, "bias_ih": 0.25, "bias_hh": -0.15}.items():
        rnn.set_parameter(key, bp.asarray(np.full(rnn.get_parameter(key).shape, v)))
    out = rnn(bp.asarray([[[1.0], [2.0], [-1.0]]]))
    h1 = math.tanh(0.5 + 0.1)
    h2 = math.tanh(1.0 + 0.1 - h1)
    h3 = math.tanh(-0.5 + 0.1 - h2)
    assert_like(out, backend, (1, 3, 1))
    assert_close(out, [[[h1], [h2], [h3]]], backend)
    rnn.nonlinearity = "relu"
    out = rnn(bp.asarray([[[1.0], [2.0], [-1.0]]]))
    r1 = 0.6
    r2 = max(0.0, 1.1 - r1)
    r3 = max(0.0, -0.4 - r2)
    assert_close(out, [[[r1], [r2], [r3]]], backend)


def test_lstm_forward_by_hand(backend):
    # every weight 0: the gates are constants, i = f = o = sigmoid(0) = 1/2 and g = tanh(b_g)
    lstm = bp.LSTM(2, 1)
    for key in ("weight_ih", "weight_hh", "bias_hh"):
        lstm.set_parameter(key, bp.asarray(np.zeros(lstm.get_parameter(key).shape)))
    lstm.set_parameter("bias_ih", bp.asarray([0.0, 0.0, 0.8, 0.0]))
    out = lstm(bp.asarray(np.ones((2, 3, 2))))
    c, expected = 0.0, []
    for _ in range(3):
        c = 0.5 * c + 0.5 * math.tanh(0.8)
        expected.append([0.5 * math.tanh(c)])
    assert_like(out, backend, (2, 3, 1))
    assert_close(out, [expected, expected], backend)


def test_gru_forward_by_hand(backend):
    # every weight 0: r = z = sigmoid(0) = 1/2, n = tanh(b_in + r * b_hn): the reset gate scales
    # the hidden state's bias (PyTorch's order), not the input's
    gru = bp.GRU(2, 1)
    for key in ("weight_ih", "weight_hh"):
        gru.set_parameter(key, bp.asarray(np.zeros(gru.get_parameter(key).shape)))
    gru.set_parameter("bias_ih", bp.asarray([0.0, 0.0, 0.7]))
    gru.set_parameter("bias_hh", bp.asarray([0.0, 0.0, 0.4]))
    out = gru(bp.asarray(np.ones((1, 3, 2))))
    n, h, expected = math.tanh(0.7 + 0.5 * 0.4), 0.0, []
    for _ in range(3):
        h = 0.5 * n + 0.5 * h
        expected.append([h])
    assert_like(out, backend, (1, 3, 1))
    assert_close(out, [expected], backend)


def test_parameters_are_pytorchs(backend):
    for name, gates in (("rnn_tanh", 1), ("lstm", 4), ("gru", 3)):
        layer = make(name)
        shapes = {k: tuple(v.shape) for k, v in layer.named_parameters()}
        assert shapes == {
            "weight_ih": (gates * H, C),
            "weight_hh": (gates * H, H),
            "bias_ih": (gates * H,),
            "bias_hh": (gates * H,),
        }
        bound = 1 / math.sqrt(H)
        assert all(np.abs(bp.to_numpy(p)).max() <= bound for p in layer.parameters())
        no_bias = make(name, bias=False)
        assert [k for k, _ in no_bias.named_parameters()] == ["weight_ih", "weight_hh"]
        assert make(name).output_shape((7, 11, C)) == (7, 11, H)


def test_rows_do_not_mix_and_nan_passes_through(backend, rng):
    for name in LAYERS:
        layer = make(name)
        x = rng.normal(size=(N, L, C))
        clean = bp.to_numpy(layer(bp.asarray(x)))
        x[1, 2, 0] = np.nan
        out = bp.to_numpy(layer(bp.asarray(x)))
        np.testing.assert_array_equal(out[[0, 2]], clean[[0, 2]])  # other rows untouched
        np.testing.assert_array_equal(out[1, :2], clean[1, :2])  # earlier steps untouched
        assert np.isnan(out[1, 2:]).all(), name  # the NaN reaches every later state


def test_eval_mode_changes_nothing(backend, rng):
    layer = make("lstm")
    x = bp.asarray(rng.normal(size=(N, L, C)))
    train = bp.to_numpy(layer(x))
    np.testing.assert_array_equal(bp.to_numpy(layer.eval()(x)), train)


# --------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("length,bias", [(4, True), (1, False)])
def test_gradcheck(f64, rng, name, length, bias):
    layer = make(name, bias=bias)
    x = rng.normal(size=(2, length, C))
    assert bp.gradcheck(layer, bp.asarray(x))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_gradcheck_in_a_network_with_a_shared_layer(f64, rng, name):
    # the same layer at two places: what each call keeps is apart, its gradient sums both uses
    layer = make(name, c=H, h=H)
    net = bp.Sequential(layer, bp.TanH(), layer, bp.Flatten(), bp.Linear(4 * H, 2))
    assert bp.gradcheck(net, bp.asarray(rng.normal(size=(2, 4, H))))


def _numeric(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        old = x[i]
        x[i] = old + eps
        up = f(x)
        x[i] = old - eps
        down = f(x)
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("name", list(LAYERS))
def test_initial_state_gradient(f64, rng, name):
    """backward_with_state against finite differences of a cost that reads the outputs and the
    final state, for the input and every initial state."""
    layer = make(name)
    k = n_states(layer)
    x = rng.normal(size=(2, 4, C))
    states = [rng.normal(size=(2, H)) for _ in range(k)]
    delta = rng.normal(size=(2, 4, H))
    dfinal = [rng.normal(size=(2, H)) for _ in range(k)]

    def cost(x, states):
        Y, final = layer.forward_with_state(bp.asarray(x), pack(layer, states))
        value = np.sum(bp.to_numpy(Y) * delta)
        return value + sum(np.sum(bp.to_numpy(f) * d) for f, d in zip(unpack(layer, final), dfinal))

    dX, dstate = layer.backward_with_state(
        bp.asarray(x), pack(layer, states), bp.asarray(delta), pack(layer, dfinal)
    )
    assert_close(dX, _numeric(lambda v: cost(v, states), x), rtol=1e-6, atol=1e-8)
    for j in range(k):

        def f(s, j=j):
            return cost(x, [s if i == j else states[i] for i in range(k)])

        assert_close(unpack(layer, dstate)[j], _numeric(f, states[j]), rtol=1e-6, atol=1e-8)
    # from no state, forward_with_state is forward
    X = bp.asarray(x)
    assert_close(layer.forward_with_state(X)[0], layer(X), f64)


def test_accumulation_and_zero_grad(backend, rng):
    for name in LAYERS:
        layer = make(name)
        x = bp.asarray(rng.normal(size=(N, L, C)))
        d = bp.asarray(rng.normal(size=(N, L, H)))
        layer.backward_update_gradient(x, d)
        once = {k: bp.to_numpy(g).copy() for k, g in layer._gradient.items()}
        layer.backward(x, d)
        for k, g in layer._gradient.items():
            assert_close(g, 2 * once[k], backend, rtol=1e-5)
        layer.zero_grad()
        assert not any(bp.to_numpy(g).any() for g in layer._gradient.values())


def test_public_rules_compute_from_their_input(f64, rng):
    # nothing is kept from the public forward: backward at other values is backward at those
    layer = make("lstm")
    x1, x2 = rng.normal(size=(2, N, L, C))
    d = bp.asarray(rng.normal(size=(N, L, H)))
    X = bp.asarray(x1.copy())
    layer(X)
    fresh = make("lstm")
    fresh.load_state_dict(layer.state_dict())
    expected = bp.to_numpy(fresh.backward_delta(bp.asarray(x2), d))
    assert_close(layer.backward_delta(bp.asarray(x2), d), expected, f64)


def test_compiled_step_equals_eager(f64, rng):
    if not f64.compiles:
        pytest.skip(f"{f64.name} does not compile whole steps")
    x = bp.asarray(rng.normal(size=(4, 3, C)))
    y = bp.asarray(rng.normal(size=(4, 2)))
    nets = []
    for compile in (False, True):
        bp.manual_seed(3)
        net = bp.Sequential(bp.LSTM(C, H), bp.Flatten(), bp.Linear(3 * H, 2))
        step = bp.Optim(net, bp.MSELoss(), 0.05, compile=compile)
        for _ in range(2):
            step.step(x, y)
        nets.append(net)
    for (_, a), (_, b) in zip(nets[0].named_parameters(), nets[1].named_parameters()):
        assert_close(b, bp.to_numpy(a), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------ PyTorch parity


def torch_module(torch, name, length_h=H, **kw):
    _, extra, torch_name = LAYERS[name]
    return getattr(torch.nn, torch_name)(C, length_h, batch_first=True, **extra, **kw).double()


def _parity(torch, layer, module, x, states, delta, dfinal):
    """The largest differences from torch: forward, final state, input, initial state and
    parameter gradients (each a float)."""
    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    t_state = ts[0][None] if len(ts) == 1 else tuple(s[None] for s in ts)
    ty, t_final = module(tx, t_state)
    t_final = [t_final] if len(ts) == 1 else list(t_final)
    cost = (ty * torch.tensor(delta)).sum()
    cost = cost + sum((f[0] * torch.tensor(d)).sum() for f, d in zip(t_final, dfinal))
    cost.backward()
    X = bp.asarray(x)
    Y, final = layer.forward_with_state(X, pack(layer, states))
    dX, dstate = layer.backward_with_state(
        X, pack(layer, states), bp.asarray(delta), pack(layer, dfinal)
    )

    def worst(a, b):
        return float(np.max(np.abs(bp.to_numpy(a) - b.detach().numpy())))

    diffs = {
        "forward": worst(Y, ty),
        "final state": max(worst(f, t[0]) for f, t in zip(unpack(layer, final), t_final)),
        "input gradient": worst(dX, tx.grad),
        "state gradient": max(worst(d, t.grad) for d, t in zip(unpack(layer, dstate), ts)),
    }
    for key in layer._parameters:
        diffs[key] = worst(layer.get_gradient(key), getattr(module, f"{key}_l0").grad)
    return diffs


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("length", [L, 1])
def test_torch_parity(f64, rng, name, length):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch_module(torch, name)
    layer = type(make(name)).from_torch(module, TorchConverter())
    assert_like(layer.get_parameter("weight_ih"), f64)
    k = n_states(layer)
    x = rng.normal(size=(N, length, C))
    diffs = _parity(
        torch,
        layer,
        module,
        x,
        [rng.normal(size=(N, H)) for _ in range(k)],
        rng.normal(size=(N, length, H)),
        [rng.normal(size=(N, H)) for _ in range(k)],
    )
    assert max(diffs.values()) <= 1e-10, diffs
    # and from a zero state through the plain forward and backward
    layer.zero_grad()
    module.zero_grad()
    tx = torch.tensor(x, requires_grad=True)
    ty = module(tx)[0]
    delta = rng.normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(delta))
    X = bp.asarray(x)
    assert_close(layer(X), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    assert_close(layer.backward(X, bp.asarray(delta)), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    for key in layer._parameters:
        expected = getattr(module, f"{key}_l0").grad.numpy()
        assert_close(layer.get_gradient(key), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(LAYERS))
def test_public_conversion(f64, rng, name):
    torch = pytest.importorskip("torch")
    module = torch_module(torch, name)
    net = bp.from_torch(module)
    x = rng.normal(size=(N, L, C))
    expected = module(torch.tensor(x))[0].detach().numpy()
    assert_close(net.forward(bp.asarray(x)), expected, rtol=1e-10, atol=1e-10)
    back = bp.to_torch(net)
    assert_close(back(torch.tensor(x))[0].detach().numpy(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(LAYERS))
def test_to_torch_round_trip_shares_nothing(f64, rng, name):
    torch = pytest.importorskip("torch")
    conv = TorchConverter()
    layer = make(name, bias=False)
    module = layer.to_torch(conv)
    assert module.batch_first and module.num_layers == 1 and not module.bias
    x = rng.normal(size=(N, L, C))
    expected = bp.to_numpy(layer(bp.asarray(x)))
    np.testing.assert_allclose(module(torch.tensor(x))[0].detach().numpy(), expected, atol=1e-12)
    again = type(layer).from_torch(module, conv)
    assert again.get_config() == layer.get_config()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)  # neither layer follows a change of the torch module
    np.testing.assert_array_equal(bp.to_numpy(again(bp.asarray(x))), expected)
    np.testing.assert_array_equal(bp.to_numpy(layer(bp.asarray(x))), expected)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"num_layers": 2}, "num_layers=2"),
        ({"bidirectional": True}, "bidirectional=True"),
        ({"batch_first": False}, "batch_first=False"),
    ],
)
def test_from_torch_refuses_other_configurations(kw, message):
    torch = pytest.importorskip("torch")
    for name in LAYERS:
        cls, extra, torch_name = LAYERS[name]
        options = {"batch_first": True, **extra, **kw}
        module = getattr(torch.nn, torch_name)(C, H, **options)
        with pytest.raises(ValueError, match=rf"{cls.__name__}\.from_torch: .*{message}"):
            cls.from_torch(module, TorchConverter())
    projected = torch.nn.LSTM(C, H, batch_first=True, proj_size=2)
    with pytest.raises(ValueError, match="proj_size=2"):
        bp.LSTM.from_torch(projected, TorchConverter())
    with pytest.raises(TypeError, match=r"RNN\.from_torch: expected torch\.nn\.RNN, got LSTM"):
        bp.RNN.from_torch(projected, TorchConverter())


# ---------------------------------------------------- saving, summary, ONNX


def test_save_load_round_trip(backend, rng, tmp_path):
    net = bp.Sequential(make("rnn_relu", bias=False), make("lstm", c=H), bp.Flatten())
    path = tmp_path / "rnn.npz"
    bp.save(net, path)
    loaded = bp.load(path)
    assert repr(loaded) == repr(net)
    assert loaded[0].nonlinearity == "relu" and not loaded[0].bias
    for (k, a), (k2, b) in zip(net.named_parameters(), loaded.named_parameters()):
        assert k == k2
        np.testing.assert_array_equal(bp.to_numpy(a), bp.to_numpy(b))
    x = bp.asarray(rng.normal(size=(N, L, C)))
    np.testing.assert_array_equal(bp.to_numpy(loaded.forward(x)), bp.to_numpy(net.forward(x)))


def test_summary_rows(backend):
    net = bp.Sequential(make("rnn_tanh"), make("lstm", c=H, h=6))
    text = net.summary((L, C))
    rows = text.splitlines()
    rnn_row = next(r for r in rows if r.startswith("0 "))
    lstm_row = next(r for r in rows if r.startswith("1 "))
    assert "RNN(4 -> 3)" in rnn_row and f"(N, {L}, 3)" in rnn_row
    assert rnn_row.split()[-1] == f"{3 * (C + H + 2):,d}"
    assert "LSTM(3 -> 6)" in lstm_row and f"(N, {L}, 6)" in lstm_row
    assert lstm_row.split()[-1] == f"{4 * 6 * (3 + 6 + 2):,d}"


def _onnx_model(layer, shape):
    """The ONNX model of ``Sequential(layer)`` for samples of ``shape``."""
    pytest.importorskip("onnx", reason="onnx is not installed")
    return bp.export_onnx(bp.Sequential(layer), None, shape)


@pytest.mark.parametrize("name,bias", [(n, True) for n in LAYERS] + [("lstm", False)])
def test_onnx_export_runs_in_onnx_runtime(rng, name, bias):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    with bp.use_backend("numpy", dtype="float32"):
        bp.manual_seed(0)
        layer = make(name, bias=bias)
        model = _onnx_model(layer, (L, C))
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        for n in (1, 7):
            x = rng.normal(size=(n, L, C)).astype(np.float32)
            got = session.run(None, {"input": x})[0]
            expected = bp.to_numpy(layer(bp.asarray(x)))
            assert got.shape == expected.shape == (n, L, H)
            np.testing.assert_allclose(got, expected, atol=1e-5)


def test_onnx_export_refuses_other_samples():
    pytest.importorskip("onnx", reason="onnx is not installed")
    with (
        bp.use_backend("numpy", dtype="float32"),
        pytest.raises(
            ValueError, match=r"RNN\(4 -> 3\) expects samples of shape \(L, 4\).*\(5, 2\)"
        ),
    ):
        _onnx_model(make("rnn_tanh"), (L, 2))


# ----------------------------------------------------------- hostile input


def test_errors(backend):
    for name in LAYERS:
        layer = make(name)
        label = type(layer).__name__
        with pytest.raises(
            ValueError,
            match=rf"{label}\(4 -> 3.*\)\.forward: expected input "
            r"of shape \(N, L, 4\).*got \(2, 4\)",
        ):
            layer(bp.asarray(np.zeros((2, 4))))
        with pytest.raises(ValueError, match=r"expected input of shape \(N, L, 4\).*\(2, 5, 3\)"):
            layer(bp.asarray(np.zeros((2, 5, 3))))
        with pytest.raises(ValueError, match=r"expected input of shape .*\(1, 2, 5, 4\)"):
            layer(bp.asarray(np.zeros((1, 2, 5, 4))))
        with pytest.raises(TypeError, match=rf"{label}.*forward.*floating"):
            layer(bp.asarray(np.zeros((2, 5, 4), dtype=np.int64)))
        x = bp.asarray(np.zeros((2, 5, 4)))
        with pytest.raises(ValueError, match=r"expected delta of the output's shape \(2, 5, 3\)"):
            layer.backward_delta(x, bp.asarray(np.zeros((2, 5, 4))))
        bad = r"expected h0 of shape \(N, 3\) = \(2, 3\) .*\(3, 3\)"
        with pytest.raises(ValueError, match=bad):
            layer.forward_with_state(x, pack(layer, [np.zeros((3, 3))] * n_states(layer)))
    lstm = make("lstm")
    x = bp.asarray(np.zeros((2, 5, 4)))
    with pytest.raises(
        TypeError,
        match=r"LSTM\(4 -> 3\)\.forward_with_state: expected the state "
        r"as a tuple \(h0, c0\)",
    ):
        lstm.forward_with_state(x, bp.asarray(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"expected c0 of shape"):
        lstm.forward_with_state(x, (None, bp.asarray(np.zeros((2, 4)))))
    with pytest.raises(ValueError, match=r"expected dc0 of shape"):
        lstm.backward_with_state(
            x, None, bp.asarray(np.zeros((2, 5, 3))), (None, bp.asarray(np.zeros((1, 3))))
        )


@pytest.mark.parametrize(
    "args,error,message",
    [
        ((0, 3), ValueError, "input_size must be a positive int"),
        ((4, 2.5), ValueError, "hidden_size must be a positive int"),
        ((4, 3, "sigmoid"), ValueError, "nonlinearity must be 'tanh' or 'relu'"),
        ((4, 3, "tanh", "yes"), TypeError, "bias must be True or False"),
    ],
)
def test_constructor_errors(args, error, message):
    with pytest.raises(error, match=rf"RNN: {message}"):
        bp.RNN(*args)
    if len(args) < 3:
        for cls in (bp.LSTM, bp.GRU):
            with pytest.raises(error, match=rf"{cls.__name__}: {message}"):
                cls(*args)


def test_empty_batch(backend, rng):
    for name in LAYERS:
        layer = make(name)
        x = bp.asarray(np.zeros((0, L, C)))
        out = layer(x)
        assert_like(out, backend, (0, L, H))
        dx = layer.backward(x, bp.asarray(np.zeros((0, L, H))))
        assert_like(dx, backend, (0, L, C))
        assert not any(bp.to_numpy(g).any() for g in layer._gradient.values())


def test_sequences_of_length_zero(backend, rng):
    """A sequence of no steps: no output step, the final state is the initial one, and every
    gradient but the state's is zero."""
    for name in LAYERS:
        layer = make(name)
        x = bp.asarray(np.zeros((N, 0, C)))
        assert_like(layer(x), backend, (N, 0, H))
        assert_like(bp.Sequential(layer).forward(x), backend, (N, 0, H))
        k = n_states(layer)
        states = [rng.normal(size=(N, H)) for _ in range(k)]
        state = pack(layer, states)
        Y, final = layer.forward_with_state(x, state)
        assert_like(Y, backend, (N, 0, H))
        for f, s, given in zip(unpack(layer, final), states, unpack(layer, state)):
            # a copy (an immutable array may be handed back: nobody can change it)
            assert f is not given or not backend.mutable
            assert_close(f, s, backend)
        dfinal = [rng.normal(size=(N, H)) for _ in range(k)]
        dX, dstate = layer.backward_with_state(
            x, state, bp.asarray(np.zeros((N, 0, H))), pack(layer, dfinal)
        )
        assert_like(dX, backend, (N, 0, C))
        for d, expected in zip(unpack(layer, dstate), dfinal):
            assert_close(d, expected, backend)
        assert not any(bp.to_numpy(g).any() for g in layer._gradient.values())


@pytest.mark.parametrize("nonlinearity", ["sigmoid", np.array(["tanh", "relu"]), None])
def test_rnn_names_itself_for_a_nonlinearity_it_lacks(nonlinearity):
    with pytest.raises(ValueError, match=r"RNN: nonlinearity must be 'tanh' or 'relu'"):
        bp.RNN(3, 4, nonlinearity=nonlinearity)
