import numpy as np
import pytest

import backprop as bp
from conftest import assert_like


def test_load_digits_split(backend):
    X_tr, X_te, y_tr, y_te = bp.load_digits()
    assert_like(X_tr, backend, (1347, 64))
    assert tuple(X_te.shape) == (450, 64) and tuple(y_te.shape) == (450,)
    host = bp.to_numpy(X_tr)
    assert host.min() == 0.0 and host.max() == 1.0
    from sklearn.datasets import load_digits

    per_class = np.bincount(load_digits().target)
    counts = np.bincount(bp.to_numpy(y_te))
    assert np.all(np.abs(counts - 0.25 * per_class) <= 1)  # stratified
    images = bp.load_digits(images=True)[0]
    assert tuple(images.shape) == (1347, 8, 8)


def test_one_hot(backend):
    oh = bp.one_hot(bp.asarray(np.array([2, 0])), 3)
    assert_like(oh, backend, (2, 3))
    np.testing.assert_array_equal(bp.to_numpy(oh), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        bp.one_hot(bp.asarray(np.array([3])), 3)


def test_accuracy(backend):
    scores = bp.asarray([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert bp.accuracy(scores, bp.asarray(np.array([1, 0, 0]))) == pytest.approx(2 / 3)
    assert bp.accuracy(scores, np.array([1, 0, 1])) == 1.0
    assert bp.accuracy(scores, bp.asarray(np.eye(2)[[1, 0, 1]])) == 1.0
