import numpy as np
import pytest

import backprop as bp
from conftest import assert_close, assert_like


def test_fraction_of_zeros_and_scaling(backend):
    drop = bp.Dropout(0.3, rng=0)
    x = bp.asarray(np.ones((200, 500)))
    out = bp.to_numpy(drop(x))
    assert_like(drop(x), backend, (200, 500))
    zeros = (out == 0).mean()
    assert abs(zeros - 0.3) < 0.01  # 100000 draws: standard error 0.0015
    np.testing.assert_allclose(out[out != 0], 1 / 0.7, rtol=1e-6)


def test_identity_in_eval_mode(backend, rng):
    drop = bp.Dropout(0.5)
    x = bp.asarray(rng.normal(size=(4, 5)))
    drop.eval()
    assert drop(x) is x
    assert drop.backward_delta(x, x) is x
    net = bp.Sequentiel(bp.Linear(5, 5), bp.Dropout(0.5)).eval()
    assert not net[1].training
    net.train()
    assert net[1].training


def test_gradient_goes_through_the_same_mask(f64, rng):
    drop = bp.Dropout(0.4, rng=1)
    x = bp.asarray(rng.normal(size=(6, 7)))
    out = bp.to_numpy(drop(x))
    d = rng.normal(size=(6, 7))
    g = bp.to_numpy(drop.backward_delta(x, bp.asarray(d)))
    mask = out / bp.to_numpy(x)
    assert_close(g, d * mask, f64)
    # with the mask fixed, the layer is linear: finite differences agree
    fixed = bp.asarray(mask)

    class Fixed(bp.Module):
        def forward(self, X):
            return X * fixed

        def backward_delta(self, input, delta):
            return delta * fixed

    assert bp.gradcheck(Fixed(), x)


def test_reproducible_and_errors(backend, rng):
    x = bp.asarray(rng.normal(size=(3, 4)))
    a = bp.to_numpy(bp.Dropout(0.5, rng=3)(x))
    b = bp.to_numpy(bp.Dropout(0.5, rng=3)(x))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\)"):
        bp.Dropout(1.0)
    drop = bp.Dropout(0.5)
    drop(x)
    other = bp.asarray(rng.normal(size=(3, 4)))
    with pytest.raises(ValueError, match="no dropout mask for this input"):
        drop.backward_delta(other, other)
