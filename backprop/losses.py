"""Costs: ``forward(y, yhat)`` gives one value per row, ``backward`` the gradient of their mean.

Checking the values of the inputs (label ranges, probabilities in [0, 1],
log-probabilities that sum to one) reads a number back from the device. Each
loss has a switch for it, ``check_inputs`` (default True; ``check_labels`` is
the same switch under its older name), and the training loop validates every
target once, up front, then runs its steps inside
:meth:`~backprop.Loss.targets_checked`, so that a GPU step does not wait for
the host. Shapes, dtypes and libraries are always checked: that costs nothing.
"""

from __future__ import annotations

from .module import Loss, _shape

__all__ = ["BCELoss", "CELogSoftmax", "CrossEntropyLoss", "MSELoss", "NLLLoss"]


def _row_sum(xp, a):
    """Sum over every axis but the first: ``(N, ...)`` -> ``(N,)``."""
    if a.ndim == 1:
        return a
    if a.ndim > 2:
        width = 1
        for d in a.shape[1:]:
            width *= d
        a = xp.reshape(a, (a.shape[0], width))  # not -1: ambiguous for an empty batch
    return xp.sum(a, axis=1)


def _mean_scale(n: int) -> float:
    """``1 / N`` for the gradient of a batch mean; an empty batch has a zero gradient, not 1 / 0."""
    return 1.0 / max(n, 1)


def _weighted(xp, Y, A, keep_nan: bool = True):
    """``Y * A`` with 0 wherever ``Y`` is 0, also where ``A`` is infinite.

    ``0 * -inf`` is NaN, but a class with no target weight contributes
    nothing to the cost, whatever its score: PyTorch gives the finite value.
    A NaN score is kept (``keep_nan``), so that a row holding one costs NaN
    (the divergence guard sees it) instead of a finite value; a caller whose
    row cost is NaN anyway for such a row passes False and saves two passes.
    """
    # mask before multiplying: 0 * inf would also warn on NumPy
    if keep_nan:
        return Y * xp.where((Y == 0) & ~xp.isnan(A), 0.0, A)
    return Y * xp.where(Y == 0, 0.0, A)


class _CheckedLoss(Loss):
    """A loss with value checks (see the module's docstring)."""

    def _dense(self, y, yhat, method: str):
        """``(xp, y)``: y of yhat's shape, cast to yhat's dtype (integer, bool targets too)."""
        kind = self._check_prediction(yhat, method)
        self._check_target_array(y, kind, yhat, method)
        if _shape(y) != _shape(yhat):
            raise ValueError(
                self._error(
                    method, f"expected y of the same shape as yhat {_shape(yhat)}, got {_shape(y)}"
                )
            )
        if y.dtype != yhat.dtype:
            _check_target_dtype(self, kind, y, method)
            y = kind.xp.astype(y, yhat.dtype)
        return kind.xp, y


def _check_target_dtype(loss, kind, y, method: str) -> None:
    xp = kind.xp
    if not (y.dtype in kind.float_dtypes or y.dtype in kind.int_dtypes or y.dtype == xp.bool):
        raise TypeError(
            loss._error(method, f"expected real, integer or boolean targets y, got dtype {y.dtype}")
        )


class MSELoss(_CheckedLoss):
    """Squared error per row: ``||y - yhat||^2`` summed over the features.

    Shape: y and yhat ``(N, d)`` (or any ``(N, ...)``) -> ``(N,)``.
    Backward: ``2 (yhat - y) / N``.
    """

    def _evaluate(self, y, yhat, method, cost, grad):
        xp, y = self._dense(y, yhat, method)
        diff = yhat - y
        return (
            _row_sum(xp, diff * diff) if cost else None,
            diff * (2.0 * _mean_scale(yhat.shape[0])) if grad else None,
        )


# log(yhat) is clamped at -100 as PyTorch does. The argument is first raised to
# 1e-45 (the smallest float32 subnormal; log(1e-45) = -103.6 < -100), so log(0)
# is never evaluated and never warns, while the clamp still lands on -100.
_LOG_FLOOR = -100.0
_ARG_FLOOR = 1e-45
_GRAD_EPS = 1e-12  # PyTorch's floor for yhat (1 - yhat) in the gradient


def _value_range(xp, a) -> str:
    """``[min, max]`` of ``a`` for an error message (NaN named as such)."""
    if bool(xp.any(xp.isnan(a))):
        return "NaN"
    return f"values in [{float(xp.min(a)):.6g}, {float(xp.max(a)):.6g}]"


class BCELoss(_CheckedLoss):
    """Binary cross-entropy per row, summed over the features.

    ``-(y log yhat + (1 - y) log(1 - yhat))`` with each log clamped at -100,
    so the cost is finite at ``yhat`` in {0, 1}. ``y`` may be any value in
    [0, 1] (not only 0/1). Shape: ``(N, d)`` -> ``(N,)``.

    Backward: ``(yhat - y) / max(yhat (1 - yhat), 1e-12) / N``, finite at 0 and 1.

    Raises
    ------
    ValueError
        While :attr:`check_inputs` is on: ``yhat`` outside [0, 1] (it must be
        probabilities, e.g. the output of :class:`~backprop.Sigmoid`), or
        targets outside [0, 1] or NaN. A NaN ``yhat`` is let through: its row
        costs NaN, which :func:`~backprop.SGD` reports as a divergence.
    """

    # in-place updates of the fresh temporaries below save an allocation
    # (and its page faults) per pass over (N, d)

    def _checked(self, y, yhat, method: str):
        xp, y = self._dense(y, yhat, method)
        if self._check_values():
            # comparisons with NaN are False: a NaN yhat passes, a NaN target does not
            outside = xp.any((yhat < 0) | (yhat > 1))
            bad_target = xp.logical_not(xp.all((y >= 0) & (y <= 1)))
            if bool(outside | bad_target):  # one read-back for both checks
                if bool(outside):
                    finite = xp.where(xp.isnan(yhat), xp.zeros_like(yhat), yhat)
                    raise ValueError(
                        self._error(
                            method,
                            f"yhat must hold probabilities in [0, 1], got values in "
                            f"[{float(xp.min(finite)):.6g}, {float(xp.max(finite)):.6g}]; "
                            "put a Sigmoid before BCELoss (for raw scores)",
                        )
                    )
                raise ValueError(
                    self._error(method, f"targets y must lie in [0, 1], got {_value_range(xp, y)}")
                )
        return xp, y

    def _clamped_log(self, xp, v):
        out = xp.log(xp.maximum(v, _ARG_FLOOR))
        return xp.maximum(out, _LOG_FLOOR)

    def _per_row(self, xp, y, yhat, q):
        terms = self._clamped_log(xp, yhat)  # log p
        log_q = self._clamped_log(xp, q)
        terms -= log_q
        terms *= y
        terms += log_q  # y log p + (1 - y) log q
        return -_row_sum(xp, terms)

    def _grad(self, xp, y, yhat, q):
        denom = xp.maximum(yhat * q, _GRAD_EPS)
        denom *= max(yhat.shape[0], 1)
        grad = yhat - y
        grad /= denom
        return grad

    def _evaluate(self, y, yhat, method, cost, grad):
        xp, y = self._checked(y, yhat, method)
        q = 1 - yhat  # shared by the cost and its gradient
        return (
            self._per_row(xp, y, yhat, q) if cost else None,
            self._grad(xp, y, yhat, q) if grad else None,
        )


class _ClassificationLoss(_CheckedLoss):
    """Targets as integer labels ``(N,)`` or one-hot / probability rows ``(N, C)``.

    While :attr:`check_inputs` is on, integer labels are checked against
    ``[0, C)`` and soft targets must be non-negative, one read-back each.
    """

    _arange = None  # (key, arange(C)) of the last call: the same every step

    def _classes(self, xp, kind, c, dtype, device):
        if not kind.mutable:
            # JAX: inside a compiled step this is a value of the trace, which must not outlive it
            return xp.arange(c, dtype=dtype, device=device)
        key = (kind.name, c, dtype, str(device))
        if self._arange is None or self._arange[0] != key:
            self._arange = (key, xp.arange(c, dtype=dtype, device=device))
        return self._arange[1]

    def _targets(self, y, yhat, method: str):
        """``(xp, Y, hard)``: ``Y`` an ``(N, C)`` array in yhat's dtype, ``hard`` for labels."""
        kind = self._check_prediction(yhat, method)
        xp = kind.xp
        if yhat.ndim != 2:
            raise ValueError(
                self._error(method, f"expected yhat of shape (N, C), got {_shape(yhat)}")
            )
        self._check_target_array(y, kind, yhat, method)
        n, c = yhat.shape
        if c == 0:
            raise ValueError(
                self._error(
                    method,
                    f"expected yhat of shape (N, C) with at least one class, got {_shape(yhat)}",
                )
            )
        if y.ndim == 1:
            if y.dtype not in kind.int_dtypes:
                raise TypeError(
                    self._error(
                        method,
                        f"labels of shape (N,) must be integers, got dtype {y.dtype}; "
                        "pass one-hot rows of shape (N, C) for soft targets",
                    )
                )
            if y.shape[0] != n:
                raise ValueError(
                    self._error(
                        method, f"expected {n} labels for yhat of shape {(n, c)}, got {y.shape[0]}"
                    )
                )
            if y.dtype != kind.wide_int() and y.dtype != xp.int32:
                # arange(C) in a narrow dtype wraps (int8: class 156 is -100;
                # uint8: class 300 is 44), and libraries support few operations
                # on wide unsigned types: compare in int64
                y = xp.astype(y, kind.wide_int())
            Y = xp.astype(
                y[:, None] == self._classes(xp, kind, c, y.dtype, kind.device_of(yhat)), yhat.dtype
            )
            # a label outside [0, C) leaves its row of Y empty: one sum checks every label while
            # a float32 sum of ones is exact (below 2**24 rows); past that, counted in integers
            if not self._check_values():
                bad = None
            elif n < 2**24:
                bad = None if float(xp.sum(Y)) == n else (y < 0) | (y >= c)
            else:
                bad = (y < 0) | (y >= c)
            if bad is not None and bool(xp.any(bad)):
                first = int(y[xp.argmax(xp.astype(bad, xp.int8))])
                raise ValueError(
                    self._error(method, f"label {first} is out of range for {c} classes")
                )
            return xp, Y, True
        if _shape(y) != _shape(yhat):
            raise ValueError(
                self._error(
                    method,
                    f"expected labels of shape ({n},) or one-hot rows of shape {(n, c)}, "
                    f"got {_shape(y)}",
                )
            )
        _check_target_dtype(self, kind, y, method)
        if y.dtype != yhat.dtype:
            y = xp.astype(y, yhat.dtype)
        # NaN fails the comparison: refused too
        if self._check_values() and not bool(xp.all(y >= 0)):
            raise ValueError(
                self._error(
                    method,
                    "soft targets must be non-negative (one-hot rows or probabilities), "
                    f"got {_value_range(xp, y)}",
                )
            )
        if self._check_values() and n:
            # a row summing to 0 or 2 is no distribution: its cost and gradient would be
            # silently scaled (one-hot rows with a lost or a doubled 1)
            sums = xp.sum(y, axis=1)
            off = xp.abs(sums - 1) > (1e-3 if y.dtype == xp.float32 else 1e-6) * max(c, 1)
            if bool(xp.any(off)):
                row = int(xp.argmax(xp.astype(off, xp.int8)))
                raise ValueError(
                    self._error(
                        method,
                        "each row of soft targets must sum to 1 (one-hot rows or "
                        f"probabilities), but row {row} sums to {float(sums[row]):.6g}",
                    )
                )
        return xp, y, False


# How far from 0 a row's logsumexp may be for the row to count as
# log-probabilities. LogSoftmax's own rounding error is a few ulps times
# log(C), far below; the slack is for log-probabilities computed another way,
# e.g. log(p) of probabilities that sum to one only up to C * eps (float32,
# 10^5 classes: 6e-3). Raw scores almost never pass: at initialisation their
# logsumexp is about log(C) (0.69 for two classes).
_LOGPROB_TOL = {"float32": 1e-2, "float64": 1e-3}
# the smallest positive normal float32: log(0) is never evaluated (and never warns)
_TINY = 1.1754944e-38


class CrossEntropyLoss(_ClassificationLoss):
    """Negative log-likelihood of log-probabilities: per row ``-yhat[y]``.

    This is the assignment's cross-entropy, Torch7's ``ClassNLLCriterion`` and
    PyTorch's ``NLLLoss`` (also exported as :class:`NLLLoss`): ``yhat`` holds
    **log-probabilities**, the output of :class:`~backprop.LogSoftmax`. For the
    raw scores of a ``Linear`` layer (what PyTorch's ``CrossEntropyLoss``
    takes) use :class:`CELogSoftmax`.

    ``y`` is integer labels ``(N,)`` or one-hot rows ``(N, C)`` (for soft
    targets, per row ``-sum_c y_c yhat_c``). A ``-inf`` log-probability on a
    class without target weight costs nothing. Backward: ``-Y / N``.

    Shape
    -----
    yhat ``(N, C)``, y ``(N,)`` (integers in ``[0, C)``) or ``(N, C)`` -> ``(N,)``.

    Raises
    ------
    ValueError
        While :attr:`check_inputs` is on, for rows that cannot be
        log-probabilities: ``|logsumexp(yhat_row)| > 1e-2`` in float32
        (``1e-3`` in float64), which covers any entry above that tolerance
        and rows of ``-inf``. NaN rows are let through (their cost is NaN).
        Also labels outside ``[0, C)`` and negative soft targets.
    """

    def _check_log_probabilities(self, xp, yhat, method: str) -> None:
        if not self._check_values() or yhat.shape[0] == 0:
            return
        m = xp.max(yhat, axis=1, keepdims=True)
        # a row of -inf (or with +inf) would make yhat - m NaN: shift by 0 there
        m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
        lse = m[:, 0] + xp.log(xp.maximum(xp.sum(xp.exp(yhat - m), axis=1), _TINY))
        tol = _LOGPROB_TOL["float32" if yhat.dtype == xp.float32 else "float64"]
        far = xp.abs(lse) > tol  # False for NaN rows
        if bool(xp.any(far)):
            row = int(xp.argmax(xp.astype(far, xp.int8)))
            raise ValueError(
                self._error(
                    method,
                    "yhat must hold log-probabilities (each row's logsumexp 0, every entry <= 0), "
                    f"but row {row} has logsumexp {float(lse[row]):.6g}; for raw scores (the "
                    "output of a Linear layer) use CELogSoftmax, which fuses LogSoftmax and "
                    "this loss, or put a LogSoftmax before it",
                )
            )

    def _evaluate(self, y, yhat, method, cost, grad):
        xp, Y, _ = self._targets(y, yhat, method)
        self._check_log_probabilities(xp, yhat, method)
        return (
            -xp.sum(_weighted(xp, Y, yhat), axis=1) if cost else None,
            Y * (-_mean_scale(yhat.shape[0])) if grad else None,
        )


class NLLLoss(CrossEntropyLoss):
    """PyTorch's name for :class:`CrossEntropyLoss`: negative log-likelihood of log-probabilities.

    Identical to :class:`CrossEntropyLoss` (errors name ``NLLLoss``). For raw
    scores use :class:`CELogSoftmax` (PyTorch's ``CrossEntropyLoss``).
    """


class CELogSoftmax(_ClassificationLoss):
    """Log-softmax and cross-entropy fused, on raw scores: per row ``logsumexp(z) - z[y]``.

    PyTorch's ``CrossEntropyLoss``. Numerically stable for scores of any
    magnitude (the row max is subtracted before exp; a ``-inf`` score, or one
    so far below the max that the difference overflows, is a class of
    probability 0 that costs nothing unless it is the target). ``y`` as for
    :class:`CrossEntropyLoss`; for soft targets the row cost is
    ``sum_c y_c (logsumexp(z) - z_c)``.
    Backward: ``(softmax(z) sum_c y_c - Y) / N``.

    Shape
    -----
    yhat ``(N, C)`` raw scores, y ``(N,)`` (integers in ``[0, C)``) or ``(N, C)`` -> ``(N,)``.
    """

    def _parts(self, xp, yhat):
        shifted = yhat - xp.max(yhat, axis=1, keepdims=True)
        e = xp.exp(shifted)
        total = xp.sum(e, axis=1, keepdims=True)
        return shifted, e, total

    def _cost(self, xp, Y, hard, shifted, total):
        # sum_c Y_c (log total - shifted_c), with sum_c Y_c = 1 for labels
        log_total = xp.log(total[:, 0])
        # a NaN score makes its row's maximum, so every shifted score, the total and log_total
        # NaN: the row costs NaN without _weighted keeping it
        picked = xp.sum(_weighted(xp, Y, shifted, keep_nan=False), axis=1)
        return log_total - picked if hard else log_total * xp.sum(Y, axis=1) - picked

    def _grad(self, xp, Y, hard, e, total):
        S = e / total
        if not hard:
            S = S * xp.sum(Y, axis=1, keepdims=True)
        return (S - Y) * _mean_scale(Y.shape[0])

    def _evaluate(self, y, yhat, method, cost, grad):
        xp, Y, hard = self._targets(y, yhat, method)
        shifted, e, total = self._parts(xp, yhat)
        return (
            self._cost(xp, Y, hard, shifted, total) if cost else None,
            self._grad(xp, Y, hard, e, total) if grad else None,
        )
