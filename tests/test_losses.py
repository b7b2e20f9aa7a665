import numpy as np
import pytest

import backprop as bp
from conftest import assert_close, assert_like, try_torch


def log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def test_mse_by_hand(backend):
    y = bp.asarray([[1.0, 2.0], [0.0, 0.0]])
    yhat = bp.asarray([[1.0, 0.0], [3.0, 4.0]])
    loss = bp.MSELoss()
    out = loss(y, yhat)
    assert_like(out, backend, (2,))
    assert_close(out, [4.0, 25.0], backend)
    assert_close(loss.backward(y, yhat), [[0.0, -2.0], [3.0, 4.0]], backend)


def test_bce_by_hand(backend):
    y = bp.asarray([[1.0, 0.0]])
    yhat = bp.asarray([[0.8, 0.25]])
    expected = -(np.log(0.8) + np.log(0.75))
    assert_close(bp.BCELoss()(y, yhat), [expected], backend)


def test_bce_clamps_at_zero_and_one(backend):
    y = bp.asarray([[1.0, 0.0, 1.0, 0.0]])
    yhat = bp.asarray([[0.0, 1.0, 1.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        value = bp.to_numpy(bp.BCELoss()(y, yhat))
        grad = bp.to_numpy(bp.BCELoss().backward(y, yhat))
    assert value == pytest.approx([200.0])
    assert np.all(np.isfinite(grad))


def test_cross_entropy_by_hand(backend):
    logp = bp.asarray(np.log([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    labels = bp.asarray(np.array([0, 2]))
    onehot = bp.asarray(np.eye(3)[[0, 2]])
    for y in (labels, onehot):
        assert_close(bp.CrossEntropyLoss()(y, logp), [np.log(2), -np.log(0.8)], backend)
        assert_close(bp.CrossEntropyLoss().backward(y, logp), -np.eye(3)[[0, 2]] / 2, backend)


def test_celogsoftmax_matches_logsoftmax_then_ce(backend, rng):
    z = rng.normal(size=(6, 4)) * 4
    y = rng.integers(0, 4, size=6)
    fused = bp.CELogSoftmax()(bp.asarray(y), bp.asarray(z))
    assert_close(fused, -log_softmax(z)[np.arange(6), y], backend)
    two = bp.CrossEntropyLoss()(bp.asarray(y), bp.LogSoftmax()(bp.asarray(z)))
    assert_close(fused, bp.to_numpy(two), backend)


LOSSES = ["MSELoss", "BCELoss", "CrossEntropyLoss", "CELogSoftmax"]


def _case(name, rng, labels=False):
    n, c = 5, 4
    if name == "MSELoss":
        return rng.normal(size=(n, c)), rng.normal(size=(n, c))
    if name == "BCELoss":
        return rng.uniform(size=(n, c)), rng.uniform(0.05, 0.95, size=(n, c))
    y = rng.integers(0, c, size=n)
    y = y if labels else np.eye(c)[y]
    z = rng.normal(size=(n, c))
    return y, (log_softmax(z) if name == "CrossEntropyLoss" else z)


# integer labels apply to the classification losses only
GRADCHECK_CASES = [(name, False) for name in LOSSES] + [
    ("CrossEntropyLoss", True),
    ("CELogSoftmax", True),
]


@pytest.mark.parametrize("name,labels", GRADCHECK_CASES)
def test_gradcheck(f64, rng, name, labels):
    y, yhat = _case(name, rng, labels)
    assert bp.gradcheck(getattr(bp, name)(), bp.asarray(y), bp.asarray(yhat))


@pytest.mark.parametrize("name", LOSSES)
def test_forward_backward_agrees(backend, rng, name):
    y, yhat = _case(name, rng)
    loss = getattr(bp, name)()
    value, grad = loss.forward_backward(bp.asarray(y), bp.asarray(yhat))
    assert_like(value, backend, (5,))
    assert_like(grad, backend, (5, 4))
    assert_close(value, bp.to_numpy(loss.forward(bp.asarray(y), bp.asarray(yhat))), backend)
    assert_close(grad, bp.to_numpy(loss.backward(bp.asarray(y), bp.asarray(yhat))), backend)


def test_backward_is_gradient_of_batch_mean(f64, rng):
    y, yhat = _case("MSELoss", rng)
    g = bp.to_numpy(bp.MSELoss().backward(bp.asarray(y), bp.asarray(yhat)))
    assert_close(g, 2 * (yhat - y) / 5, f64)


def test_label_errors(backend):
    z = bp.asarray(np.zeros((3, 10)))
    for loss in (bp.CrossEntropyLoss(), bp.CELogSoftmax()):
        name = type(loss).__name__
        with pytest.raises(
            ValueError, match=f"{name}.forward: label 12 is out of range for 10 classes"
        ):
            loss(bp.asarray(np.array([1, 12, 3])), z)
        with pytest.raises(ValueError, match="label -1 is out of range"):
            loss.backward(bp.asarray(np.array([-1, 0, 3])), z)
        with pytest.raises(TypeError, match="must be integers"):
            loss(bp.asarray(np.array([1.0, 2.0, 3.0])), z)
        with pytest.raises(ValueError, match=r"expected 3 labels"):
            loss(bp.asarray(np.array([1, 2])), z)
        with pytest.raises(ValueError, match=r"one-hot rows of shape \(3, 10\), got \(3, 9\)"):
            loss(bp.asarray(np.zeros((3, 9))), z)


def test_shape_and_type_errors(backend):
    with pytest.raises(
        ValueError,
        match=r"MSELoss.forward: expected y of the same shape as yhat \(2, 3\), got \(2, 2\)",
    ):
        bp.MSELoss()(bp.asarray(np.zeros((2, 2))), bp.asarray(np.zeros((2, 3))))
    with pytest.raises(TypeError, match="BCELoss.backward: expected a real floating yhat"):
        bp.BCELoss().backward(
            bp.asarray(np.zeros((2, 2))), bp.asarray(np.zeros((2, 2), dtype=np.int64))
        )
    with pytest.raises(TypeError, match="y: expected an array"):
        bp.MSELoss()([[0.0]], bp.asarray(np.zeros((1, 1))))


def test_integer_targets_accepted_for_dense_losses(backend):
    y = bp.asarray(np.array([[1], [0]]))
    yhat = bp.asarray([[0.5], [0.5]])
    assert_close(bp.MSELoss()(y, yhat), [0.25, 0.25], backend)


@pytest.mark.parametrize("name", LOSSES)
def test_torch_parity(f64, rng, name):
    torch = try_torch()
    F = torch.nn.functional
    y, yhat = _case(name, rng, labels=name in ("CrossEntropyLoss", "CELogSoftmax"))
    ty, tp = torch.tensor(y), torch.tensor(yhat, requires_grad=True)
    if name == "MSELoss":
        per_row = ((tp - ty) ** 2).sum(1)
    elif name == "BCELoss":
        per_row = F.binary_cross_entropy(tp, ty, reduction="none").sum(1)
    elif name == "CrossEntropyLoss":
        per_row = F.nll_loss(tp, ty, reduction="none")
    else:
        per_row = F.cross_entropy(tp, ty, reduction="none")
    per_row.mean().backward()
    loss = getattr(bp, name)()
    assert_close(loss(bp.asarray(y), bp.asarray(yhat)), per_row.detach().numpy(), f64)
    assert_close(loss.backward(bp.asarray(y), bp.asarray(yhat)), tp.grad.numpy(), f64)


def test_bce_torch_parity_at_the_edges(f64):
    torch = try_torch()
    y = np.array([[1.0, 0.0, 1.0, 0.0, 0.3]])
    p = np.array([[0.0, 1.0, 1e-50, 1 - 1e-17, 0.5]])
    ref = torch.nn.functional.binary_cross_entropy(
        torch.tensor(p), torch.tensor(y), reduction="none"
    ).sum(1)
    assert_close(bp.BCELoss()(bp.asarray(y), bp.asarray(p)), ref.numpy(), f64, rtol=1e-9)


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("method", ["forward", "backward", "forward_backward"])
def test_bce_refuses_yhat_outside_zero_one(backend, method):
    y = bp.asarray([[1.0, 0.0]])
    for bad in ([[1.5, 0.5]], [[0.5, -0.1]]):
        with pytest.raises(
            ValueError,
            match=r"BCELoss\.(forward|backward): yhat must hold probabilities in \[0, 1\], got",
        ):
            getattr(bp.BCELoss(), method)(y, bp.asarray(bad))


def test_bce_refuses_targets_outside_zero_one(backend):
    yhat = bp.asarray([[0.5, 0.5]])
    for bad, shown in (
        ([[2.0, 0.0]], r"values in \[0, 2\]"),
        ([[-1.0, 0.0]], r"values in \[-1, 0\]"),
        ([[np.nan, 0.0]], "NaN"),
    ):
        with pytest.raises(
            ValueError, match=rf"BCELoss.forward: targets y must lie in \[0, 1\], got {shown}"
        ):
            bp.BCELoss()(bp.asarray(bad), yhat)
    with pytest.raises(ValueError, match="targets y must lie in"):
        bp.BCELoss()(bp.asarray(np.array([[2, 0]])), yhat)  # integer targets too


def test_bce_nan_prediction_is_a_nan_cost_not_an_error(backend):
    # SGD turns a NaN cost into a DivergenceError naming the epoch and batch
    out = bp.to_numpy(bp.BCELoss()(bp.asarray([[1.0], [0.0]]), bp.asarray([[np.nan], [0.5]])))
    assert np.isnan(out[0]) and out[1] == pytest.approx(np.log(2))


def test_value_checks_can_be_switched_off(backend):
    loss = bp.BCELoss()
    loss.check_labels = False  # the older name of the same switch
    assert loss.check_inputs is False
    assert bp.to_numpy(loss(bp.asarray([[1.0]]), bp.asarray([[1.5]]))).shape == (1,)
    nll = bp.NLLLoss()
    nll.check_inputs = False
    assert nll.check_labels is False
    assert bp.to_numpy(nll(bp.asarray(np.array([0])), bp.asarray([[3.0, 1.0]]))) == pytest.approx(
        [-3.0]
    )


def test_minus_infinity_on_other_classes_is_finite(backend):
    z = np.array([[2.0, -np.inf, 0.5], [-np.inf, 1.0, 1.0]])
    y = np.array([0, 2])
    expected = -log_softmax(np.where(np.isinf(z), -1e300, z))[np.arange(2), y]
    for target in (y, np.eye(3)[y]):
        value, grad = bp.CELogSoftmax().forward_backward(bp.asarray(target), bp.asarray(z))
        assert_close(value, expected, backend)
        assert np.all(np.isfinite(bp.to_numpy(grad)))
        assert bp.to_numpy(grad)[0, 1] == 0 and bp.to_numpy(grad)[1, 0] == 0
    logp = log_softmax(np.where(np.isinf(z), -1e300, z))
    logp[np.isinf(z) | (logp < -1e200)] = -np.inf
    for loss in (bp.CrossEntropyLoss(), bp.NLLLoss()):
        assert_close(loss(bp.asarray(y), bp.asarray(logp)), expected, backend)
        assert_close(loss(bp.asarray(np.eye(3)[y]), bp.asarray(logp)), expected, backend)


def test_minus_infinity_on_the_target_costs_infinity(backend):
    out = bp.to_numpy(bp.CELogSoftmax()(bp.asarray(np.array([1])), bp.asarray([[0.0, -np.inf]])))
    assert out[0] == np.inf


def test_minus_infinity_matches_torch(f64):
    torch = try_torch()
    z = np.array([[2.0, -np.inf, 0.5], [-np.inf, 1.0, 1.0]])
    y = np.array([0, 2])
    tz = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(tz, torch.tensor(y), reduction="none")
    ref.mean().backward()
    value, grad = bp.CELogSoftmax().forward_backward(bp.asarray(y), bp.asarray(z))
    assert_close(value, ref.detach().numpy(), f64)
    assert_close(grad, tz.grad.numpy(), f64)


def test_huge_float32_logits_stay_finite():
    with bp.use_backend("numpy", dtype="float32"):
        z = np.array(
            [[3e38, -3e38, 0.0], [-3e38, -3e38, 3e38], [1e38, 2e38, 3e38]], dtype=np.float32
        )
        y = np.array([0, 2, 1])
        with np.errstate(over="ignore"):  # -3e38 - 3e38 overflows to -inf: a class of probability 0
            value, grad = bp.CELogSoftmax().forward_backward(bp.asarray(y), bp.asarray(z))
        value, grad = bp.to_numpy(value), bp.to_numpy(grad)
    z64 = z.astype(np.float64)
    expected = -log_softmax(z64)[np.arange(3), y]
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, (np.exp(log_softmax(z64)) - np.eye(3)[y]) / 3, atol=1e-7)


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "CELogSoftmax"])
def test_negative_or_nan_soft_targets_are_refused(backend, name):
    yhat = bp.asarray(np.log([[0.5, 0.5], [0.25, 0.75]]))
    for bad, shown in (
        ([[1.5, -0.5], [0.0, 1.0]], r"values in \[-0.5, 1.5\]"),
        ([[np.nan, 1.0], [0.0, 1.0]], "NaN"),
    ):
        with pytest.raises(
            ValueError, match=rf"{name}.forward: soft targets must be non-negative .*got {shown}"
        ):
            getattr(bp, name)()(bp.asarray(bad), yhat)


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "CELogSoftmax"])
def test_narrow_label_dtypes_never_wrap(backend_name, name):
    torch_uint = (
        backend_name == "torch"
    )  # torch has uint8 but few operations on wider unsigned types
    with bp.use_backend(backend_name, dtype="float64"):
        loss = getattr(bp, name)()
        logp = bp.asarray(np.full((2, 200), -np.log(200.0)))
        with pytest.raises(ValueError, match="label -100 is out of range for 200 classes"):
            loss(bp.asarray(np.array([3, -100], dtype=np.int8)), logp)
        with pytest.raises(ValueError, match="label 200 is out of range for 200 classes"):
            loss(bp.asarray(np.array([200, 1], dtype=np.int16)), logp)
        logp300 = np.full((3, 300), -np.log(300.0))
        for dtype in (np.uint8,) + (() if torch_uint else (np.uint16, np.uint32)):
            labels = np.array([255, 0, 7], dtype=dtype)
            value, grad = loss.forward_backward(bp.asarray(labels), bp.asarray(logp300))
            np.testing.assert_allclose(bp.to_numpy(value), np.log(300.0), rtol=1e-12)
            expected = -np.eye(300)[labels.astype(np.int64)] / 3
            if name == "CELogSoftmax":
                expected += 1 / 900
            np.testing.assert_allclose(bp.to_numpy(grad), expected, atol=1e-15)


@pytest.mark.parametrize("name", LOSSES + ["NLLLoss"])
def test_empty_batch(backend, name):
    c = 3
    yhat = bp.asarray(np.zeros((0, c)))
    y = bp.asarray(np.zeros((0, c)))
    loss = getattr(bp, name)()
    value, grad = loss.forward_backward(y, yhat)
    assert_like(value, backend, (0,))
    assert_like(grad, backend, (0, c))
    assert_like(loss.backward(y, yhat), backend, (0, c))
    if name not in ("MSELoss", "BCELoss"):
        labels = bp.asarray(np.zeros((0,), dtype=np.int64))
        assert_like(loss(labels, yhat), backend, (0,))
        assert_like(loss.backward(labels, yhat), backend, (0, c))


def test_no_classes_is_refused(backend):
    with pytest.raises(
        ValueError, match=r"CELogSoftmax.forward: .*at least one class, got \(2, 0\)"
    ):
        bp.CELogSoftmax()(bp.asarray(np.zeros(2, dtype=np.int64)), bp.asarray(np.zeros((2, 0))))


def test_complex_targets_are_refused():
    yhat = bp.asarray(
        np.full((1, 2), 0.5), backend=bp.backends.make_backend("numpy", None, "float64")
    )
    with pytest.raises(
        TypeError,
        match="MSELoss.forward: expected real, integer or boolean targets y, got dtype complex128",
    ):
        bp.MSELoss()(np.ones((1, 2), dtype=np.complex128), yhat)
    with pytest.raises(TypeError, match="CELogSoftmax.forward: expected real"):
        bp.CELogSoftmax()(np.ones((1, 2), dtype=np.complex128), yhat)


def test_nll_is_cross_entropy_on_log_probabilities(backend, rng):
    assert issubclass(bp.NLLLoss, bp.CrossEntropyLoss)
    z = rng.normal(size=(6, 5)) * 3
    y = rng.integers(0, 5, size=6)
    logp = bp.LogSoftmax()(bp.asarray(z))
    assert_close(
        bp.NLLLoss()(bp.asarray(y), logp), -log_softmax(z)[np.arange(6), y], backend, atol=1e-5
    )


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "NLLLoss"])
def test_raw_scores_are_refused_with_a_pointer_to_celogsoftmax(backend, rng, name):
    y = bp.asarray(rng.integers(0, 10, size=8))
    scores = bp.Linear(4, 10)(bp.asarray(rng.normal(size=(8, 4))))
    probabilities = bp.Softmax()(scores)
    for bad in (
        scores,
        probabilities,
        bp.asarray(np.full((8, 10), -np.inf)),
        bp.asarray(np.full((8, 10), np.log(0.09))),
    ):
        for method in ("forward", "backward", "forward_backward"):
            with pytest.raises(
                ValueError,
                match=rf"{name}.(forward|backward): yhat must hold log-prob.*use CELogSoftmax",
            ):
                getattr(getattr(bp, name)(), method)(y, bad)


def test_log_probabilities_within_tolerance_pass(backend, rng):
    # float32 LogSoftmax over many classes, log(p + 1e-7) computed by hand, an exact -inf entry
    z = rng.normal(size=(4, 5000)) * 10
    y = bp.asarray(rng.integers(0, 5000, size=4))
    bp.NLLLoss()(y, bp.LogSoftmax()(bp.asarray(z)))
    p = np.exp(log_softmax(rng.normal(size=(4, 10))))
    bp.NLLLoss()(bp.asarray(np.array([0, 1, 2, 3])), bp.asarray(np.log(p + 1e-7)))


def test_nan_log_probabilities_propagate(backend):
    out = bp.to_numpy(
        bp.NLLLoss()(
            bp.asarray(np.array([0, 1])), bp.asarray([[np.nan, np.nan], [np.log(0.5), np.log(0.5)]])
        )
    )
    assert np.isnan(out[0]) and out[1] == pytest.approx(np.log(2))


def test_sgd_checks_log_probabilities_once_up_front(rng):
    X = rng.normal(size=(20, 3))
    y = rng.integers(0, 3, size=20)
    net = bp.Sequentiel(bp.Linear(3, 3), bp.LogSoftmax())
    loss = bp.NLLLoss()
    calls = []
    original = bp.NLLLoss._check_log_probabilities

    def spy(self, xp, yhat, method):
        calls.append(self._check_values())
        return original(self, xp, yhat, method)

    bp.NLLLoss._check_log_probabilities = spy
    try:
        bp.SGD(net, loss, X, y, batch_size=10, epochs=3, eps=0.1, seed=0)
    finally:
        bp.NLLLoss._check_log_probabilities = original
    # checked once, against the network's output for every target, before any step; not in the
    # steps (6 eager ones, or the trace of a compiled one)
    assert calls[0] is True and len(calls) >= 2 and not any(calls[1:])
    assert loss.check_inputs and loss._check_values()  # the switch is untouched
    with pytest.raises(ValueError, match="use CELogSoftmax"):
        bp.SGD(bp.Sequentiel(bp.Linear(3, 3)), loss, X, y, batch_size=10, epochs=1, eps=0.1, seed=0)
