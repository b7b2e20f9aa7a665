"""scikit-learn's array API dispatch on the estimators of backprop.sklearn.

SciPy reads ``SCIPY_ARRAY_API`` once, when it is first imported, so these
tests need a fresh interpreter that has it set: ``tests/test_sklearn.py``
runs this module in a subprocess (it is not collected on its own, its name
does not start with ``test_``). By hand::

    SCIPY_ARRAY_API=1 python -m pytest tests/sklearn_dispatch.py
"""

import os

import numpy as np
import pytest

if os.environ.get("SCIPY_ARRAY_API") != "1":
    pytest.skip("needs SCIPY_ARRAY_API=1 set before scipy is imported", allow_module_level=True)

pytest.importorskip("sklearn", reason="scikit-learn is not installed")

import sklearn
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import estimator_checks_generator

import backprop as bp
import backprop.backends
import backprop.sklearn
from backprop.sklearn import AutoencoderTransformer, NeuralNetClassifier, NeuralNetRegressor

# the same small settings as tests/test_sklearn.py
ESTIMATORS = [
    NeuralNetClassifier(hidden_layer_sizes=(16,), epochs=60, learning_rate=1e-2, random_state=0),
    NeuralNetRegressor(hidden_layer_sizes=(16,), epochs=100, learning_rate=1e-2, random_state=0),
    AutoencoderTransformer(
        n_components=2, hidden_layer_sizes=(8,), epochs=20, learning_rate=1e-2, random_state=0
    ),
]


def _check_id(estimator, check) -> str:
    kwargs = ",".join(f"{k}={v}" for k, v in getattr(check, "keywords", {}).items())
    return f"{type(estimator).__name__}-{getattr(check, 'func', check).__name__}({kwargs})"


# scikit-learn's array API checks (the ones parametrize_with_checks adds for estimators whose tags
# declare array_api_support); its other checks do not depend on SCIPY_ARRAY_API and run in
# tests/test_sklearn.py
ARRAY_API_CHECKS = [
    pytest.param(est, check, id=_check_id(est, check))
    for estimator in ESTIMATORS
    for est, check in estimator_checks_generator(estimator)
    if "array_api" in _check_id(est, check)
]


def test_the_estimators_declare_array_api_support():
    assert len(ARRAY_API_CHECKS) >= 3 * 10
    for estimator in ESTIMATORS:
        assert estimator.__sklearn_tags__().array_api_support


@pytest.mark.parametrize("estimator, check", ARRAY_API_CHECKS)
def test_sklearn_array_api_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------ dispatch on a device library


@pytest.fixture(
    params=[("torch", "cpu"), ("torch", "cuda"), ("cupy", None)],
    ids=lambda p: "-".join(filter(None, p)),
)
def library(request):
    """``(backend, to)``: the library under test and a function that moves host data to it."""
    name, device = request.param
    try:
        with bp.use_backend(name, device=device, dtype="float64") as backend:
            pass
    except bp.BackendUnavailableError as exc:
        pytest.skip(f"{name}{':' + device if device else ''} unavailable: {exc}")
    return backend, lambda a: bp.asarray(a, backend=backend)


@pytest.fixture
def dispatch():
    with sklearn.config_context(array_api_dispatch=True):
        yield


@pytest.fixture
def no_numpy(monkeypatch, library):
    """Fail on any transfer of a device array to NumPy: backprop's own and, for torch, any other."""
    real = backprop.backends.to_numpy

    def guarded(x):
        if type(x).__module__.partition(".")[0] in ("torch", "cupy"):  # host data (lists) may pass
            raise AssertionError(f"an array of type {type(x).__name__} was moved to NumPy")
        return real(x)

    monkeypatch.setattr(backprop.backends, "to_numpy", guarded)
    monkeypatch.setattr(backprop.sklearn, "to_numpy", guarded)
    if library[0].name == "torch":
        import torch

        def refuse(self, *args, **kwargs):
            raise AssertionError("a torch tensor was converted to NumPy")

        monkeypatch.setattr(torch.Tensor, "numpy", refuse)
        monkeypatch.setattr(torch.Tensor, "__array__", refuse)


def _same_place(a, backend) -> bool:
    kind = bp.backends.kind_of(a)
    return kind.name == backend.name and str(kind.device_of(a)) == str(backend.device)


def _network_on(estimator, backend) -> bool:
    return all(_same_place(p, backend) for p in estimator.network_.parameters())


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:1000], y[:1000], X[1000:1400], y[1000:1400]


def test_pipeline_stays_on_the_library(library, dispatch, no_numpy, digits):
    backend, to = library
    X_tr, y_tr, X_te, y_te = (to(a) for a in digits)
    model = NeuralNetClassifier((32,), epochs=10, learning_rate=1e-2, random_state=0)
    pipe = make_pipeline(StandardScaler(), model).fit(X_tr, y_tr)
    net = pipe[-1]
    assert _network_on(net, backend) and _same_place(net.classes_, backend)
    proba = pipe.predict_proba(X_te)
    assert _same_place(proba, backend) and tuple(proba.shape) == (400, 10)
    assert float(backend.xp.max(backend.xp.abs(backend.xp.sum(proba, axis=1) - 1))) < 1e-9
    predicted = pipe.predict(X_te)
    assert bp.backends.kind_of(predicted).name == backend.name and tuple(predicted.shape) == (400,)
    score = pipe.score(X_te, y_te)
    assert isinstance(score, float) and score > 0.93, score
    # the same numbers as the same pipeline on NumPy arrays (same seed, float64 on both)
    on_host = make_pipeline(StandardScaler(), sklearn.clone(model)).fit(digits[0], digits[1])
    expected = to(on_host.predict_proba(digits[2]))  # compared on the device: nothing comes back
    assert float(backend.xp.max(backend.xp.abs(proba - expected))) < 1e-6


def test_regressor_and_transformer_stay_on_the_library(library, dispatch, no_numpy, digits):
    backend, to = library
    X_tr, y_tr, X_te, y_te = (to(a) for a in digits)
    xp = backend.xp
    targets = xp.astype(y_tr, xp.float64) / 9
    reg = make_pipeline(StandardScaler(), NeuralNetRegressor((32,), epochs=15, random_state=0))
    reg.fit(X_tr, targets)
    out = reg.predict(X_te)
    assert (
        _same_place(out, backend) and tuple(out.shape) == (400,) and _network_on(reg[-1], backend)
    )
    assert isinstance(reg.score(X_tr, targets), float)
    two = NeuralNetRegressor((8,), epochs=3, random_state=0).fit(
        X_tr, xp.stack([targets, -targets], axis=1)
    )
    assert tuple(two.predict(X_te).shape) == (400, 2)
    ae = make_pipeline(StandardScaler(), AutoencoderTransformer(4, (16,), epochs=5, random_state=0))
    codes = ae.fit_transform(X_tr)
    assert _same_place(codes, backend) and tuple(codes.shape) == (1000, 4)
    assert _network_on(ae[-1], backend)
    back = ae.inverse_transform(ae.transform(X_te))
    assert _same_place(back, backend) and tuple(back.shape) == (400, 64)


def test_cross_validation_and_grid_search(library, dispatch, digits):
    # scikit-learn's splitters compute fold indices from y on the host: only the results are checked
    backend, to = library
    X, y = to(digits[0]), to(digits[1])
    pipe = make_pipeline(
        StandardScaler(), NeuralNetClassifier((16,), epochs=10, learning_rate=1e-2, random_state=0)
    )
    scores = cross_val_score(pipe, X, y, cv=3)
    assert len(scores) == 3 and min(scores) > 0.8, scores
    grid = GridSearchCV(pipe, {"neuralnetclassifier__hidden_layer_sizes": [(8,), (32,)]}, cv=2)
    grid.fit(X, y)
    assert _network_on(grid.best_estimator_[-1], backend)
    assert _same_place(grid.predict_proba(X), backend) and grid.score(X, y) > 0.85


def test_float32_inputs_and_the_dtype_parameter(library, dispatch):
    backend, to = library
    X = to(np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32))
    X = backend.xp.astype(X, backend.xp.float32)
    y = to(np.arange(40) % 3)
    clf = NeuralNetClassifier((8,), epochs=3, random_state=0).fit(X, y)
    assert clf.predict_proba(X).dtype == backend.xp.float64  # dtype='float64' by default
    clf32 = NeuralNetClassifier((8,), epochs=3, random_state=0, dtype="float32").fit(X, y)
    assert clf32.predict_proba(X).dtype == backend.xp.float32
    assert all(p.dtype == backend.xp.float32 for p in clf32.network_.parameters())
    ae = AutoencoderTransformer(2, (4,), epochs=2, random_state=0).fit(X)
    assert ae.transform(X).dtype == backend.xp.float32  # transform keeps X's dtype


def test_labels_move_next_to_x_and_strings_stay_on_the_host(library, dispatch):
    backend, to = library
    X = to(np.random.default_rng(0).normal(size=(30, 4)))
    clf = NeuralNetClassifier((8,), epochs=3, random_state=0).fit(X, np.arange(30) % 2)
    assert _same_place(clf.classes_, backend)
    names = np.array(["cat", "dog", "eel"])[np.arange(30) % 3]
    clf = NeuralNetClassifier((8,), epochs=3, random_state=0).fit(X, names)
    assert isinstance(clf.classes_, np.ndarray) and _network_on(clf, backend)
    assert set(clf.predict(X)) <= set(names)


def test_data_from_another_library_after_fit_is_an_error(library, dispatch):
    backend, to = library
    X_host = np.random.default_rng(0).normal(size=(30, 4))
    clf = NeuralNetClassifier((8,), epochs=2, random_state=0).fit(to(X_host), to(np.arange(30) % 2))
    for method in ("predict", "predict_proba"):
        with pytest.raises(
            ValueError, match=rf"NeuralNetClassifier\.{method}\(\) must use the same namespace"
        ):
            getattr(clf, method)(X_host)
    host_fitted = NeuralNetClassifier((8,), epochs=2, random_state=0).fit(X_host, np.arange(30) % 2)
    with pytest.raises(ValueError, match=rf"fit saw NumPy .*, predict got {backend.name} on"):
        host_fitted.predict(to(X_host))


def test_without_dispatch_tensors_are_converted_as_before(library):
    backend, to = library
    if str(backend.device) != "cpu":
        pytest.skip(
            "without dispatch scikit-learn converts with numpy.asarray, which device arrays refuse"
        )
    X_host = np.random.default_rng(0).normal(size=(30, 4))
    clf = NeuralNetClassifier((8,), epochs=2, random_state=0).fit(to(X_host), to(np.arange(30) % 2))
    assert isinstance(clf.predict_proba(to(X_host)), np.ndarray)
    assert all(
        bp.backends.kind_of(p).name == bp.get_backend().name for p in clf.network_.parameters()
    )


def test_move_estimator_to_another_library(library, dispatch):
    """scikit-learn's move_estimator_to: train on the device, serve NumPy (or array-api-strict)."""
    import array_api_strict
    from sklearn.utils._array_api import get_namespace, move_estimator_to

    backend, to = library
    X_host = np.random.default_rng(0).normal(size=(30, 4))
    clf = NeuralNetClassifier((8,), epochs=2, random_state=0).fit(to(X_host), to(np.arange(30) % 3))
    expected = bp.to_numpy(clf.predict_proba(to(X_host)))
    xp_host, _ = get_namespace(X_host)
    on_host = move_estimator_to(clf, xp_host, "cpu")
    proba = on_host.predict_proba(X_host)
    assert isinstance(proba, np.ndarray) and isinstance(on_host.classes_, np.ndarray)
    np.testing.assert_allclose(proba, expected, rtol=1e-12, atol=1e-12)
    assert _network_on(clf, backend)  # the original is left where it was
    device1 = array_api_strict.Device("device1")
    strict = move_estimator_to(clf, array_api_strict, device1)
    out = strict.predict(array_api_strict.asarray(X_host, device=device1))
    assert bp.backends.kind_of(out).name == "array_api_strict" and out.device == device1
    np.testing.assert_array_equal(bp.to_numpy(out), expected.argmax(axis=1))
    ae = AutoencoderTransformer(2, (4,), epochs=2, tied=True, random_state=0).fit(to(X_host))
    moved = move_estimator_to(ae, xp_host, "cpu")
    assert moved.encoder_[0] is moved.network_[0][0]  # the halves still share their modules
    np.testing.assert_allclose(
        moved.transform(X_host), bp.to_numpy(ae.transform(to(X_host))), atol=1e-12
    )
