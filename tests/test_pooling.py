import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backprop as bp
from conftest import assert_close, assert_like, try_torch

HYPO = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
POOLS = {
    "MaxPool1D": (bp.MaxPool1D, 1),
    "AvgPool1D": (bp.AvgPool1D, 1),
    "MaxPool2D": (bp.MaxPool2D, 2),
    "AvgPool2D": (bp.AvgPool2D, 2),
}


def test_maxpool_by_hand(backend):
    x = bp.asarray(np.array([[[1.0, 5.0], [3.0, 2.0], [0.0, 9.0], [4.0, 1.0], [7.0, 7.0]]]))
    out = bp.MaxPool1D(2)(x)
    assert_like(out, backend, (1, 2, 2))
    assert_close(out, [[[3.0, 5.0], [4.0, 9.0]]], backend)
    assert_close(bp.AvgPool1D(2)(x), [[[2.0, 3.5], [2.0, 5.0]]], backend)
    assert_close(bp.MaxPool1D(3, stride=1)(x), [[[3.0, 9.0], [4.0, 9.0], [7.0, 9.0]]], backend)


def test_maxpool_backward_first_maximum_and_overlaps(backend):
    x = bp.asarray(np.array([[[2.0], [2.0], [1.0], [2.0], [0.0]]]))
    g = bp.MaxPool1D(2).backward_delta(x, bp.asarray(np.array([[[1.0], [10.0]]])))
    assert_close(g, [[[1.0], [0.0], [0.0], [10.0], [0.0]]], backend)
    # overlapping windows [0:3], [1:4], [2:5]: the first maxima are at 0, 1 and 3
    g = bp.MaxPool1D(3, stride=1).backward_delta(
        x, bp.asarray(np.array([[[1.0], [10.0], [100.0]]]))
    )
    assert_close(g, [[[1.0], [10.0], [0.0], [100.0], [0.0]]], backend)


@pytest.mark.parametrize("name", POOLS)
@pytest.mark.parametrize("k,stride", [(2, None), (3, 1), (2, 3), (3, 2), (1, 1)])
def test_gradcheck(f64, rng, name, k, stride):
    cls, d = POOLS[name]
    shape = (2, 11, 3) if d == 1 else (2, 7, 8, 2)
    # distinct values far apart: no ties, so the max is differentiable
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.1
    assert bp.gradcheck(cls(k, stride), bp.asarray(x))


def test_batch_of_one(f64, rng):
    assert bp.gradcheck(bp.MaxPool1D(2), bp.asarray(rng.permutation(10).reshape(1, 10, 1) * 1.0))


@pytest.mark.parametrize("name", POOLS)
def test_errors(backend, name):
    cls, d = POOLS[name]
    layer = cls(3)
    short = (1, 2, 1) if d == 1 else (1, 5, 2, 1)
    what = "length" if d == 1 else "width"
    with pytest.raises(
        ValueError, match=f"{name}.*forward: input {what} 2 is shorter than kernel_size 3"
    ):
        layer(bp.asarray(np.zeros(short)))
    with pytest.raises(ValueError, match="expected input of shape"):
        layer(bp.asarray(np.zeros((4, 4))))
    with pytest.raises(ValueError, match="stride must be a positive int"):
        cls(2, 0)
    ok = (1, 6, 1) if d == 1 else (1, 6, 6, 1)
    with pytest.raises(ValueError, match="expected delta of the output's shape"):
        layer.backward_delta(bp.asarray(np.zeros(ok)), bp.asarray(np.zeros((1, 1, 1))))


def test_stride_defaults_to_kernel():
    assert bp.MaxPool1D(3).stride == (3,)
    assert bp.AvgPool2D((2, 3)).stride == (2, 3)
    assert repr(bp.MaxPool1D(2)) == "MaxPool1D(k=2, stride=2)"


def _torch_pool(torch, name, x, k, s):
    F = torch.nn.functional
    if name.endswith("1D"):
        f = F.max_pool1d if name.startswith("Max") else F.avg_pool1d
        return f(x.permute(0, 2, 1), k, s).permute(0, 2, 1)
    f = F.max_pool2d if name.startswith("Max") else F.avg_pool2d
    return f(x.permute(0, 3, 1, 2), k, s).permute(0, 2, 3, 1)


@pytest.mark.random_shapes
@HYPO
@given(data=st.data())
@pytest.mark.parametrize("name", POOLS)
def test_torch_parity_with_ties(f64, name, data):
    torch = try_torch()
    cls, d = POOLS[name]
    seed = data.draw(st.integers(0, 9999))
    n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    spatial = tuple(data.draw(st.integers(1, 16 if d == 1 else 7)) for _ in range(d))
    kernel = tuple(data.draw(st.integers(1, s)) for s in spatial)
    stride = tuple(data.draw(st.integers(1, 4)) for _ in range(d))
    # few distinct values: many exact ties inside windows
    x = np.random.default_rng(seed).integers(0, 3, size=(n, *spatial, c)).astype(np.float64)
    tx = torch.tensor(x, requires_grad=True)
    ty = _torch_pool(torch, name, tx, kernel, stride)
    delta = np.random.default_rng(seed + 1).normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(delta))
    layer = cls(kernel if d == 2 else kernel[0], stride if d == 2 else stride[0])
    X = bp.asarray(x)
    assert_close(layer(X), ty.detach().numpy(), f64, rtol=1e-10, atol=1e-10)
    assert_close(
        layer.backward_delta(X, bp.asarray(delta)), tx.grad.numpy(), f64, rtol=1e-10, atol=1e-10
    )
