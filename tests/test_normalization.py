"""BatchNorm1D, BatchNorm2D and LayerNorm: by hand, finite differences, PyTorch parity, state."""

from __future__ import annotations

import json

import numpy as np
import pytest

import backprop as bp
from conftest import assert_close, assert_like, try_torch

# (layer factory, input shape in the library's layout, permutation to PyTorch's layout)
CASES = {
    "bn1d-features": (lambda: bp.BatchNorm1D(3), (5, 3), (0, 1)),
    "bn1d-sequence": (lambda: bp.BatchNorm1D(3), (4, 6, 3), (0, 2, 1)),
    "bn2d": (lambda: bp.BatchNorm2D(2), (3, 4, 5, 2), (0, 3, 1, 2)),
    "bn1d-no-affine": (lambda: bp.BatchNorm1D(3, affine=False), (4, 2, 3), (0, 2, 1)),
    "layernorm": (lambda: bp.LayerNorm(4), (3, 5, 4), (0, 1, 2)),
    "layernorm-2-axes": (lambda: bp.LayerNorm((3, 4)), (2, 5, 3, 4), (0, 1, 2, 3)),
    "layernorm-no-bias": (lambda: bp.LayerNorm(4, bias=False), (6, 4), (0, 1)),
    "layernorm-no-affine": (lambda: bp.LayerNorm(4, elementwise_affine=False), (6, 4), (0, 1)),
}
TOL = {"rtol": 1e-10, "atol": 1e-10}


def _randomize(layer, rng):
    """Non-trivial parameters and running statistics (a fresh layer has ones and zeros)."""
    for key, p in list(layer._parameters.items()):
        layer.set_parameter(key, bp.asarray(rng.normal(size=tuple(p.shape))))
    for key, b in list(layer._buffers.items()):
        value = rng.normal(size=tuple(b.shape))
        layer.set_buffer(key, bp.asarray(np.abs(value) + 0.5 if key == "running_var" else value))
    return layer


def _converter():
    """What a layer's torch hooks receive (converter.nn, array, tensor, set, layouts)."""
    from backprop.interop import TorchConverter

    return TorchConverter()


# ------------------------------------------------------------------ by hand


def test_batchnorm_forward_and_running_statistics_by_hand(backend):
    x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    bn = bp.BatchNorm1D(2)
    y = bn(bp.asarray(x))
    assert_like(y, backend, (3, 2))
    mean, var = x.mean(0), x.var(0)  # biased variance normalises
    assert_close(y, (x - mean) / np.sqrt(var + 1e-5), backend)
    # running: 0.9 * initial + 0.1 * batch, with the unbiased variance
    assert_close(bn.get_buffer("running_mean"), 0.1 * mean, backend)
    assert_close(bn.get_buffer("running_var"), 0.9 + 0.1 * x.var(0, ddof=1), backend)
    bn.eval()
    y = bn(bp.asarray(x))
    rm, rv = 0.1 * mean, 0.9 + 0.1 * x.var(0, ddof=1)
    assert_close(y, (x - rm) / np.sqrt(rv + 1e-5), backend)
    assert_close(bn.get_buffer("running_mean"), rm, backend)  # evaluation changes nothing


def test_batchnorm2d_statistics_over_batch_and_space(backend, rng):
    x = rng.normal(size=(2, 3, 4, 5)) * 3 + 1
    bn = bp.BatchNorm2D(5, momentum=0.5, eps=1e-3)
    bn.set_parameter("weight", bp.asarray(np.arange(1.0, 6.0)))
    bn.set_parameter("bias", bp.asarray(np.full(5, -1.0)))
    y = bn(bp.asarray(x))
    mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
    assert_close(y, (x - mean) / np.sqrt(var + 1e-3) * np.arange(1.0, 6.0) - 1, backend)
    assert_close(
        bn.get_buffer("running_var"), 0.5 + 0.5 * x.var((0, 1, 2), ddof=1), backend, rtol=1e-4
    )


def test_layernorm_by_hand_same_in_both_modes(backend, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    ln = bp.LayerNorm((4, 5), eps=1e-4)
    mean = x.mean((2, 3), keepdims=True)
    expected = (x - mean) / np.sqrt(x.var((2, 3), keepdims=True) + 1e-4)
    assert_close(ln(bp.asarray(x)), expected, backend)
    ln.eval()
    assert_close(ln(bp.asarray(x)), expected, backend)
    assert ln.buffers() == []


def test_eval_before_any_training_uses_zero_mean_unit_variance(backend, rng):
    x = rng.normal(size=(4, 3))
    bn = bp.BatchNorm1D(3).eval()
    assert_close(bn(bp.asarray(x)), x / np.sqrt(1 + 1e-5), backend)
    bn2 = bp.BatchNorm2D(3).eval()  # a batch of one sample is fine in evaluation mode
    x1 = rng.normal(size=(1, 1, 1, 3))
    assert_close(bn2(bp.asarray(x1)), x1 / np.sqrt(1 + 1e-5), backend)


# ---------------------------------------------------------------- gradients


# LayerNorm computes the same in both modes
MODES = [(c, t) for c in CASES for t in (True, False) if t or not c.startswith("layernorm")]


@pytest.mark.parametrize("case, training", MODES)
def test_gradcheck(f64, rng, case, training):
    make, shape, _ = CASES[case]
    layer = _randomize(make(), rng).train(training)
    assert bp.gradcheck(layer, bp.asarray(rng.normal(size=shape)))


def test_gradcheck_inside_a_network(f64, rng):
    net = bp.Sequentiel(bp.Linear(4, 3), bp.BatchNorm1D(3), bp.TanH(), bp.LayerNorm(3))
    assert bp.gradcheck(net, bp.asarray(rng.normal(size=(6, 4))))


@pytest.mark.parametrize("case", ["bn1d-sequence", "bn2d", "layernorm-2-axes"])
def test_gradients_accumulate_and_backward_pieces_agree(backend, rng, case):
    make, shape, _ = CASES[case]
    layer = _randomize(make(), rng)
    X, D = bp.asarray(rng.normal(size=shape)), bp.asarray(rng.normal(size=shape))
    layer.forward(X)
    dx = layer.backward(X, D)
    once = {k: bp.to_numpy(g).copy() for k, g in layer._gradient.items()}
    layer.backward_update_gradient(X, D)
    for k, g in layer._gradient.items():
        assert_close(g, 2 * once[k], backend)
    assert_close(layer.backward_delta(X, D), bp.to_numpy(dx), backend)
    assert_like(dx, backend, shape)
    layer.zero_grad()
    assert all(float(np.abs(bp.to_numpy(g)).max()) == 0 for g in layer._gradient.values())


def test_chain_backward_uses_the_statistics_of_its_forward(f64, rng):
    """Inside a network, backward uses the cached statistics of the matching forward; a second
    forward in between at another place does not disturb the first (shared module)."""
    bn = _randomize(bp.BatchNorm1D(3), rng)
    net = bp.Sequentiel(bn, bp.Linear(3, 3), bn)
    X = bp.asarray(rng.normal(size=(5, 3)))
    assert bp.gradcheck(net, X)


def test_public_backward_computes_from_its_input_in_the_current_mode(f64, rng):
    bn = _randomize(bp.BatchNorm1D(3), rng)
    a, b = bp.asarray(rng.normal(size=(5, 3))), bp.asarray(rng.normal(size=(5, 3)))
    D = bp.asarray(rng.normal(size=(5, 3)))
    bn.forward(a)
    fresh = _randomize(bp.BatchNorm1D(3), np.random.default_rng(1234))
    for key in ("weight", "bias"):
        fresh.set_parameter(key, bn.get_parameter(key))
    assert_close(bn.backward_delta(b, D), bp.to_numpy(fresh.backward_delta(b, D)), f64)
    bn.eval()
    scale = bp.to_numpy(bn.get_parameter("weight")) / np.sqrt(
        bp.to_numpy(bn.get_buffer("running_var")) + 1e-5
    )
    assert_close(bn.backward_delta(b, D), bp.to_numpy(D) * scale, f64)


# ------------------------------------------------------------------ PyTorch


def _torch_pair(torch, case, rng, training):
    """A torch module and the library's layer made from it by the layer's own hook."""
    make, shape, perm = CASES[case]
    layer = _randomize(make(), rng)
    module = layer.to_torch(_converter())
    module.train(training)
    back = type(layer).from_torch(module, _converter())
    return module, back, shape, perm


def _parity(torch, module, layer, x, perm, rng):
    """Largest differences (forward, input gradient, each parameter gradient, each buffer
    after the step) between ``module`` and ``layer`` on ``x`` (library layout)."""
    inverse = tuple(np.argsort(perm))
    tx = torch.tensor(np.transpose(x, perm), requires_grad=True)
    ty = module(tx)
    delta = rng.normal(size=x.shape)
    ty.backward(torch.tensor(np.transpose(delta, perm)))
    X, D = bp.asarray(x), bp.asarray(delta)
    net = bp.Sequentiel(layer)  # the path a training step takes (chain_forward/chain_backward)
    Y = net.forward(X)
    dX = net.backward(X, D)
    diffs = {
        "forward": np.abs(bp.to_numpy(Y) - np.transpose(ty.detach().numpy(), inverse)).max(),
        "input gradient": np.abs(bp.to_numpy(dX) - np.transpose(tx.grad.numpy(), inverse)).max(),
    }
    for key in layer._parameters:
        expected = getattr(module, key).grad.numpy()
        diffs[key] = np.abs(bp.to_numpy(layer._gradient[key]) - expected).max()
    for key in layer._buffers:
        diffs[key] = np.abs(bp.to_numpy(layer._buffers[key]) - getattr(module, key).numpy()).max()
    return diffs


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("training", [True, False])
def test_torch_parity_through_the_layer_hooks(f64, rng, case, training):
    torch = try_torch()
    module, layer, shape, perm = _torch_pair(torch, case, rng, training)
    assert layer.training is training
    x = rng.normal(size=shape) * 2 + 0.5
    diffs = _parity(torch, module, layer, x, perm, rng)
    for what, diff in diffs.items():
        assert diff <= 1e-10, (what, diff)


def _torch_network_parity(torch, f64, module, x_torch, perm, rng):
    module.zero_grad()
    net = bp.from_torch(module, tuple(x_torch.shape[1:]))
    tx = torch.tensor(x_torch, requires_grad=True)
    ty = module(tx)
    delta = rng.normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(delta))
    X = bp.asarray(np.transpose(x_torch, perm))
    out_perm = perm if ty.ndim == len(perm) else (0, 1)
    assert_close(net.forward(X), np.transpose(ty.detach().numpy(), out_perm), f64, **TOL)
    dX = net.backward(X, bp.asarray(np.transpose(delta, out_perm)))
    assert_close(dX, np.transpose(tx.grad.numpy(), perm), f64, **TOL)
    norms = (bp.BatchNorm1D, bp.BatchNorm2D, bp.LayerNorm)
    for layer, torch_layer in zip(net, module):
        if isinstance(layer, norms):
            for key, grad in layer._gradient.items():
                assert_close(grad, getattr(torch_layer, key).grad.numpy(), f64, **TOL)
    for name, value in net.named_buffers():
        assert_close(value, dict(module.named_buffers())[name].numpy(), f64, **TOL)
    return net


def test_torch_parity_through_from_torch(f64, rng):
    torch = try_torch()
    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 5),
        nn.BatchNorm1d(5), nn.LayerNorm(5),
    ).double()  # fmt: skip
    with torch.no_grad():
        for m in (module[1], module[5], module[6]):
            m.weight.normal_()
            m.bias.normal_()
    module[1].running_var.uniform_(0.5, 2.0)
    net = _torch_network_parity(torch, f64, module, rng.normal(size=(4, 2, 6)), (0, 2, 1), rng)
    assert isinstance(net[1], bp.BatchNorm1D) and isinstance(net[6], bp.LayerNorm)
    module.eval()
    net = _torch_network_parity(torch, f64, module, rng.normal(size=(4, 2, 6)), (0, 2, 1), rng)
    assert not net[1].training
    image = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).double()
    _torch_network_parity(torch, f64, image, rng.normal(size=(3, 1, 5, 4)), (0, 2, 3, 1), rng)
    back = bp.to_torch(net, (6, 2))
    assert isinstance(back[1], nn.BatchNorm1d) and isinstance(back[6], nn.LayerNorm)
    np.testing.assert_array_equal(back[1].running_var.numpy(), module[1].running_var.numpy())


def test_torch_conversion_refuses_other_axes(f64):
    torch = try_torch()
    nn = torch.nn
    with pytest.raises(ValueError, match="LayerNorm.from_torch.*channels first"):
        bp.from_torch(nn.Sequential(nn.Conv1d(2, 3, 3), nn.LayerNorm(4)), (2, 6))
    with pytest.raises(ValueError, match="BatchNorm1D.to_torch.*axis 1"):
        bp.to_torch(bp.Sequentiel(bp.BatchNorm1D(3)), (5, 3))


def test_to_torch_keeps_vectors_and_mode(f64, rng):
    torch = try_torch()
    bn = _randomize(bp.BatchNorm2D(3, eps=1e-3, momentum=0.3), rng).eval()
    module = bn.to_torch(_converter())
    assert isinstance(module, torch.nn.BatchNorm2d) and not module.training
    assert (module.eps, module.momentum) == (1e-3, 0.3)
    for key in ("weight", "bias"):
        assert_close(getattr(module, key).detach().numpy(), bp.to_numpy(bn.get_parameter(key)), f64)
    for key in ("running_mean", "running_var"):
        assert_close(getattr(module, key).numpy(), bp.to_numpy(bn.get_buffer(key)), f64)
    # PyTorch updates its running statistics in place: the layer made from it owns copies
    module.train()
    back = bp.BatchNorm2D.from_torch(module, _converter())
    before = bp.to_numpy(back.get_buffer("running_mean")).copy()
    module(torch.tensor(rng.normal(size=(2, 3, 2, 2))))
    np.testing.assert_array_equal(bp.to_numpy(back.get_buffer("running_mean")), before)


def test_from_torch_refuses_what_it_cannot_represent():
    torch = try_torch()
    c = _converter()
    with pytest.raises(ValueError, match="BatchNorm1D.from_torch.*track_running_stats"):
        bp.BatchNorm1D.from_torch(torch.nn.BatchNorm1d(3, track_running_stats=False), c)
    with pytest.raises(ValueError, match="BatchNorm2D.from_torch.*momentum=None"):
        bp.BatchNorm2D.from_torch(torch.nn.BatchNorm2d(3, momentum=None), c)


def test_torch_names():
    assert bp.BatchNorm1D.torch_names == ("BatchNorm1d",)
    assert bp.BatchNorm2D.torch_names == ("BatchNorm2d",)
    assert bp.LayerNorm.torch_names == ("LayerNorm",)


# ---------------------------------------------------------------- state


def test_buffers_are_never_touched_by_optimizers(backend, rng):
    bn = bp.BatchNorm1D(3)
    net = bp.Sequentiel(bp.Linear(2, 3), bn, bp.ReLU(), bp.Linear(3, 2))
    assert ("1.running_mean" in dict(net.named_buffers())) and len(net.parameters()) == 6
    assert all(key in ("weight", "bias") for _, key in net.parameter_slots())
    opt = bp.Optim(net, bp.MSELoss(), 0.1, optimizer="adam")
    X, Y = bp.asarray(rng.normal(size=(8, 2))), bp.asarray(rng.normal(size=(8, 2)))
    opt.step(X, Y)
    after_step = bp.to_numpy(bn.get_buffer("running_mean")).copy()
    opt.optimizer.step(net)  # an update alone leaves the running statistics as they are
    np.testing.assert_array_equal(bp.to_numpy(bn.get_buffer("running_mean")), after_step)


def test_module_used_twice_updates_its_statistics_twice(backend, rng):
    bn = bp.BatchNorm1D(2, momentum=0.5)
    net = bp.Sequentiel(bn, bp.Linear(2, 2), bn)
    x = rng.normal(size=(6, 2))
    net.forward(bp.asarray(x))
    mean1 = x.mean(0)
    # the second use sees the Linear's output of the first use's normalised input
    xhat = (x - mean1) / np.sqrt(x.var(0) + 1e-5)
    w, b = (bp.to_numpy(net[1].get_parameter(k)) for k in ("weight", "bias"))
    h = xhat @ w + b
    expected = 0.5 * (0.5 * mean1) + 0.5 * h.mean(0)
    assert_close(bn.get_buffer("running_mean"), expected, backend, rtol=1e-4, atol=1e-5)


def test_save_load_round_trip_is_bit_identical(backend, rng, tmp_path):
    net = bp.Sequentiel(bp.Linear(3, 4), bp.BatchNorm1D(4, momentum=0.2), bp.LayerNorm(4))
    net.forward(bp.asarray(rng.normal(size=(5, 3))))
    net.eval()
    path = tmp_path / "net.npz"
    bp.save(net, path)
    loaded = bp.load(path)
    assert isinstance(loaded[1], bp.BatchNorm1D) and loaded[1].momentum == 0.2
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(
            bp.to_numpy(loaded.state_dict()[key]), bp.to_numpy(value), err_msg=key
        )
    loaded.eval()
    X = bp.asarray(rng.normal(size=(4, 3)))
    np.testing.assert_array_equal(bp.to_numpy(loaded.forward(X)), bp.to_numpy(net.forward(X)))
    json.dumps([bp.BatchNorm2D(3).get_config(), bp.LayerNorm((2, 3)).get_config()])
    assert bp.LayerNorm.from_config(bp.LayerNorm((2, 3)).get_config(), []).normalized_shape == (
        2,
        3,
    )


def test_state_shapes_match_the_layers():
    for layer in (
        bp.BatchNorm1D(3),
        bp.BatchNorm2D(4, affine=False),
        bp.LayerNorm((2, 3)),
        bp.LayerNorm(3, bias=False),
        bp.LayerNorm(3, elementwise_affine=False),
    ):
        shapes = type(layer).state_shapes(layer.get_config())
        actual = {k: tuple(v.shape) for k, v in {**layer._parameters, **layer._buffers}.items()}
        assert shapes == actual


def _train(X, y, epochs, path=None, resume=False, crash_at=None):
    class Crash(bp.Callback):
        def on_epoch_begin(self, trainer, epoch):
            if epoch == crash_at:
                raise KeyboardInterrupt

    with bp.use_backend("numpy", dtype="float64"):
        bp.manual_seed(3)
        net = bp.Sequentiel(
            bp.Linear(4, 8), bp.BatchNorm1D(8), bp.ReLU(), bp.LayerNorm(8), bp.Linear(8, 3)
        )
        bp.SGD(
            net, bp.CELogSoftmax(), X, y, batch_size=8, epochs=epochs, eps=0.05,
            optimizer="adam", checkpoint=path, resume=resume,
            callbacks=[Crash()] if crash_at else (),
        )  # fmt: skip
        return {k: bp.to_numpy(v) for k, v in net.state_dict().items()}


def test_checkpoint_resume_gives_bit_identical_running_statistics(tmp_path, rng):
    X = rng.normal(size=(30, 4))
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    full = _train(X, y, 4)
    path = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        _train(X, y, 4, path, crash_at=2)
    resumed = _train(X, y, 4, path, resume=True)
    assert "1.running_var" in full
    for k in full:
        np.testing.assert_array_equal(resumed[k], full[k], err_msg=k)


def test_compiled_step_threads_the_running_statistics(f64, rng):
    if not f64.compiles:
        pytest.skip(f"{f64.name} has no compiled step")
    X = bp.asarray(rng.normal(size=(12, 4)))
    y = bp.asarray(rng.integers(0, 3, 12))
    states = []
    for compile in (False, True):
        bp.manual_seed(0)
        net = bp.Sequentiel(bp.Linear(4, 5), bp.BatchNorm1D(5), bp.ReLU(), bp.Linear(5, 3))
        opt = bp.Optim(net, bp.CELogSoftmax(), 0.1, compile=compile)
        for _ in range(3):
            opt.step(X, y)
        net.eval()
        opt.step(X, y)  # evaluation mode: a new program that leaves the statistics alone
        states.append({k: bp.to_numpy(v) for k, v in net.state_dict().items()})
    for k in states[0]:
        np.testing.assert_allclose(states[1][k], states[0][k], rtol=1e-12, atol=1e-12, err_msg=k)


def test_to_moves_buffers(backend):
    bn = bp.BatchNorm1D(2)
    other = "float32" if backend.dtype_name == "float64" else "float64"
    bn.to(dtype=other)
    for array in (bn.get_buffer("running_var"), bn.get_buffer("running_mean")):
        assert array.dtype == bn.get_parameter("weight").dtype
        assert str(array.dtype).endswith(other)
    y = bn.forward(bp.asarray(np.arange(6.0).reshape(3, 2)))
    assert y.dtype == bn.get_parameter("weight").dtype
    assert str(bn.get_buffer("running_mean").dtype).endswith(other)


# ---------------------------------------------------------------- summary


def test_summary_rows():
    net = bp.Sequentiel(
        bp.Conv2D(3, 1, 4), bp.BatchNorm2D(4), bp.Flatten(), bp.Linear(64, 6), bp.LayerNorm(6)
    )
    text = net.summary((6, 6, 1))
    rows = [line for line in text.splitlines() if line.startswith(("1 ", "4 "))]
    assert "BatchNorm2D(4)" in rows[0] and "(N, 4, 4, 4)" in rows[0] and rows[0].endswith(" 8")
    assert "LayerNorm(6)" in rows[1] and "(N, 6)" in rows[1] and rows[1].endswith(" 12")
    assert net.output_shape((None, 6, 6, 1)) == (None, 6)
    # the summary runs in evaluation mode: the running statistics are untouched
    np.testing.assert_array_equal(bp.to_numpy(net[1].get_buffer("running_mean")), np.zeros(4))
    assert net[1].training


# ---------------------------------------------------------------- hostile


@pytest.mark.parametrize(
    "layer, shape, match",
    [
        (lambda: bp.BatchNorm1D(3), (4,), r"BatchNorm1D\(3\).forward: expected input of shape"),
        (lambda: bp.BatchNorm1D(3), (4, 2), r"\(N, 3\) or \(N, L, 3\), got \(4, 2\)"),
        (lambda: bp.BatchNorm1D(3), (2, 2, 2, 3), r"got \(2, 2, 2, 3\)"),
        (lambda: bp.BatchNorm2D(3), (4, 5, 3), r"BatchNorm2D\(3\).forward.*\(N, H, W, 3\)"),
        (lambda: bp.BatchNorm2D(3), (1, 2, 2, 4), r"\(N, H, W, 3\), got \(1, 2, 2, 4\)"),
        (lambda: bp.LayerNorm(3), (3,), r"LayerNorm\(3\).forward: expected input of shape"),
        (lambda: bp.LayerNorm((2, 3)), (4, 3, 2), r"\(N, \*, 2, 3\), got \(4, 3, 2\)"),
        (lambda: bp.BatchNorm1D(3), (0, 3), r"BatchNorm1D\(3\).forward: the input is empty"),
        (lambda: bp.BatchNorm1D(3), (2, 0, 3), r"the input is empty"),
        (lambda: bp.BatchNorm2D(2), (0, 2, 2, 2), r"the input is empty"),
        (lambda: bp.BatchNorm1D(3), (1, 3), r"expected more than 1 value per channel"),
        (lambda: bp.BatchNorm1D(3), (1, 1, 3), r"more than 1 value per channel"),
        (lambda: bp.BatchNorm2D(3), (1, 1, 1, 3), r"more than 1 value per channel"),
    ],
)
def test_shape_errors_name_the_layer(backend, layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer()(bp.asarray(np.ones(shape)))


def test_batch_of_one_with_positions_trains_and_empty_eval_is_refused(backend, rng):
    bp.BatchNorm1D(3)(bp.asarray(rng.normal(size=(1, 4, 3))))  # 4 values per channel
    with pytest.raises(ValueError, match="the input is empty"):
        bp.BatchNorm1D(3).eval()(bp.asarray(np.ones((0, 3))))
    out = bp.LayerNorm(3)(bp.asarray(np.ones((0, 3))))  # per-sample: an empty batch is empty
    assert tuple(out.shape) == (0, 3)


def test_backward_errors(backend, rng):
    bn = bp.BatchNorm1D(3)
    X = bp.asarray(rng.normal(size=(4, 3)))
    with pytest.raises(ValueError, match=r"BatchNorm1D\(3\).backward_delta: expected delta of"):
        bn.backward_delta(X, bp.asarray(np.ones((4, 2))))
    with pytest.raises(ValueError, match=r"LayerNorm\(3\).backward: expected delta of"):
        bp.LayerNorm(3).backward(X, bp.asarray(np.ones((3, 3))))
    with pytest.raises(TypeError, match=r"BatchNorm1D\(3\).forward.*floating"):
        bn.forward(bp.asarray(np.ones((4, 3), dtype=np.int64), dtype="int64"))


def test_nan_passes_through_its_channel_only(backend, rng):
    x = rng.normal(size=(5, 3))
    x[2, 1] = np.nan
    bn = bp.BatchNorm1D(3)
    y = bp.to_numpy(bn(bp.asarray(x)))
    assert np.isnan(y[:, 1]).all() and np.isfinite(y[:, [0, 2]]).all()
    running = bp.to_numpy(bn.get_buffer("running_mean"))
    assert np.isnan(running[1]) and np.isfinite(running[[0, 2]]).all()  # as in PyTorch
    y = bp.to_numpy(bp.LayerNorm(3)(bp.asarray(x)))
    assert np.isnan(y[2]).all() and np.isfinite(np.delete(y, 2, axis=0)).all()


def test_changing_the_input_in_place_after_forward_cannot_mix_values(f64, rng):
    """The public container copies its input: a change in place between forward and backward
    has no effect on the gradient (all computed at the forward's values)."""
    if not f64.mutable:
        pytest.skip(f"{f64.name} arrays cannot be changed in place")
    net = bp.Sequentiel(_randomize(bp.BatchNorm1D(3), rng))
    x = rng.normal(size=(5, 3))
    X, D = bp.asarray(x), bp.asarray(rng.normal(size=(5, 3)))
    net.forward(X)
    expected = bp.to_numpy(net.backward(X, D)).copy()
    net.forward(X)
    X[...] = 0.0
    assert_close(net.backward(X, D), expected, f64)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: bp.BatchNorm1D(0), r"BatchNorm1D: num_features must be a positive int"),
        (lambda: bp.BatchNorm2D(2.5), r"BatchNorm2D: num_features"),
        (lambda: bp.BatchNorm1D(3, eps=0), r"BatchNorm1D: eps must be a positive finite"),
        (lambda: bp.BatchNorm1D(3, eps=float("nan")), r"BatchNorm1D: eps"),
        (lambda: bp.BatchNorm1D(3, momentum=1.5), r"BatchNorm1D: momentum must be a number"),
        (lambda: bp.BatchNorm2D(3, momentum=None), r"BatchNorm2D: momentum"),
        (lambda: bp.BatchNorm1D(3, affine=1), r"BatchNorm1D: affine must be True or False"),
        (lambda: bp.LayerNorm(()), r"LayerNorm: normalized_shape must not be empty"),
        (lambda: bp.LayerNorm((2, -1)), r"LayerNorm: normalized_shape entries"),
        (lambda: bp.LayerNorm("3"), r"LayerNorm: normalized_shape must be a positive int"),
        (lambda: bp.LayerNorm(3, bias=None), r"LayerNorm: bias must be True or False"),
    ],
)
def test_constructor_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_repr():
    assert repr(bp.BatchNorm1D(3)) == "BatchNorm1D(3)"
    shown = repr(bp.BatchNorm2D(3, eps=1e-3, affine=False))
    assert shown == "BatchNorm2D(3, eps=0.001, affine=False)"
    assert repr(bp.LayerNorm((2, 3), bias=False)) == "LayerNorm((2, 3), bias=False)"


# ---------------------------------------------------------------- ONNX


ONNX_CASES = {
    "bn1d-features": (lambda: bp.BatchNorm1D(3), (3,)),
    "bn1d-sequence": (lambda: bp.BatchNorm1D(3), (6, 3)),
    "bn2d-after-conv": (lambda: bp.Sequentiel(bp.Conv2D(3, 2, 3), bp.BatchNorm2D(3)), (5, 5, 2)),
    "bn2d-no-affine": (lambda: bp.BatchNorm2D(2, affine=False), (4, 3, 2)),
    "layernorm-after-conv": (lambda: bp.Sequentiel(bp.Conv1D(2, 2, 3), bp.LayerNorm(3)), (6, 2)),
    "layernorm-2-axes-no-affine": (lambda: bp.LayerNorm((4, 3), elementwise_affine=False), (4, 3)),
}


@pytest.mark.parametrize("case", list(ONNX_CASES))
def test_onnx_export_runs_in_onnx_runtime(case, tmp_path, rng):
    pytest.importorskip("onnx", reason="onnx is not installed")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    make, sample = ONNX_CASES[case]
    with bp.use_backend("numpy", dtype="float32"):
        bp.manual_seed(0)
        net = make()
        for m in net.modules():
            if m._parameters and not m.children() and type(m).__module__.endswith("normalization"):
                _randomize(m, rng)
            if m._buffers:
                _randomize(m, rng)
        net.train()
        net.forward(bp.asarray(rng.normal(size=(8, *sample))))  # running statistics of data
        net.eval()
        path = tmp_path / "norm.onnx"
        bp.export_onnx(net, path, sample)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for n in (1, 7):
            x = rng.normal(size=(n, *sample)).astype(np.float32)
            got = session.run(["output"], {"input": x})[0]
            np.testing.assert_allclose(
                got, bp.to_numpy(net.forward(bp.asarray(x))), rtol=1e-4, atol=1e-5
            )


def test_predict_on_a_dask_array_uses_the_running_statistics(rng):
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    from backprop.streaming import predict

    with bp.use_backend("numpy", dtype="float64"):
        net = bp.Sequentiel(bp.Linear(3, 4), bp.BatchNorm1D(4), bp.LayerNorm(4))
        net.forward(bp.asarray(rng.normal(size=(10, 3)) + 2))
        x = rng.normal(size=(20, 3))
        got = predict(net, da.from_array(x, chunks=7)).compute()
        net.eval()
        np.testing.assert_allclose(got, bp.to_numpy(net.forward(bp.asarray(x))), rtol=1e-12)


def test_from_torch_leaves_the_torch_module_as_it_was(f64):
    """The converter's shape probe runs in evaluation mode: a training-mode BatchNorm keeps its
    running statistics and its mode, and a batch of one is no problem."""
    torch = try_torch()
    nn = torch.nn
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    module = module.double().train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    net = bp.from_torch(module, (1, 4, 4))
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert module.training and module[1].training and net[1].training
