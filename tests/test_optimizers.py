import math

import numpy as np
import pytest

import backprop as bp
from conftest import assert_close, try_torch


def one_layer(rng):
    lin = bp.Linear(3, 2)
    x = bp.asarray(rng.normal(size=(4, 3)))
    d = bp.asarray(rng.normal(size=(4, 2)))
    lin.backward_update_gradient(x, d)
    return lin


def host(lin):
    return {k: bp.to_numpy(v).copy() for k, v in lin._parameters.items()}, {
        k: bp.to_numpy(v).copy() for k, v in lin._gradient.items()
    }


def test_gradient_descent_with_weight_decay(f64, rng):
    lin = one_layer(rng)
    p, g = host(lin)
    bp.GradientDescent(0.1, weight_decay=0.01).step(lin)
    for k in p:
        assert_close(lin._parameters[k], p[k] - 0.1 * (g[k] + 0.01 * p[k]), f64)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_two_steps_by_hand(f64, rng, nesterov):
    lin = one_layer(rng)
    p, g = host(lin)
    opt = bp.Momentum(0.1, momentum=0.9, nesterov=nesterov)
    opt.step(lin)
    opt.step(lin)  # same gradient twice
    for k in p:
        v1 = g[k]
        v2 = 0.9 * v1 + g[k]
        u1 = g[k] + 0.9 * v1 if nesterov else v1
        u2 = g[k] + 0.9 * v2 if nesterov else v2
        assert_close(lin._parameters[k], p[k] - 0.1 * u1 - 0.1 * u2, f64)


def test_adam_one_step_by_hand(f64, rng):
    lin = one_layer(rng)
    p, g = host(lin)
    bp.Adam(0.01, betas=(0.9, 0.999), eps=1e-8).step(lin)
    for k in p:
        m, v = 0.1 * g[k], 0.001 * g[k] ** 2
        expected = p[k] - 0.01 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
        assert_close(lin._parameters[k], expected, f64)


def test_state_lives_with_the_parameters(backend, rng):
    lin = one_layer(rng)
    opt = bp.Adam(0.01)
    opt.step(lin)
    assert opt._state
    for _, buffers in opt._state.values():
        for b in buffers.values():
            assert bp.backends.kind_of(b).name == backend.name and b.dtype == backend.dtype


def _torch_net(torch, net):
    layers = []
    for m in net:
        if isinstance(m, bp.Linear):
            t = torch.nn.Linear(m.in_features, m.out_features).double()
            with torch.no_grad():
                t.weight.copy_(torch.tensor(bp.to_numpy(m._parameters["weight"]).T))
                t.bias.copy_(torch.tensor(bp.to_numpy(m._parameters["bias"])))
            layers.append(t)
        else:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


_RULES = [
    "sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "rmsprop_centered",
    "rmsprop_momentum", "rmsprop_centered_momentum",
]  # fmt: skip


@pytest.mark.parametrize("name", _RULES)
def test_matches_torch_optim_step_for_step(f64, rng, name):
    torch = try_torch()
    net = bp.Sequentiel(bp.Linear(5, 7), bp.TanH(), bp.Linear(7, 3))
    tnet = _torch_net(torch, net)
    wd = 0.01
    ours = {
        "sgd": bp.GradientDescent(0.05, weight_decay=wd),
        "momentum": bp.Momentum(0.05, 0.9, weight_decay=wd),
        "nesterov": bp.Momentum(0.05, 0.9, nesterov=True, weight_decay=wd),
        "adam": bp.Adam(0.01, weight_decay=wd),
        "adamw": bp.AdamW(0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        "rmsprop": bp.RMSprop(0.01, weight_decay=wd),
        "rmsprop_centered": bp.RMSprop(0.01, alpha=0.9, centered=True),
        "rmsprop_momentum": bp.RMSprop(0.005, momentum=0.8, eps=1e-6, weight_decay=wd),
        "rmsprop_centered_momentum": bp.RMSprop(
            0.005, alpha=0.95, momentum=0.9, centered=True, weight_decay=wd
        ),
    }[name]
    params = list(tnet.parameters())
    theirs = {
        "sgd": lambda: torch.optim.SGD(params, lr=0.05, weight_decay=wd),
        "momentum": lambda: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=wd),
        "nesterov": lambda: torch.optim.SGD(
            params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=wd
        ),
        "adam": lambda: torch.optim.Adam(params, lr=0.01, weight_decay=wd),
        "adamw": lambda: torch.optim.AdamW(
            params, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1
        ),
        "rmsprop": lambda: torch.optim.RMSprop(params, lr=0.01, weight_decay=wd),
        "rmsprop_centered": lambda: torch.optim.RMSprop(params, lr=0.01, alpha=0.9, centered=True),
        "rmsprop_momentum": lambda: torch.optim.RMSprop(
            params, lr=0.005, momentum=0.8, eps=1e-6, weight_decay=wd
        ),
        "rmsprop_centered_momentum": lambda: torch.optim.RMSprop(
            params, lr=0.005, alpha=0.95, momentum=0.9, centered=True, weight_decay=wd
        ),
    }[name]()
    optim = bp.Optim(net, bp.CELogSoftmax(), optimizer=ours)
    for step in range(5 if name in ("sgd", "momentum", "nesterov", "adam") else 40):
        x, y = rng.normal(size=(8, 5)), rng.integers(0, 3, size=8)
        ours_loss = float(optim.step(bp.asarray(x), bp.asarray(y)))
        theirs.zero_grad()
        loss = torch.nn.functional.cross_entropy(tnet(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        theirs.step()
        assert ours_loss == pytest.approx(loss.item(), abs=1e-10), step
    for m, t in zip(
        [m for m in net if isinstance(m, bp.Linear)],
        [t for t in tnet if isinstance(t, torch.nn.Linear)],
    ):
        np.testing.assert_allclose(
            bp.to_numpy(m._parameters["weight"]), t.weight.detach().numpy().T, atol=1e-10
        )
        np.testing.assert_allclose(
            bp.to_numpy(m._parameters["bias"]), t.bias.detach().numpy(), atol=1e-10
        )


def test_optimizer_by_name_and_errors():
    assert isinstance(bp.optim.make_optimizer("adam", 0.01), bp.Adam)
    assert bp.optim.make_optimizer("nesterov", 0.01).nesterov
    adamw, rms = bp.optim.make_optimizer("AdamW", 0.02), bp.optim.make_optimizer("rmsprop", 0.03)
    assert type(adamw) is bp.AdamW and adamw.lr == 0.02 and adamw.weight_decay == 0.01
    assert type(rms) is bp.RMSprop and rms.lr == 0.03 and rms.buffers == ("square",)
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'"):
        bp.optim.make_optimizer("adagrad", 0.1)
    for bad in ({"alpha": 1.0}, {"alpha": -0.1}, {"momentum": 1}, {"alpha": True}):
        with pytest.raises(ValueError, match=f"RMSprop: {next(iter(bad))} must lie in"):
            bp.RMSprop(**bad)
    with pytest.raises(TypeError, match="RMSprop: centered must be True or False"):
        bp.RMSprop(centered="yes")
    with pytest.raises(ValueError, match="RMSprop: eps must be a positive number"):
        bp.RMSprop(eps=0)
    with pytest.raises(ValueError, match=r"AdamW: betas\[0\] must lie in"):
        bp.AdamW(betas=(1.5, 0.9))
    with pytest.raises(ValueError, match="AdamW: weight_decay must be a non-negative number"):
        bp.AdamW(weight_decay=float("nan"))
    assert repr(bp.RMSprop(momentum=0.5, centered=True)) == (
        "RMSprop(lr=0.01, alpha=0.99, eps=1e-08, momentum=0.5, centered=True)"
    )
    with pytest.raises(ValueError, match="lr must be a positive number"):
        bp.Adam(lr=-1)
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\)"):
        bp.Momentum(0.1, momentum=1.0)
    with pytest.raises(ValueError, match=r"betas\[1\] must lie in \[0, 1\)"):
        bp.Adam(betas=(0.9, 1.0))
    assert "Adam(lr=0.001" in repr(bp.Adam())


def test_schedules():
    opt = bp.GradientDescent(1.0)
    step = bp.StepLR(opt, step_size=2, gamma=0.5)
    assert [step.step() for _ in range(5)] == [1.0, 0.5, 0.5, 0.25, 0.25]
    opt = bp.GradientDescent(1.0)
    cos = bp.CosineLR(opt, total_epochs=4, min_lr=0.0)
    rates = [cos.step() for _ in range(5)]
    assert (
        rates[1] == pytest.approx(0.5)
        and rates[3] == pytest.approx(0.0)
        and rates[4] == pytest.approx(0.0)
    )
    assert rates[0] == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    with pytest.raises(TypeError, match="expected an Optimizer"):
        bp.StepLR("adam", 2)


def test_sgd_uses_optimizer_and_schedule(backend, rng):
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 3, size=60)
    net = bp.Sequentiel(bp.Linear(4, 8), bp.TanH(), bp.Linear(8, 3))
    hist = bp.SGD(
        net,
        bp.CELogSoftmax(),
        X,
        y,
        epochs=4,
        eps=0.1,
        optimizer="momentum",
        seed=0,
        scheduler=lambda opt: bp.StepLR(opt, step_size=2, gamma=0.1),
    )
    assert hist.lr == pytest.approx([0.1, 0.1, 0.01, 0.01])
    assert hist[-1] < hist[0]


def test_state_survives_a_copy_of_network_and_optimizer(backend, rng):
    """Buffers are keyed by module identity: a deep copy (or unpickling) must find them again."""
    import copy

    net = one_layer(rng)
    opt = bp.Adam(0.01)
    opt.step(net)
    net2, opt2 = copy.deepcopy((net, opt))
    moved = opt2.state_of(net2, "weight")["mean"]
    assert_close(moved, bp.to_numpy(opt.state_of(net, "weight")["mean"]), backend)
    assert bp.to_numpy(moved).any()  # not a fresh zero buffer


# ------------------------------------------------------------------ subnormal numbers


def _subnormal_count(x):
    a = np.asarray(bp.to_numpy(x))
    tiny = np.finfo(a.dtype).smallest_normal
    return int(np.count_nonzero((a != 0) & (np.abs(a) < tiny)))


def test_flush_zeroes_subnormals_only(backend):
    dtype = np.dtype(backend.dtype_name)
    tiny = np.finfo(dtype).smallest_normal
    values = np.array(
        [tiny, -tiny, tiny / 2, -tiny / 4, tiny * 0.999, 0.0, 1.5, -3.0, np.inf, -np.inf, np.nan],
        dtype=dtype,
    )
    x = bp.asarray(values)
    out = bp.to_numpy(backend.flush_(x))
    expected = values.copy()
    expected[2:5] = 0
    np.testing.assert_array_equal(out, expected)  # NaN stays NaN, infinities stay
    if backend.mutable:
        np.testing.assert_array_equal(bp.to_numpy(x), expected)  # written in place
    empty = backend.flush_(bp.asarray(np.zeros((0, 3), dtype=dtype)))
    assert tuple(empty.shape) == (0, 3)


_FLUSHING = {
    "adam": lambda: bp.Adam(1e-3),
    "adamw": lambda: bp.AdamW(1e-3),
    "rmsprop": lambda: bp.RMSprop(1e-3, momentum=0.5, centered=True),
}


@pytest.mark.parametrize("name", list(_FLUSHING))
def test_no_subnormals_after_many_steps_with_tiny_gradients(backend, name):
    """Tiny gradients (their squares are subnormal in float32), then none at all for hundreds of
    steps (the averages decay through the subnormal range): no buffer, parameter change or
    parameter ever holds a subnormal number."""
    lin = bp.Linear(3, 2)
    opt = _FLUSHING[name]()
    x = bp.asarray(np.ones((2, 3)))
    tiny = 1e-21 if backend.dtype_name == "float32" else 1e-160
    d = bp.asarray(np.array([[tiny, -tiny], [3 * tiny, 0.0]]))
    seen = []
    for step in range(700):
        lin.zero_grad()
        if step < 5:
            lin.backward_update_gradient(x, d)
        before = {k: bp.to_numpy(v).copy() for k, v in lin._parameters.items()}
        opt.step(lin)
        if step % 50 == 0 or step < 10 or step > 690:
            for _, buffers in opt._state.values():
                seen.append(sum(_subnormal_count(b) for b in buffers.values()))
            for k, v in lin._parameters.items():
                seen.append(_subnormal_count(before[k] - bp.to_numpy(v)))
                seen.append(_subnormal_count(v))
    assert sum(seen) == 0
    # the gradients did reach the moments: the first steps moved the weights
    assert any(buffers for _, buffers in opt._state.values())


def test_flush_leaves_normal_trajectories_bit_identical(rng):
    """On normal values the flushed Adam computes exactly the unflushed formula (float32)."""
    with bp.use_backend("numpy", dtype="float32"):
        lin = one_layer(rng)
        p, g = host(lin)
        opt = bp.Adam(0.01)
        m = {k: np.zeros_like(v) for k, v in p.items()}
        v = {k: np.zeros_like(x) for k, x in p.items()}
        for t in range(1, 4):
            opt.step(lin)
            for k in p:
                m[k] = m[k] * np.float32(0.9) + np.float32(0.1) * g[k]
                v[k] = v[k] * np.float32(0.999) + np.float32(1 - 0.999) * (g[k] * g[k])
                c1, c2 = 1 - 0.9**t, 1 - 0.999**t
                step = m[k] / (np.sqrt(v[k]) / c2**0.5 + 1e-8)
                p[k] = p[k] - step * (0.01 / c1)
                np.testing.assert_array_equal(bp.to_numpy(lin._parameters[k]), p[k])


@pytest.mark.parametrize("name", ["adamw", "rmsprop"])
def test_state_dict_round_trip_and_foreign_buffers(backend, rng, name):
    net = one_layer(rng)
    opt = bp.AdamW(0.01) if name == "adamw" else bp.RMSprop(0.01, momentum=0.9, centered=True)
    opt.step(net)
    opt.step(net)
    state = opt.state_dict(net)
    again = bp.AdamW(0.01) if name == "adamw" else bp.RMSprop(0.01, momentum=0.9, centered=True)
    again.load_state_dict(net, state)
    assert again.steps == 2
    for key, value in state.items():
        if key not in ("steps", "lr"):
            layer, buffer = key.split("/")
            assert_close(again.state_of(net, layer)[buffer], bp.to_numpy(value), backend)
    if name == "rmsprop":  # a plain RMSprop has no grad_mean nor momentum buffers: refused
        with pytest.raises(ValueError, match=r"RMSprop.load_state_dict: the state holds"):
            bp.RMSprop(0.01).load_state_dict(net, state)


def test_fused_adam_update_is_the_standard_one_bit_for_bit(backend, rng):
    """A backend's own adam_update_ gives the standard version's bits, zeros, subnormals, NaN
    and all."""
    dtype = np.dtype(backend.dtype_name)
    tiny = np.finfo(dtype).smallest_normal

    def arrays():
        g = rng.normal(size=(7, 5)).astype(dtype)
        g[0] = 0
        g[1, :3] = [tiny / 8, np.nan, 1e-30]
        m = (rng.normal(size=(7, 5)) * 1e-3).astype(dtype)
        m[2] = tiny * 2
        v = (rng.random(size=(7, 5)) * 1e-6).astype(dtype)
        v[3] = tiny / 2
        return rng.normal(size=(7, 5)).astype(dtype), g, m, v

    for t in (1, 50):
        host_arrays = arrays()
        own = backend.adam_update_(
            *(bp.asarray(a.copy()) for a in host_arrays), (0.9, 0.999), 1e-3 / (1 - 0.9**t),
            (1 - 0.999**t) ** 0.5, 1e-8,
        )  # fmt: skip
        std = bp.backends.Backend.adam_update_(
            backend, *(bp.asarray(a.copy()) for a in host_arrays), (0.9, 0.999),
            1e-3 / (1 - 0.9**t), (1 - 0.999**t) ** 0.5, 1e-8,
        )  # fmt: skip
        for a, b in zip(own, std):
            np.testing.assert_array_equal(bp.to_numpy(a), bp.to_numpy(b))
            assert _subnormal_count(a) == 0


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop"])
def test_flushing_optimizers_stay_on_a_second_device(rng, name):
    """The buffers, the flush and the centered denominator stay on the parameters' device
    (array-api-strict refuses to mix devices)."""
    pytest.importorskip("array_api_strict")
    with bp.use_backend("array_api_strict", device="device1", dtype="float64") as b:
        lin = one_layer(rng)
        opt = _FLUSHING[name]()
        opt.step(lin)
        opt.step(lin)
        for _, buffers in opt._state.values():
            for value in buffers.values():
                assert str(value.device) == str(b.device)
        for value in lin._parameters.values():
            assert str(value.device) == str(b.device)


# ------------------------------------------------ Adam over every parameter at once


class _OneByOne(bp.Adam):
    """Adam updating parameter by parameter (the reference for the fused update)."""

    def _apply_all(self, slots, lr, t):
        return False


class _OneByOneW(bp.AdamW):
    def _apply_all(self, slots, lr, t):
        return False


def _tiny_net(rng, dtype):
    net = bp.Sequentiel(bp.Linear(5, 4), bp.TanH(), bp.Linear(4, 3), bp.TanH(), bp.Linear(3, 2))
    for m, key in net.parameter_slots():
        shape = tuple(m.get_parameter(key).shape)
        m.set_parameter(key, bp.asarray(rng.normal(size=shape).astype(dtype)))
    return net


def _set_gradients(net, rng, dtype, step):
    tiny = np.finfo(dtype).smallest_normal
    net.zero_grad()
    for m, key in net.parameter_slots():
        g = rng.normal(size=tuple(m.get_parameter(key).shape)).astype(dtype)
        if step > 3:
            g[...] = 0  # the moments decay through the subnormal range
        elif g.ndim == 2:
            g[0, 0], g[-1, -1] = tiny / 8, 1e-30  # subnormal squares
        m._gradient[key] = bp.asarray(g)
        m._zero_keys.discard(key)


@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_fused_adam_over_all_parameters_is_the_one_by_one_update_bit_for_bit(backend, rng, kind):
    """The backend's update of every parameter at once (NumPy: one flat buffer) gives the bits
    of the update parameter by parameter, through decaying moments, a state replaced between
    steps (load_state_dict, a buffer assigned by hand), a pickled optimizer and a reset."""
    import pickle

    dtype = np.dtype(backend.dtype_name)
    seed = int(rng.integers(1 << 30))
    nets = [_tiny_net(np.random.default_rng(seed), dtype) for _ in range(2)]
    make = (bp.Adam, _OneByOne) if kind == "adam" else (bp.AdamW, _OneByOneW)
    opts = [cls(0.05) for cls in make]
    grads = [np.random.default_rng(seed + 1) for _ in range(2)]
    for step in range(60):
        for net, opt, g in zip(nets, opts, grads):
            _set_gradients(net, g, dtype, step)
            opt.step(net)
        if step == 10:  # a state given back
            for net, opt in zip(nets, opts):
                opt.load_state_dict(net, opt.state_dict(net))
        if step == 15:  # a buffer replaced by hand
            for net, opt in zip(nets, opts):
                m, key = next(net.parameter_slots())
                state = opt.state_of(m, key)
                state["mean"] = backend.copy(state["mean"]) * 0.5
        if step == 20:
            opts = [pickle.loads(pickle.dumps(opt)) for opt in opts]
            nets = [pickle.loads(pickle.dumps(net)) for net in nets]
        for a, b in zip(nets[0].parameters(), nets[1].parameters()):
            np.testing.assert_array_equal(bp.to_numpy(a), bp.to_numpy(b))
    if backend.name in ("numpy", "torch"):  # the fused update did run (one flat buffer)
        assert opts[0]._fused and not opts[1]._fused
    for opt in opts:
        for _, buffers in opt._state.values():
            for value in buffers.values():
                assert _subnormal_count(value) == 0
    a, b = (opt.state_dict(net) for opt, net in zip(opts, nets))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(bp.to_numpy(a[key]), bp.to_numpy(b[key]))


def test_an_adam_subclass_with_its_own_rule_is_used(backend, rng):
    """A subclass that redefines update (or adds buffers) gets its own rule, never the fused
    update of every parameter."""

    class Frozen(bp.Adam):
        def update(self, backend, p, g, state, lr, t):
            return p

    net = _tiny_net(rng, np.dtype(backend.dtype_name))
    _set_gradients(net, rng, np.dtype(backend.dtype_name), 0)
    before = [bp.to_numpy(p).copy() for p in net.parameters()]
    Frozen(0.1).step(net)
    for a, b in zip(before, net.parameters()):
        np.testing.assert_array_equal(a, bp.to_numpy(b))


def test_fused_adam_after_the_network_changes_dtype(rng):
    """After net.to(dtype=...) the moments of the old dtype are not reused as a flat buffer of
    that dtype: the update is the one parameter by parameter, bit for bit."""
    with bp.use_backend("numpy", dtype="float32"):
        seed = int(rng.integers(1 << 30))
        nets = [_tiny_net(np.random.default_rng(seed), np.float32) for _ in range(2)]
        opts = [bp.Adam(0.05), _OneByOne(0.05)]
        for step in range(3):
            if step == 1:
                nets = [net.to(dtype="float64") for net in nets]
            for net, opt in zip(nets, opts):
                net.zero_grad()
                for m, key in net.parameter_slots():
                    # 1 + 1e-12 is 1 in float32: a float32 buffer would round it away
                    shape = tuple(m.get_parameter(key).shape)
                    m.accumulate_gradient(
                        key, bp.asarray(np.full(shape, 1 + 1e-12), backend=m.backend)
                    )
                opt.step(net)
            for a, b in zip(nets[0].parameters(), nets[1].parameters()):
                np.testing.assert_array_equal(bp.to_numpy(a), bp.to_numpy(b))


def test_a_pickled_fused_optimizer_holds_each_buffer_once(backend, rng):
    """The moments are views of one flat buffer: pickling writes each one on its own, not the
    whole buffer once per view (PyTorch views carry their storage)."""
    import pickle

    net = bp.Sequentiel(*(bp.Linear(40, 40) for _ in range(6)))
    opt = bp.Adam(0.01)
    _set_gradients(net, rng, np.dtype(backend.dtype_name), 0)
    opt.step(net)
    size = len(pickle.dumps(opt))
    moments = 2 * sum(int(np.prod(tuple(p.shape))) for p in net.parameters())
    assert size < 1.5 * moments * np.dtype(backend.dtype_name).itemsize + 200_000
    again = pickle.loads(pickle.dumps((net, opt)))
    for (_, a), (_, b) in zip(opt._state.values(), again[1]._state.values()):
        for name in a:
            np.testing.assert_array_equal(bp.to_numpy(a[name]), bp.to_numpy(b[name]))


def test_fused_adam_refuses_moments_of_a_replaced_parameter_shape(rng):
    """A parameter replaced by one of another shape after a step: an error, as the update
    parameter by parameter gives, never moments broadcast into the new shape."""
    with bp.use_backend("numpy", dtype="float32"):
        net = _tiny_net(rng, np.float32)
        opt = bp.Adam(0.01)
        _set_gradients(net, rng, np.float32, 0)
        opt.step(net)
        lin = net[0]
        lin.set_parameter("bias", bp.asarray(np.zeros((3, 4), dtype=np.float32)))
        lin._gradient["bias"] = bp.asarray(np.ones((3, 4), dtype=np.float32))
        lin._zero_keys.discard("bias")
        with pytest.raises(ValueError):
            opt.step(net)
