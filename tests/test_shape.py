import numpy as np
import pytest

import backprop as bp
from conftest import assert_close, assert_like


def test_flatten_round_trip(backend, rng):
    x = bp.asarray(rng.normal(size=(2, 3, 4)))
    f = bp.Flatten()
    out = f(x)
    assert_like(out, backend, (2, 12))
    assert_close(out, bp.to_numpy(x).reshape(2, 12), backend)
    g = f.backward_delta(x, out)
    assert_close(g, bp.to_numpy(x), backend)


def test_reshape_and_transpose(backend, rng):
    host = rng.normal(size=(2, 12))
    x = bp.asarray(host)
    r = bp.Reshape((3, 4))
    t = bp.Transpose((1, 0))
    y = t(r(x))
    assert_like(y, backend, (2, 4, 3))
    assert_close(y, host.reshape(2, 3, 4).transpose(0, 2, 1), backend)
    d = rng.normal(size=(2, 4, 3))
    back = r.backward_delta(x, t.backward_delta(r(x), bp.asarray(d)))
    assert_close(back, d.transpose(0, 2, 1).reshape(2, 12), backend)


@pytest.mark.parametrize(
    "module,shape",
    [
        (bp.Flatten(), (2, 3, 4)),
        (bp.Reshape((6, 2)), (2, 3, 4)),
        (bp.Transpose((2, 0, 1)), (2, 3, 4, 5)),
    ],
)
def test_gradcheck(f64, rng, module, shape):
    assert bp.gradcheck(module, bp.asarray(rng.normal(size=shape)))


def test_errors(backend):
    with pytest.raises(
        ValueError, match=r"Reshape\(\(3, 5\)\)\.forward: expected samples of 15 values"
    ):
        bp.Reshape((3, 5))(bp.asarray(np.zeros((2, 12))))
    with pytest.raises(ValueError, match="must be positive ints"):
        bp.Reshape((0, 3))
    with pytest.raises(ValueError, match="permutation of 0..1"):
        bp.Transpose((0, 0))
    with pytest.raises(
        ValueError, match=r"expected input with 2 axes per sample, got shape \(2, 3\)"
    ):
        bp.Transpose((1, 0))(bp.asarray(np.zeros((2, 3))))
    with pytest.raises(
        ValueError, match=r"Flatten\(\)\.forward: expected input of shape \(N, d1, ...\)"
    ):
        bp.Flatten()(bp.asarray(np.zeros(3)))
    with pytest.raises(ValueError, match="expected delta of the output's shape"):
        bp.Flatten().backward_delta(bp.asarray(np.zeros((2, 3, 4))), bp.asarray(np.zeros((2, 11))))


def test_integer_like_arguments_are_accepted(backend):
    assert bp.Reshape(np.int64(4)).shape == (4,)
    assert bp.Reshape(np.array(4)).shape == (4,)
    assert bp.Reshape([np.int32(2), 3]).shape == (2, 3)
    assert bp.Reshape(np.array([2, 3])).shape == (2, 3)
    assert bp.Transpose(np.array([1, 0])).axes == (1, 0)
    r = bp.Reshape(np.int64(4))
    assert type(r.get_config()["shape"][0]) is int  # JSON-serialisable (bp.save)
    assert tuple(r(bp.asarray(np.zeros((2, 2, 2)))).shape) == (2, 4)


@pytest.mark.parametrize(
    "make,error,message",
    [
        (lambda: bp.Transpose(5), TypeError, r"Transpose: axes must be a sequence of ints, got 5"),
        (
            lambda: bp.Transpose((1.0, 0)),
            TypeError,
            r"Transpose: axes must be a sequence of ints, got \(1.0, 0\)",
        ),
        (lambda: bp.Transpose("10"), TypeError, "Transpose: axes must be a sequence of ints"),
        (
            lambda: bp.Transpose(None),
            TypeError,
            "Transpose: axes must be a sequence of ints, got None",
        ),
        (
            lambda: bp.Transpose((0, 2)),
            ValueError,
            r"Transpose: axes must be a permutation of 0..1, got \(0, 2\)",
        ),
        (
            lambda: bp.Reshape(4.0),
            TypeError,
            "Reshape: shape must be an int or a sequence of ints, got 4.0",
        ),
        (
            lambda: bp.Reshape("44"),
            TypeError,
            "Reshape: shape must be an int or a sequence of ints",
        ),
        (
            lambda: bp.Reshape(True),
            TypeError,
            "Reshape: shape must be an int or a sequence of ints, got True",
        ),
        (
            lambda: bp.Reshape((2, None)),
            TypeError,
            "Reshape: shape must be an int or a sequence of ints",
        ),
        (lambda: bp.Reshape(()), ValueError, r"Reshape: shape must be positive ints, got \(\)"),
        (lambda: bp.Reshape(-1), ValueError, "Reshape: shape must be positive ints, got -1"),
    ],
)
def test_constructor_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()
