"""Costs. ``forward(y, yhat)`` gives one value per row, ``backward`` the gradient of their batch mean."""

from __future__ import annotations

from .module import Loss, _shape

__all__ = ["BCELoss", "CELogSoftmax", "CrossEntropyLoss", "MSELoss"]


def _row_sum(xp, a):
    """Sum over every axis but the first: ``(N, ...)`` -> ``(N,)``."""
    if a.ndim == 1:
        return a
    if a.ndim > 2:
        a = xp.reshape(a, (a.shape[0], -1))
    return xp.sum(a, axis=1)


class MSELoss(Loss):
    """Squared error per row: ``||y - yhat||^2`` summed over the features.

    Shape: y and yhat ``(N, d)`` (or any ``(N, ...)``) -> ``(N,)``.
    Backward: ``2 (yhat - y) / N``.
    """

    def forward(self, y, yhat):
        xp, y = self._dense_target(y, yhat, "forward")
        diff = yhat - y
        return _row_sum(xp, diff * diff)

    def backward(self, y, yhat):
        _, y = self._dense_target(y, yhat, "backward")
        return (yhat - y) * (2.0 / yhat.shape[0])

    def forward_backward(self, y, yhat):
        xp, y = self._dense_target(y, yhat, "forward")
        diff = yhat - y
        return _row_sum(xp, diff * diff), diff * (2.0 / yhat.shape[0])


# log(yhat) is clamped at -100 as PyTorch does. The argument is first raised to
# 1e-45 (the smallest float32 subnormal; log(1e-45) = -103.6 < -100), so log(0)
# is never evaluated and never warns, while the clamp still lands on -100.
_LOG_FLOOR = -100.0
_ARG_FLOOR = 1e-45
_GRAD_EPS = 1e-12  # PyTorch's floor for yhat (1 - yhat) in the gradient


class BCELoss(Loss):
    """Binary cross-entropy per row, summed over the features.

    ``-(y log yhat + (1 - y) log(1 - yhat))`` with each log clamped at -100,
    so the cost is finite at ``yhat`` in {0, 1}. ``y`` may be any value in
    [0, 1] (not only 0/1). Shape: ``(N, d)`` -> ``(N,)``.

    Backward: ``(yhat - y) / max(yhat (1 - yhat), 1e-12) / N``, finite at 0 and 1.
    """

    # in-place updates of the fresh temporaries below save an allocation
    # (and its page faults) per pass over (N, d)

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
        denom *= yhat.shape[0]
        grad = yhat - y
        grad /= denom
        return grad

    def forward(self, y, yhat):
        xp, y = self._dense_target(y, yhat, "forward")
        return self._per_row(xp, y, yhat, 1 - yhat)

    def backward(self, y, yhat):
        xp, y = self._dense_target(y, yhat, "backward")
        return self._grad(xp, y, yhat, 1 - yhat)

    def forward_backward(self, y, yhat):
        xp, y = self._dense_target(y, yhat, "forward")
        q = 1 - yhat  # shared by the cost and its gradient
        return self._per_row(xp, y, yhat, q), self._grad(xp, y, yhat, q)


class _ClassificationLoss(Loss):
    """Targets as integer labels ``(N,)`` or one-hot / probability rows ``(N, C)``.

    Integer labels are checked against ``[0, C)``, which reads one number back
    from the device. :func:`~backprop.SGD` checks every label during the first
    epoch and then sets ``check_labels`` to False for the rest of the run, so
    a GPU step does not wait for the host.
    """

    _arange = None  # (key, arange(C)) of the last call: the same every step

    def _classes(self, xp, kind, c, dtype, device):
        key = (kind.name, c, dtype, str(device))
        if self._arange is None or self._arange[0] != key:
            self._arange = (key, xp.arange(c, dtype=dtype, device=device))
        return self._arange[1]

    def _targets(self, y, yhat, method: str):
        """Return ``(xp, Y, hard)``: ``Y`` a ``(N, C)`` array in yhat's dtype, ``hard`` True for labels."""
        kind = self._check_prediction(yhat, method)
        xp = kind.xp
        if yhat.ndim != 2:
            raise ValueError(self._error(method, f"expected yhat of shape (N, C), got {_shape(yhat)}"))
        self._check_target_array(y, kind, yhat, method)
        n, c = yhat.shape
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
                raise ValueError(self._error(method, f"expected {n} labels for yhat of shape {(n, c)}, got {y.shape[0]}"))
            Y = xp.astype(y[:, None] == self._classes(xp, kind, c, y.dtype, kind.device_of(yhat)), yhat.dtype)
            # each row of Y holds at most one 1, and none for a label outside
            # [0, C): one sum validates every label
            if self._check_values() and float(xp.sum(Y)) != n:
                bad = (y < 0) | (y >= c)
                first = int(y[xp.argmax(xp.astype(bad, xp.int8))])
                raise ValueError(self._error(method, f"label {first} is out of range for {c} classes"))
            return xp, Y, True
        if _shape(y) != _shape(yhat):
            raise ValueError(
                self._error(method, f"expected labels of shape ({n},) or one-hot rows of shape {(n, c)}, got {_shape(y)}")
            )
        if y.dtype != yhat.dtype:
            y = xp.astype(y, yhat.dtype)
        return xp, y, False


class CrossEntropyLoss(_ClassificationLoss):
    """Negative log-likelihood of log-probabilities: per row ``-yhat[y]``.

    ``yhat`` holds log-probabilities (the output of :class:`~backprop.LogSoftmax`);
    ``y`` is integer labels ``(N,)`` or one-hot rows ``(N, C)`` (for soft
    targets, per row ``-sum_c y_c yhat_c``). Backward: ``-Y / N``.

    Shape
    -----
    yhat ``(N, C)``, y ``(N,)`` (integers in ``[0, C)``) or ``(N, C)`` -> ``(N,)``.
    """

    def forward(self, y, yhat):
        xp, Y, _ = self._targets(y, yhat, "forward")
        return -xp.sum(Y * yhat, axis=1)

    def backward(self, y, yhat):
        _, Y, _ = self._targets(y, yhat, "backward")
        return Y * (-1.0 / yhat.shape[0])

    def forward_backward(self, y, yhat):
        xp, Y, _ = self._targets(y, yhat, "forward")
        return -xp.sum(Y * yhat, axis=1), Y * (-1.0 / yhat.shape[0])


class CELogSoftmax(_ClassificationLoss):
    """Log-softmax and cross-entropy fused, on raw scores: per row ``logsumexp(z) - z[y]``.

    Numerically stable for scores of any magnitude (the row max is
    subtracted before exp). ``y`` as for :class:`CrossEntropyLoss`; for soft
    targets the row cost is ``sum_c y_c (logsumexp(z) - z_c)``.
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
        picked = xp.sum(Y * shifted, axis=1)
        return log_total - picked if hard else log_total * xp.sum(Y, axis=1) - picked

    def _grad(self, xp, Y, hard, e, total):
        S = e / total
        if not hard:
            S = S * xp.sum(Y, axis=1, keepdims=True)
        return (S - Y) * (1.0 / Y.shape[0])

    def forward(self, y, yhat):
        xp, Y, hard = self._targets(y, yhat, "forward")
        shifted, _, total = self._parts(xp, yhat)
        return self._cost(xp, Y, hard, shifted, total)

    def backward(self, y, yhat):
        xp, Y, hard = self._targets(y, yhat, "backward")
        _, e, total = self._parts(xp, yhat)
        return self._grad(xp, Y, hard, e, total)

    def forward_backward(self, y, yhat):
        xp, Y, hard = self._targets(y, yhat, "forward")
        shifted, e, total = self._parts(xp, yhat)
        return self._cost(xp, Y, hard, shifted, total), self._grad(xp, Y, hard, e, total)
