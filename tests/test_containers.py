import numpy as np
import pytest

import backprop as bp
from conftest import assert_close, assert_like


def make_net():
    return bp.Sequentiel(bp.Linear(4, 6), bp.TanH(), bp.Linear(6, 3), bp.Sigmoid())


def test_forward_is_composition(backend, rng):
    net = make_net()
    x = bp.asarray(rng.normal(size=(5, 4)))
    out = net(x)
    assert_like(out, backend, (5, 3))
    manual = x
    for m in net:
        manual = m(manual)
    assert_close(out, bp.to_numpy(manual), backend)


def test_gradcheck_nested(f64, rng):
    inner = bp.Sequentiel(bp.Linear(4, 5), bp.TanH())
    net = bp.Sequentiel(inner, bp.Linear(5, 3), bp.Sequentiel(bp.Sigmoid()))
    assert bp.gradcheck(net, bp.asarray(rng.normal(size=(3, 4))))
    assert len(net.parameters()) == 4
    assert [n for n, _ in net.named_parameters()] == [
        "0.0.weight",
        "0.0.bias",
        "1.weight",
        "1.bias",
    ]


def test_seed_style_two_calls_equal_backward(f64, rng):
    net = make_net()
    x, d = bp.asarray(rng.normal(size=(5, 4))), bp.asarray(rng.normal(size=(5, 3)))
    net.forward(x)
    net.backward_update_gradient(x, d)
    g1 = [bp.to_numpy(g).copy() for m in net.modules() for g in m._gradient.values()]
    delta1 = bp.to_numpy(net.backward_delta(x, d))
    net.zero_grad()
    delta2 = bp.to_numpy(net.backward(x, d))
    g2 = [bp.to_numpy(g) for m in net.modules() for g in m._gradient.values()]
    np.testing.assert_allclose(delta1, delta2, rtol=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_backward_for_another_batch_is_an_error_not_a_recomputation(f64, rng):
    net = make_net()
    x, y = bp.asarray(rng.normal(size=(5, 4))), bp.asarray(rng.normal(size=(5, 4)))
    d = bp.asarray(rng.normal(size=(5, 3)))
    net.forward(y)  # keeps the intermediates of another batch
    with pytest.raises(
        ValueError,
        match=r"Sequentiel\(\)\.backward_delta: backward needs the input of the last forward",
    ):
        net.backward_delta(x, d)


def test_zero_grad_and_update_recurse(backend, rng):
    net = make_net()
    x, d = bp.asarray(rng.normal(size=(5, 4))), bp.asarray(rng.normal(size=(5, 3)))
    net.forward(x)
    net.backward(x, d)
    before = [bp.to_numpy(p).copy() for p in net.parameters()]
    grads = [bp.to_numpy(m._gradient[k]).copy() for m, k in net.parameter_slots()]
    net.update_parameters(0.5)
    for p, b0, g in zip(net.parameters(), before, grads):
        assert_close(p, b0 - 0.5 * g, backend)
    net.zero_grad()
    assert all(not bp.to_numpy(m._gradient[k]).any() for m, k in net.parameter_slots())


def test_add_chains_and_checks(backend):
    net = bp.Sequentiel().add(bp.Linear(2, 2)).add(bp.ReLU())
    assert len(net) == 2 and isinstance(net[1], bp.ReLU)
    assert isinstance(net[:1], bp.Sequentiel)
    assert bp.Sequential is bp.Sequentiel
    with pytest.raises(TypeError, match="expected a Module, got function"):
        net.add(lambda x: x)


def test_repr():
    net = bp.Sequentiel(bp.Linear(64, 10), bp.Sequentiel(bp.TanH()))
    assert repr(net) == (
        "Sequentiel(\n  (0): Linear(64 -> 10)  [650 parameters]\n"
        "  (1): Sequentiel(\n    (0): TanH()\n  )\n)"
    )


def test_empty_is_identity(backend):
    x = bp.asarray(np.ones((2, 3)))
    y = bp.Sequentiel()(x)
    np.testing.assert_array_equal(bp.to_numpy(y), np.ones((2, 3)))
    if backend.mutable:
        assert y is not x  # the output is the caller's, not an array the network keeps


def test_errors_name_the_layer(backend):
    net = bp.Sequentiel(bp.Linear(4, 6), bp.TanH(), bp.Linear(5, 3))
    with pytest.raises(
        ValueError,
        match=r"Linear\(5 -> 3\)\.forward: expected input of shape \(N, 5\), got \(2, 6\)",
    ):
        net(bp.asarray(np.zeros((2, 4))))


def test_concat_forward_and_gradcheck(f64, rng):
    a = bp.Sequentiel(bp.Linear(4, 3), bp.TanH())
    b = bp.Linear(4, 2)
    cat = bp.Concat(a, b, axis=-1)
    x = bp.asarray(rng.normal(size=(5, 4)))
    out = cat(x)
    assert_like(out, f64, (5, 5))
    assert_close(out, np.concatenate([bp.to_numpy(a(x)), bp.to_numpy(b(x))], axis=1), f64)
    assert bp.gradcheck(cat, x)
    assert len(cat.parameters()) == 4


def test_concat_seed_style_calls_match_backward(f64, rng):
    cat = bp.Concat(bp.Linear(4, 3), bp.Sequentiel(bp.Linear(4, 2), bp.Sigmoid()))
    x, d = bp.asarray(rng.normal(size=(5, 4))), bp.asarray(rng.normal(size=(5, 5)))
    cat(x)
    cat.backward_update_gradient(x, d)
    g1 = [bp.to_numpy(m._gradient[k]).copy() for m, k in cat.parameter_slots()]
    delta1 = bp.to_numpy(cat.backward_delta(x, d))
    cat.zero_grad()
    delta2 = bp.to_numpy(cat.backward(x, d))
    for (m, k), g in zip(cat.parameter_slots(), g1):
        np.testing.assert_allclose(bp.to_numpy(m._gradient[k]), g, rtol=1e-12)
    np.testing.assert_allclose(delta1, delta2, rtol=1e-12)


def test_two_branch_network_gradcheck(f64, rng):
    # the assignment's rows + columns network, on 4x4 images to keep the check small
    def branch(*head):
        return bp.Sequentiel(
            *head, bp.Reshape((16, 1)), bp.Conv1D(3, 1, 2), bp.ReLU(), bp.MaxPool1D(2), bp.Flatten()
        )

    net = bp.Sequentiel(
        bp.Concat(branch(), branch(bp.Reshape((4, 4)), bp.Transpose((1, 0))), axis=1),
        bp.Linear(28, 3),
    )
    x = rng.permutation(32).reshape(2, 16) / 32.0  # distinct values: no max-pool ties
    assert bp.gradcheck(net, bp.asarray(x), atol=1e-5)


def test_concat_errors(backend):
    with pytest.raises(ValueError, match="at least one branch"):
        bp.Concat()
    with pytest.raises(ValueError, match="axis must be a non-zero int"):
        bp.Concat(bp.ReLU(), axis=0)
    cat = bp.Concat(bp.Linear(3, 2), bp.Reshape((3, 1)))
    with pytest.raises(
        ValueError,
        match=r"branch outputs must agree except along axis -1, got \(4, 2\), \(4, 3, 1\)",
    ):
        cat(bp.asarray(np.zeros((4, 3))))
    cat = bp.Concat(bp.Linear(3, 2), bp.Linear(3, 2))
    x = bp.asarray(np.zeros((4, 3)))
    cat(x)
    with pytest.raises(ValueError, match="expected delta with 4 entries along axis -1"):
        cat.backward_delta(x, bp.asarray(np.zeros((4, 3))))
    assert "axis=-1" in repr(cat)


class SeedStyleLinear(bp.Module):
    """A user module written as in the seed: it adds to _gradient directly, without the helpers."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.add_parameter("w", bp.asarray(np.full((n_in, n_out), 0.1)))

    def forward(self, X):
        return X @ self._parameters["w"]

    def backward_update_gradient(self, input, delta):
        self._gradient["w"] += input.T @ delta

    def backward_delta(self, input, delta):
        return delta @ self._parameters["w"].T


def test_user_module_in_the_seed_style_trains(f64, rng):
    layer = SeedStyleLinear(3, 2)
    net = bp.Sequentiel(layer, bp.TanH(), bp.Linear(2, 2))
    assert bp.gradcheck(net, bp.asarray(rng.normal(size=(4, 3))))
    before = bp.to_numpy(layer._parameters["w"]).copy()
    opt = bp.Optim(net, bp.CELogSoftmax(), eps=0.5)
    for optimizer in (None, "adam"):
        opt = bp.Optim(net, bp.CELogSoftmax(), eps=0.5, optimizer=optimizer)
        opt.step(bp.asarray(rng.normal(size=(8, 3))), bp.asarray(rng.integers(0, 2, size=8)))
        assert not np.allclose(bp.to_numpy(layer._parameters["w"]), before)
        before = bp.to_numpy(layer._parameters["w"]).copy()
    net.zero_grad()
    assert not bp.to_numpy(layer._gradient["w"]).any()
