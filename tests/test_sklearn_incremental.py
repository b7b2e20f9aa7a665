"""partial_fit and warm_start of the scikit-learn estimators: training continued exactly."""

import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is not installed")

from backprop.sklearn import AutoencoderTransformer, NeuralNetClassifier, NeuralNetRegressor


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:400] / 16.0, y[:400]


def small(cls=NeuralNetClassifier, **options):
    return cls(hidden_layer_sizes=(16,), learning_rate=1e-2, random_state=0, **options)


def test_partial_fit_calls_are_the_epochs_of_one_fit(digits):
    X, y = digits
    once = small(epochs=3).fit(X, y)
    steps = small()
    for _ in range(3):
        steps.partial_fit(X, y, classes=np.arange(10))
    np.testing.assert_array_equal(steps.predict_proba(X), once.predict_proba(X))
    assert steps.n_iter_ == 3 and steps.loss_curve_ == once.loss_curve_
    assert steps.optimizer_.steps == once.optimizer_.steps  # Adam's step count went on


def test_warm_start_continues_fit(digits):
    X, y = digits
    once = small(epochs=3).fit(X, y)
    warm = small(epochs=1, warm_start=True).fit(X, y)
    warm.set_params(epochs=2).fit(X, y)
    np.testing.assert_array_equal(warm.predict_proba(X), once.predict_proba(X))
    assert warm.n_iter_ == 3
    cold = small(epochs=1).fit(X, y)
    cold.fit(X, y)  # without warm_start, fit starts anew
    np.testing.assert_array_equal(cold.predict_proba(X), small(epochs=1).fit(X, y).predict_proba(X))


def test_a_pickled_estimator_continues_with_its_optimizer_state(digits):
    """dask-ml moves estimators between workers by pickling them: Adam's moments must follow."""
    X, y = digits
    a = small().partial_fit(X[:200], y[:200], classes=np.arange(10))
    b = pickle.loads(pickle.dumps(a))
    a.partial_fit(X[200:], y[200:])
    b.partial_fit(X[200:], y[200:])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_partial_fit_errors(digits):
    X, y = digits
    with pytest.raises(ValueError, match="classes must be given on the first call"):
        small().partial_fit(X, y)
    model = small().partial_fit(X, y % 5, classes=np.arange(5))
    with pytest.raises(ValueError, match="labels must be among classes_"):
        model.partial_fit(X, y)
    with pytest.raises(ValueError, match="differs from the classes of the first call"):
        model.partial_fit(X, y % 5, classes=np.arange(6))
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:, :10], y % 5)
    model.set_params(hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match="hidden_layer_sizes changed from"):
        model.partial_fit(X, y % 5)
    model.set_params(hidden_layer_sizes=(16,), warm_start=True, activation="tanh")
    with pytest.raises(ValueError, match="activation changed"):
        model.fit(X, y % 5)


def test_regressor_and_autoencoder_partial_fit(digits):
    X, y = digits
    target = X[:, :2] @ np.array([1.0, -1.0])
    reg = small(NeuralNetRegressor)
    for _ in range(3):
        reg.partial_fit(X, target)
    once = small(NeuralNetRegressor, epochs=3).fit(X, target)
    np.testing.assert_array_equal(reg.predict(X), once.predict(X))
    with pytest.raises(ValueError, match=r"built for 1 \(1-D\)"):
        reg.partial_fit(X, np.c_[target, target])
    ae = AutoencoderTransformer(n_components=2, hidden_layer_sizes=(8,), random_state=0)
    ae.partial_fit(X).partial_fit(X)
    assert ae.n_iter_ == 2 and ae.transform(X).shape == (400, 2)
    ae.set_params(n_components=3)
    with pytest.raises(ValueError, match="n_components changed"):
        ae.partial_fit(X)
