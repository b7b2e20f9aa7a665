"""The backend primitives: every native fast path against the standard-only oracle.

The oracle is the base class's method (written against the standard only),
called on the backend under test: ``Backend.windows(backend, ...)``.
"""

import inspect

import numpy as np
import pytest

import backprop as bp
from backprop.backends import BACKENDS, Backend, BackendUnavailableError, backend_class
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
    native = backend.windows(x, kernel, strides)
    ref = Backend.windows(backend, x, kernel, strides)
    assert tuple(native.shape) == tuple(ref.shape)
    np.testing.assert_array_equal(bp.to_numpy(native), bp.to_numpy(ref))
    cols = bp.asarray(rng.normal(size=tuple(ref.shape)))
    assert_close(
        backend.overlap_add(cols, shape[1:-1], strides),
        bp.to_numpy(Backend.overlap_add(backend, cols, shape[1:-1], strides)),
        backend,
    )


@pytest.mark.parametrize("shape,kernel,strides", CASES)
@pytest.mark.parametrize("ones", [False, True])
def test_im2col(backend, rng, shape, kernel, strides, ones):
    x = bp.asarray(rng.normal(size=shape))
    native = backend.im2col(x, kernel, strides, ones=ones)
    ref = Backend.im2col(backend, x, kernel, strides, ones=ones)
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
    native = backend.max_pool_backward(x, y, delta, kernel, strides)
    ref = Backend.max_pool_backward(backend, x, y, delta, kernel, strides)
    assert_close(native, bp.to_numpy(ref), backend)
    # every window hands its whole gradient to exactly one element
    assert_close(bp.to_numpy(native).sum(), bp.to_numpy(delta).sum(), backend, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,kernel,strides", CASES)
def test_max_pool_and_spread(backend, rng, shape, kernel, strides):
    x = bp.asarray(rng.normal(size=shape))
    assert_close(
        backend.max_pool(x, kernel, strides),
        bp.to_numpy(Backend.max_pool(backend, x, kernel, strides)),
        backend,
    )
    out = Backend.windows(backend, x, kernel, strides).shape[1 : 1 + len(kernel)]
    part = bp.asarray(rng.normal(size=(shape[0], *out, shape[-1])))
    # spread is the adjoint of summing the offset slices: <spread(p), x> = <p, sum_offsets x[slice]>
    lhs = float(bp.to_numpy(backend.spread(part, shape, kernel, strides) * x).sum())
    windows = bp.to_numpy(Backend.windows(backend, x, kernel, strides))
    summed = windows.sum(axis=tuple(range(1 + len(kernel), 1 + 2 * len(kernel))))
    rhs = float((bp.to_numpy(part) * summed).sum())
    assert abs(lhs - rhs) <= 1e-4 * (1 + abs(rhs))


def test_writes_return_the_result_and_keep_the_argument_on_mutable_libraries(backend):
    xp = backend.xp
    a = bp.asarray([1.0, 2.0, 3.0])
    b = backend.add_(a, bp.asarray([1.0, 1.0, 1.0]))
    assert_close(b, [2.0, 3.0, 4.0], backend)
    if backend.mutable:
        assert b is a  # in place: no allocation per step
    b = backend.sub_(b, bp.asarray([2.0, 2.0, 2.0]))
    b = backend.scale_(b, 2.0)
    assert_close(b, [0.0, 2.0, 4.0], backend)
    b = backend.add_at(b, (slice(0, 2),), bp.asarray([1.0, 1.0]))
    b = backend.set_at(b, (slice(2, 3),), bp.asarray([9.0]))
    assert_close(b, [1.0, 3.0, 9.0], backend)
    b = backend.zero_(b)
    assert not bp.to_numpy(b).any()
    assert xp.asarray(b).shape == (3,)


def _shape_of(signature) -> list:
    """Names, kinds and defaults of the parameters (annotations may be written differently)."""
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def _primitives(cls) -> dict:
    return {
        name: _shape_of(inspect.signature(getattr(cls, name)))
        for name, value in vars(Backend).items()
        if (inspect.isfunction(value) or isinstance(value, classmethod))
        and not name.startswith("_")
    }


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_offers_the_base_signatures(name):
    try:
        cls = backend_class(name)
    except BackendUnavailableError as exc:
        pytest.skip(f"{name} unavailable: {exc}")
    base = _primitives(Backend)
    for method, signature in base.items():
        assert _shape_of(inspect.signature(getattr(cls, method))) == signature, (
            f"{cls.__name__}.{method}"
        )


# the last shape is above NumPy's update block
@pytest.mark.parametrize("shape", [(3,), (7, 5), (300, 241)])
def test_axpy_matches_the_standard_update(backend, rng, shape):
    target = bp.asarray(rng.normal(size=shape))
    x = bp.asarray(rng.normal(size=shape))
    expected = bp.to_numpy(Backend.axpy_(backend, backend.copy(target), -0.01, x))
    result = backend.axpy_(target, -0.01, x)
    assert_close(result, expected, backend)
    if backend.mutable:
        assert result is target  # in place: no allocation per step


@pytest.mark.parametrize("rows", [5, 3 * 4096 + 17])  # the second is summed in blocks on NumPy
def test_contract_rows(backend, rng, rows):
    a = bp.asarray(rng.normal(size=(rows, 4)))
    b = bp.asarray(rng.normal(size=(rows, 3)))
    expected = bp.to_numpy(a).T @ bp.to_numpy(b)
    assert_close(backend.contract_rows(a, b), expected, backend, rtol=1e-4, atol=1e-3)


CONV_CASES = [  # (input shape, kernel, strides, output channels): every layout and path
    ((2, 28, 28, 1), (5, 5), (1, 1), 6),  # LeNet's first: one channel, transposed matrix
    ((2, 12, 12, 6), (5, 5), (1, 1), 16),  # LeNet's second: banded input gradient
    ((2, 9, 9, 1), (3, 3), (1, 1), 2),
    ((2, 12, 11, 3), (3, 3), (2, 2), 4),  # banded, strided, with an unread tail
    ((2, 7, 11, 2), (3, 3), (3, 3), 3),  # windows that tile, plus a tail
    ((1, 20, 17, 2), (2, 3), (3, 4), 2),  # gaps between windows: offset by offset
    ((2, 30, 3), (3,), (2,), 4),  # 1-D, long: offset by offset
    ((2, 10, 2), (3,), (2,), 3),  # 1-D, short: banded
    ((3, 256, 1), (3,), (1,), 8),  # the 1-D CNN's shape (row layout)
    ((2, 16, 1), (8,), (1,), 2),  # 1-D, one channel, transposed matrix
]


@pytest.mark.parametrize("shape,kernel,strides,c_out", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_against_the_standard_path(f64, rng, shape, kernel, strides, c_out, bias):
    """Each backend's convolution and its gradients against the standard im2col version, in
    float64, with and without what the forward kept."""
    x = bp.asarray(rng.normal(size=shape))
    w = bp.asarray(rng.normal(size=(*kernel, shape[-1], c_out)))
    b = bp.asarray(rng.normal(size=(c_out,))) if bias else None
    y, saved = f64.conv(x, w, b, strides)
    ref, ref_saved = Backend.conv(f64, x, w, b, strides)
    assert tuple(y.shape) == tuple(ref.shape)
    assert_close(y, bp.to_numpy(ref), f64, rtol=1e-10, atol=1e-10)
    delta = bp.asarray(rng.normal(size=tuple(ref.shape)))
    expected = Backend.conv_backward(f64, x, w, delta, strides, ref_saved, bias=bias)
    for kept in (saved, None):
        got = f64.conv_backward(x, w, delta, strides, kept, bias=bias)
        for name, a, e in zip(("input", "weight", "bias"), got, expected):
            if e is None:
                assert a is None, name
                continue
            assert tuple(a.shape) == tuple(e.shape), name
            assert_close(a, bp.to_numpy(e), f64, rtol=1e-10, atol=1e-10)
    dx, dw, db = f64.conv_backward(x, w, delta, strides, saved, bias=bias, param_grad=False)
    assert dw is None and db is None and tuple(dx.shape) == shape
    dx, dw, db = f64.conv_backward(x, w, delta, strides, saved, bias=bias, input_grad=False)
    assert dx is None and tuple(dw.shape) == tuple(w.shape)


@pytest.mark.parametrize(
    "shape,kernel",
    [
        ((3, 7, 9, 2), (2, 2)),  # tails on both axes
        ((2, 6, 6, 3), (3, 3)),
        ((2, 5, 7, 1), (2, 3)),
        ((2, 4, 4, 2), (1, 2)),
        ((2, 8, 8, 2), (2, 1)),
        ((1, 2, 2, 1), (2, 2)),  # one window
        ((0, 4, 4, 2), (2, 2)),  # no rows
    ],
)
def test_max_pool_non_overlapping_equals_the_standard_one(backend, rng, shape, kernel):
    """Windows as wide as their stride (a backend may take rows then columns): the standard
    maxima exactly, NaN and -inf included, tails of the spatial axes ignored."""
    x = rng.normal(size=shape)
    x.flat[::7] = np.nan
    x.flat[3:4] = -np.inf
    x = bp.asarray(x)
    native = bp.to_numpy(backend.max_pool(x, kernel, kernel))
    ref = bp.to_numpy(Backend.max_pool(backend, x, kernel, kernel))
    assert native.shape == ref.shape
    np.testing.assert_array_equal(native, ref)


@pytest.mark.parametrize("shape,kernel,strides", CASES)
def test_max_pool_state_gives_the_same_gradient(backend, rng, shape, kernel, strides):
    """What a backend keeps from a max pool's forward (PyTorch: the places of the maxima) gives
    the gradient the backward finds without it; a state that does not fit is not used."""
    x = bp.asarray(rng.integers(0, 3, size=shape).astype(np.float64))  # many ties
    y, state = backend.max_pool_with_state(x, kernel, strides)
    np.testing.assert_array_equal(
        bp.to_numpy(y), bp.to_numpy(Backend.max_pool(backend, x, kernel, strides))
    )
    delta = bp.asarray(rng.normal(size=tuple(y.shape)))
    ref = bp.to_numpy(Backend.max_pool_backward(backend, x, y, delta, kernel, strides))
    for given in (state, None):
        got = backend.max_pool_backward(x, y, delta, kernel, strides, given)
        np.testing.assert_array_equal(bp.to_numpy(got), ref)
    # the state of another input's pooling (other shape) is ignored, not misread
    other = bp.asarray(rng.normal(size=(shape[0] + 1, *shape[1:])))
    _, foreign = backend.max_pool_with_state(other, kernel, strides)
    got = backend.max_pool_backward(x, y, delta, kernel, strides, foreign)
    np.testing.assert_array_equal(bp.to_numpy(got), ref)


def test_relu_backward_is_the_masked_product(backend, rng):
    """A backend's ReLU gradient is delta times the 0/1 mask of x > 0, bit for bit: 0 where x is
    0, negative or NaN; NaN where a non-finite delta meets the mask's 0 (as the product gives)."""
    x = rng.normal(size=(3, 5, 4))
    x.flat[:6] = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-300]
    d = rng.normal(size=x.shape)
    d.flat[6:10] = [np.nan, np.inf, -np.inf, 0.0]
    x.flat[6:10] = [-1.0, -2.0, 3.0, -4.0]
    xs, ds = bp.asarray(x), bp.asarray(d)
    with np.errstate(invalid="ignore"):  # inf * 0, on purpose
        got = bp.to_numpy(backend.relu_backward(xs, ds))
        ref = bp.to_numpy(Backend.relu_backward(backend, xs, ds))
        mask = (np.asarray(bp.to_numpy(xs)) > 0).astype(got.dtype)
        expected = np.asarray(bp.to_numpy(ds)) * mask
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))
    np.testing.assert_array_equal(ref, expected)
    empty = bp.asarray(np.zeros((0, 3)))
    assert tuple(backend.relu_backward(empty, empty).shape) == (0, 3)
