"""Bundled data sets, one-hot encoding, accuracy."""

from __future__ import annotations

import operator
import warnings
from typing import TYPE_CHECKING

from ._install import install_hint
from .backends import Backend, asarray, backend_of, get_backend, kind_of, to_numpy
from .io import readers

if TYPE_CHECKING:
    from ._typing import Array, ArrayLike, DType, FilePath

__all__ = [
    "accuracy",
    "load_digits",
    "one_hot",
    "predict_classes",
    "read_data",
    "read_idx",
    "read_mnist",
    "read_usps",
    "train_test_split",
]


def _sklearn():
    try:
        import sklearn.datasets
        import sklearn.model_selection
    except ImportError as exc:
        raise ImportError(
            f"the bundled data sets come from scikit-learn ({exc}); "
            f"install it with: {install_hint('examples')}"
        ) from None
    return sklearn


def load_digits(
    *, test_size: float = 0.25, seed: int = 0, images: bool = False, backend: Backend | None = None
) -> tuple[Array, Array, Array, Array]:
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
    return (
        asarray(X_tr, backend=b),
        asarray(X_te, backend=b),
        asarray(y_tr, backend=b),
        asarray(y_te, backend=b),
    )


#: most classes one_hot makes (int32 labels index them all)
_MAX_CLASSES = 2**31 - 1


def one_hot(y: Array, n_classes: int, *, dtype: DType | None = None) -> Array:
    """Integer labels -> one-hot rows in the backend's float dtype (or ``dtype``).

    Shape: y ``(n,)`` -> ``(n, n_classes)``, on y's library and device.
    """
    try:
        if isinstance(n_classes, bool):
            raise TypeError
        n_classes = operator.index(n_classes)
    except TypeError:
        raise TypeError(
            f"one_hot: n_classes must be an int, got {type(n_classes).__name__}"
        ) from None
    if not 1 <= n_classes <= _MAX_CLASSES:
        raise ValueError(f"one_hot: n_classes must lie in [1, {_MAX_CLASSES}], got {n_classes}")
    try:
        kind = kind_of(y)
    except TypeError as exc:
        raise TypeError(f"one_hot: y: {exc}") from None
    xp = kind.xp
    if y.ndim != 1:
        raise ValueError(
            f"one_hot: expected integer labels of shape (n,), got shape {tuple(y.shape)}"
        )
    if y.dtype not in kind.int_dtypes:
        raise TypeError(f"one_hot: expected integer labels, got dtype {y.dtype}")
    if dtype is None:
        target = get_backend().dtype_name
    elif isinstance(dtype, str):
        target = dtype
    else:
        target = next(
            (name for name in ("float32", "float64") if dtype == getattr(xp, name)), repr(dtype)
        )
    if target not in ("float32", "float64"):
        raise ValueError(f"one_hot: dtype must be 'float32' or 'float64', got {dtype!r}")
    if y.dtype != kind.wide_int():
        y = xp.astype(y, kind.wide_int())  # arange(n_classes) in a narrow dtype would wrap
    if y.shape[0] and (int(xp.min(y)) < 0 or int(xp.max(y)) >= n_classes):
        raise ValueError(
            f"one_hot: labels must lie in [0, {n_classes}), "
            f"got [{int(xp.min(y))}, {int(xp.max(y))}]"
        )
    classes = xp.arange(n_classes, dtype=kind.wide_int(), device=kind.device_of(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # JAX warns, then narrows: refused below
        out = xp.astype(xp.expand_dims(y, axis=1) == classes, getattr(xp, target))
    if out.dtype != getattr(xp, target):
        raise ValueError(
            f"one_hot: {kind.name} gives {out.dtype} for dtype {target!r} here (JAX without "
            "jax_enable_x64: use a float64 backend or set JAX_ENABLE_X64=1)"
        )
    return out


def predict_classes(scores: Array) -> Array:
    """Index of the largest score of each row: ``(N, C)`` -> ``(N,)``."""
    return kind_of(scores).xp.argmax(scores, axis=1)


def _labels_like(labels, scores, kind):
    """``labels`` in the library and on the device of ``scores``, and their shape as given."""
    if type(labels) is not type(scores) or (kind.has_devices and labels.device != scores.device):
        try:
            host = to_numpy(labels)
            shape = tuple(host.shape)  # asarray may give a 0-d array one axis
            labels = asarray(host, backend=backend_of(scores))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"accuracy: labels: {exc}") from None
    else:
        shape = tuple(labels.shape)
    return labels, shape


def accuracy(scores: Array, labels: ArrayLike) -> float:
    """Fraction of rows whose largest score is at the label.

    Parameters
    ----------
    scores : array ``(N, C)``
        Real floating scores (or probabilities, or log-probabilities).
    labels : array or host data
        Integer labels ``(N,)`` in ``[0, C)`` (whole-number floats are
        accepted), or one-hot / probability rows ``(N, C)``; moved to the
        scores' library and device.

    Raises
    ------
    ValueError
        Shapes that do not fit (``(N, 1)`` labels, another N, no rows), labels
        outside ``[0, C)`` or not whole numbers.
    TypeError
        Scores that are not a real floating array, boolean labels.
    """
    try:
        kind = kind_of(scores)
    except TypeError as exc:
        raise TypeError(f"accuracy: scores: {exc}") from None
    xp = kind.xp
    if scores.dtype not in kind.float_dtypes:
        raise TypeError(f"accuracy: expected real floating scores, got dtype {scores.dtype}")
    if scores.ndim != 2:
        raise ValueError(f"accuracy: expected scores of shape (N, C), got {tuple(scores.shape)}")
    n, c = scores.shape
    if n == 0 or c == 0:
        raise ValueError(f"accuracy: no rows or no classes to score (scores of shape {(n, c)})")
    labels, shape = _labels_like(labels, scores, kind)
    if shape == (n, c) and c > 1:
        if labels.dtype == xp.bool:
            labels = xp.astype(labels, xp.int8)
        elif labels.dtype in kind.float_dtypes and not bool(xp.all(xp.isfinite(labels))):
            raise ValueError("accuracy: one-hot or probability rows hold NaN or infinite values")
        labels = predict_classes(labels)
    elif shape != (n,):
        raise ValueError(
            f"accuracy: expected labels of shape ({n},) or one-hot rows of shape {(n, c)} "
            f"for scores of shape {(n, c)}, got {shape}"
            + ("; flatten them with labels.reshape(-1)" if shape == (n, 1) and c > 1 else "")
            + (
                "; scores of one column (a sigmoid output?) need a threshold, not accuracy: "
                "mean((scores[:, 0] > 0.5) == labels)"
                if c == 1
                else ""
            )
        )
    elif labels.dtype == xp.bool:
        raise TypeError("accuracy: expected integer labels, got booleans")
    elif labels.dtype in kind.float_dtypes:
        whole = xp.all(labels == xp.floor(labels))  # NaN is not a whole number
        if not bool(whole):
            raise ValueError(
                "accuracy: labels must be whole numbers (class indices), got fractions or NaN"
            )
    elif labels.dtype not in kind.int_dtypes:
        raise TypeError(f"accuracy: expected integer labels, got dtype {labels.dtype}")
    if labels.dtype != kind_of(labels).wide_int():
        labels = xp.astype(labels, kind_of(labels).wide_int())
    low, high = int(xp.min(labels)), int(xp.max(labels))
    if low < 0 or high >= c:
        bad = low if low < 0 else high
        raise ValueError(f"accuracy: label {bad} is out of range for scores of {c} classes")
    pred = xp.astype(predict_classes(scores), labels.dtype)
    # an integer count, exact at any size and without float64 (JAX lacks it unless x64 is on)
    return int(xp.sum(xp.astype(pred == labels, xp.int32))) / pred.shape[0]


# --------------------------------------------------------------------------
# Reading the assignment's original data: USPS text files and MNIST's IDX files
# --------------------------------------------------------------------------


def read_usps(path: FilePath, *, backend: Backend | None = None) -> tuple[Array, Array]:
    """Read a USPS text file: an optional header, then per line a digit's label and grey values.

    The format is read from the content: gzip or not whatever the name, and a
    header line (``"7291 256"``) is recognised by its number of fields. Parsed
    by NumPy's C reader (a full 7291 x 256 file in about 0.15 s).

    Returns ``(X, y)``: ``X`` ``(n, d)`` floats rescaled linearly from the
    file's own value range to [0, 1], ``y`` int64 labels ``(n,)``. A malformed
    line, a label that is not a non-negative integer, a NaN or infinite value
    are each a ValueError naming the file and the line.
    """
    values, labels = readers.read_usps(path)
    b = backend or get_backend()
    return asarray(values, backend=b), asarray(labels, dtype="int64", backend=b)


def read_idx(path: FilePath) -> Array:
    """The array of an IDX file (MNIST's format; gzip or not), on the host.

    Any IDX element type (unsigned and signed bytes, 16- and 32-bit ints,
    32- and 64-bit floats) and rank, read with one ``frombuffer`` after the
    header was checked against the data size. Returns a NumPy array of the
    file's shape.
    """
    return readers.read_idx(path)


def read_mnist(
    images_path: FilePath, labels_path: FilePath, *, backend: Backend | None = None
) -> tuple[Array, Array]:
    """Read MNIST-style IDX images and labels.

    Returns ``X`` ``(n, rows * cols)`` scaled to [0, 1] (divided by the
    maximum for non-negative data: MNIST's bytes by 255) and ``y`` int64
    labels ``(n,)``. Labels stored as floats must be whole numbers.
    """
    X, y = readers.read_mnist(images_path, labels_path)
    b = backend or get_backend()
    return asarray(X, backend=b), asarray(y, dtype="int64", backend=b)


def read_data(*paths: FilePath, backend: Backend | None = None) -> tuple[Array, Array]:
    """``(X, y)`` from one USPS text file or from MNIST images and labels files (by content)."""
    if len(paths) == 1:
        return read_usps(paths[0], backend=backend)
    if len(paths) == 2:
        return read_mnist(paths[0], paths[1], backend=backend)
    raise ValueError(
        "read_data: expected one USPS file, or MNIST images and labels files, "
        f"got {len(paths)} paths"
    )


def train_test_split(
    X: Array, y: Array, *, test_size: float = 0.25, seed: int = 0
) -> tuple[Array, Array, Array, Array]:
    """Stratified split of backend arrays: ``X_train, X_test, y_train, y_test``.

    Each class gives the same fraction of its rows to the test set, which has
    ``ceil(test_size * n)`` rows; the rows are drawn with a NumPy generator
    seeded with ``seed``. Needs nothing beyond NumPy (not scikit-learn's
    ``train_test_split``, whose draw differs).
    """
    try:
        kind = kind_of(X)
        kind_of(y)
    except TypeError as exc:
        raise TypeError(f"train_test_split: {exc}") from None
    if X.ndim < 1 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(
            "train_test_split: expected X (n, ...) and labels y (n,), "
            f"got {tuple(X.shape)} and {tuple(y.shape)}"
        )
    try:
        train_idx, test_idx = readers.stratified_split(to_numpy(y), test_size, seed)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"train_test_split: {exc}") from None
    xp = kind.xp
    b = backend_of(X) if X.dtype in kind.float_dtypes else get_backend()
    tr = asarray(train_idx, dtype="int64", backend=b)
    te = asarray(test_idx, dtype="int64", backend=b)
    return (
        xp.take(X, tr, axis=0),
        xp.take(X, te, axis=0),
        xp.take(y, tr, axis=0),
        xp.take(y, te, axis=0),
    )
