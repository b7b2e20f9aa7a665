"""Bundled data sets, one-hot encoding, accuracy."""

from __future__ import annotations

from .backends import Backend, asarray, backend_like, get_backend, kind_of

__all__ = ["accuracy", "load_digits", "one_hot", "predict_classes"]


def _sklearn():
    try:
        import sklearn.datasets
        import sklearn.model_selection
    except ImportError as exc:
        raise ImportError(
            f"the bundled data sets come from scikit-learn ({exc}); install it with: pip install 'backprop[examples]'"
        ) from None
    return sklearn


def load_digits(*, test_size: float = 0.25, seed: int = 0, images: bool = False, backend: Backend | None = None):
    """scikit-learn's 8x8 handwritten digits (1797 images), split with stratification.

    Returns ``X_train, X_test, y_train, y_test`` on the backend: pixels scaled
    to [0, 1], shape ``(n, 64)`` (or ``(n, 8, 8)`` with ``images=True``), and
    integer labels ``(n,)``.
    """
    sk = _sklearn()
    data = sk.datasets.load_digits()
    X = data.images if images else data.data
    X_tr, X_te, y_tr, y_te = sk.model_selection.train_test_split(
        X / 16.0, data.target, test_size=test_size, random_state=seed, stratify=data.target
    )
    b = backend or get_backend()
    return asarray(X_tr, backend=b), asarray(X_te, backend=b), asarray(y_tr, backend=b), asarray(y_te, backend=b)


def one_hot(y, n_classes: int, *, dtype=None):
    """Integer labels ``(n,)`` -> one-hot rows ``(n, n_classes)`` in the backend's float dtype (or ``dtype``)."""
    kind = kind_of(y)
    xp = kind.xp
    if y.ndim != 1 or not xp.isdtype(y.dtype, "integral"):
        raise ValueError(f"one_hot: expected integer labels of shape (n,), got shape {tuple(y.shape)} dtype {y.dtype}")
    if y.shape[0] and (int(xp.min(y)) < 0 or int(xp.max(y)) >= n_classes):
        raise ValueError(f"one_hot: labels must lie in [0, {n_classes}), got [{int(xp.min(y))}, {int(xp.max(y))}]")
    classes = xp.arange(n_classes, dtype=y.dtype, device=kind.device(y))
    target = dtype if dtype is not None else get_backend().dtype_name
    target = getattr(xp, target) if isinstance(target, str) else target
    return xp.astype(xp.expand_dims(y, axis=1) == classes, target)


def predict_classes(scores):
    """Index of the largest score of each row."""
    return kind_of(scores).xp.argmax(scores, axis=1)


def accuracy(scores, labels) -> float:
    """Fraction of rows whose largest score is at the label (labels as integers or one-hot rows)."""
    xp = kind_of(scores).xp
    if type(labels) is not type(scores):
        labels = asarray(labels, backend=backend_like(scores))
    if labels.ndim == 2:
        labels = xp.argmax(labels, axis=1)
    pred = xp.argmax(scores, axis=1)
    return float(xp.mean(xp.astype(pred == xp.astype(labels, pred.dtype), xp.float64)))
