"""The backend primitives: every native fast path against the standard-only oracle."""

import numpy as np
import pytest

import backprop as bp
from backprop.backends import _standard
from conftest import assert_close

CASES = [  # (input shape, kernel, strides)
    ((2, 9, 3), (3,), (2,)),
    ((2, 10, 1), (2,), (2,)),
    ((2, 11, 2), (3,), (3,)),
    ((1, 7, 2), (2,), (3,)),
    ((2, 12, 1), (4,), (1,)),
    ((2, 7, 6, 3), (3, 2), (2, 3)),
    ((2, 8, 9, 2), (2, 2), (2, 2)),
    ((1, 5, 5, 1), (1, 1), (1, 1)),
]


@pytest.mark.parametrize("shape,kernel,strides", CASES)
def test_windows_and_overlap_add(backend, rng, shape, kernel, strides):
    x = bp.asarray(rng.normal(size=shape))
    native = backend.ops.windows(x, kernel, strides)
    ref = _standard.windows(x, kernel, strides)
    assert tuple(native.shape) == tuple(ref.shape)
    np.testing.assert_array_equal(bp.to_numpy(native), bp.to_numpy(ref))
    cols = bp.asarray(rng.normal(size=tuple(ref.shape)))
    assert_close(
        backend.ops.overlap_add(cols, shape[1:-1], strides),
        bp.to_numpy(_standard.overlap_add(cols, shape[1:-1], strides)),
        backend,
    )


@pytest.mark.parametrize("shape,kernel,strides", CASES)
@pytest.mark.parametrize("ones", [False, True])
def test_im2col(backend, rng, shape, kernel, strides, ones):
    x = bp.asarray(rng.normal(size=shape))
    native = backend.ops.im2col(x, kernel, strides, ones=ones)
    ref = _standard.im2col(x, kernel, strides, ones=ones)
    assert tuple(native.shape) == tuple(ref.shape)
    np.testing.assert_array_equal(bp.to_numpy(native), bp.to_numpy(ref))
    if ones:
        np.testing.assert_array_equal(bp.to_numpy(native)[:, -1], 1.0)


@pytest.mark.parametrize("shape,kernel,strides", CASES)
def test_max_pool_backward_with_ties(backend, rng, shape, kernel, strides):
    # few distinct values: many ties, which must go to the first maximum
    x = bp.asarray(rng.integers(0, 3, size=shape).astype(np.float64))
    pool = (bp.MaxPool1D if len(kernel) == 1 else bp.MaxPool2D)(kernel, strides)
    y = pool(x)
    delta = bp.asarray(rng.normal(size=tuple(y.shape)))
    native = backend.ops.max_pool_backward(x, y, delta, kernel, strides)
    ref = _standard.max_pool_backward(x, y, delta, kernel, strides)
    assert_close(native, bp.to_numpy(ref), backend)
    # every window hands its whole gradient to exactly one element
    assert_close(bp.to_numpy(native).sum(), bp.to_numpy(delta).sum(), backend, rtol=1e-4, atol=1e-4)
