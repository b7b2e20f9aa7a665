"""Sum, Residual, Select and Identity against the same computation written with PyTorch's
autograd, in float64 on every backend (they have no torch.nn module of their own: the
parity goes through from_torch for their children)."""

import numpy as np
import pytest

import backprop as bp
from backprop import Identity, Residual, Select, Sequentiel, Sum

torch = pytest.importorskip("torch", reason="torch is not installed")

TOL = 1e-10


def _compare(net, torch_fn, params, x_np, out_shape):
    x = torch.from_numpy(x_np).requires_grad_(True)
    out = torch_fn(x)
    g = np.random.default_rng(1).normal(size=out_shape)
    out.backward(torch.from_numpy(g))
    X = bp.asarray(x_np)
    Y = net.forward(X)
    net.zero_grad()
    dX = net.backward(X, bp.asarray(g))
    worst = {
        "forward": float(np.max(np.abs(bp.to_numpy(Y) - out.detach().numpy()))),
        "input gradient": float(np.max(np.abs(bp.to_numpy(dX) - x.grad.numpy()))),
    }
    for (m, key), p in params:
        got = bp.to_numpy(m.get_gradient(key))
        expected = p.grad.numpy().T if key == "weight" else p.grad.numpy()
        worst[f"{type(m).__name__}.{key}"] = float(np.max(np.abs(got - expected)))
    assert max(worst.values()) <= TOL, worst
    return worst


def _linear(n_in, n_out, seed):
    torch.manual_seed(seed)
    return torch.nn.Linear(n_in, n_out).double()


def test_residual_and_sum_match_autograd(f64):
    a, b = _linear(5, 5, 0), _linear(5, 5, 1)
    la, lb = bp.from_torch(a), bp.from_torch(b)
    x = np.random.default_rng(0).normal(size=(7, 5))
    net = Sequentiel(Residual(Sequentiel(la, bp.TanH())), Sum(Identity(), lb))
    params = [((la, "weight"), a.weight), ((la, "bias"), a.bias), ((lb, "weight"), b.weight)]

    def torch_fn(t):
        h = t + torch.tanh(a(t))
        return h + b(h)

    _compare(net, torch_fn, params, x, (7, 5))


def test_select_matches_autograd(f64):
    a = _linear(3, 2, 2)
    la = bp.from_torch(a)
    x = np.random.default_rng(0).normal(size=(4, 6, 3))
    net = Sequentiel(Select(1, -2), la)
    _compare(net, lambda t: a(t[:, -2]), [((la, "weight"), a.weight)], x, (4, 2))
