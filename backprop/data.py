"""Bundled data sets, one-hot encoding, accuracy."""

from __future__ import annotations

from .backends import Backend, asarray, backend_of, get_backend, kind_of, to_numpy

__all__ = ["accuracy", "load_digits", "one_hot", "predict_classes", "read_idx", "read_mnist", "read_usps", "train_test_split"]


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
    classes = xp.arange(n_classes, dtype=y.dtype, device=kind.device_of(y))
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
        labels = asarray(labels, backend=backend_of(scores))
    if labels.ndim == 2:
        labels = predict_classes(labels)
    pred = predict_classes(scores)
    return float(xp.mean(xp.astype(pred == xp.astype(labels, pred.dtype), xp.float64)))


# --------------------------------------------------------------------------
# Reading the seed's original data: USPS text files and MNIST's IDX files
# --------------------------------------------------------------------------


def _open(path):
    import gzip
    import os

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_usps(path, *, backend: Backend | None = None):
    """Read a USPS text file: a header line, then one digit per line, its label and 256 grey values.

    Returns ``(X, y)``: ``X`` ``(n, 256)`` floats rescaled linearly from the
    file's own value range to [0, 1], ``y`` integer labels. A malformed line
    is a ValueError naming the line number.
    """
    values, labels, width = [], [], None
    with _open(path) as f:
        lines = f.read().decode("utf-8", errors="replace").splitlines()
    if not lines:
        raise ValueError(f"{path}: empty file (expected a header line, then one digit per line)")
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        try:
            label = float(fields[0])
            pixels = [float(v) for v in fields[1:]]
        except ValueError:
            raise ValueError(f"{path}, line {number}: expected a label and grey values, got {line[:60]!r}") from None
        if label != int(label) or label < 0:
            raise ValueError(f"{path}, line {number}: the label {fields[0]!r} is not a non-negative integer")
        if width is None:
            width = len(pixels)
            if width == 0:
                raise ValueError(f"{path}, line {number}: no grey values after the label")
        if len(pixels) != width:
            raise ValueError(f"{path}, line {number}: expected {width} grey values, got {len(pixels)}")
        labels.append(int(label))
        values.append(pixels)
    if not values:
        raise ValueError(f"{path}: no digits after the header line")
    lo = min(min(row) for row in values)
    hi = max(max(row) for row in values)
    scale = 1.0 / (hi - lo) if hi > lo else 1.0
    b = backend or get_backend()
    X = asarray([[(v - lo) * scale for v in row] for row in values], backend=b)
    return X, asarray(labels, dtype="int64", backend=b)


_IDX_TYPES = {0x08: ("B", 1), 0x09: ("b", 1), 0x0B: (">h", 2), 0x0C: (">i", 4), 0x0D: (">f", 4), 0x0E: (">d", 8)}


def read_idx(path):
    """Read an IDX file (MNIST's format) as a host array: ``(shape, flat values)``.

    Returns the shape and an ``array.array`` (or list) of values in row-major order.
    """
    import array
    import struct

    with _open(path) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(">" + "i" * ndim, data[4 : 4 + 4 * ndim])
    fmt, size = _IDX_TYPES[code]
    count = 1
    for n in shape:
        count *= n
    body = data[4 + 4 * ndim :]
    if len(body) != count * size:
        raise ValueError(f"{path}: expected {count * size} bytes of data for shape {shape}, got {len(body)}")
    values = array.array(fmt, body) if size == 1 else list(struct.unpack(">" + fmt[-1] * count, body))
    return shape, values


def read_mnist(images_path, labels_path, *, backend: Backend | None = None):
    """Read MNIST-style IDX images and labels: ``X`` ``(n, rows * cols)`` in [0, 1], ``y`` integers."""
    shape, pixels = read_idx(images_path)
    lshape, labels = read_idx(labels_path)
    if len(shape) != 3:
        raise ValueError(f"{images_path}: expected images of shape (n, rows, cols), got {shape}")
    if lshape != (shape[0],):
        raise ValueError(f"{labels_path}: expected {shape[0]} labels, got shape {lshape}")
    b = backend or get_backend()
    xp = b.xp
    X = asarray(pixels, backend=b)  # bytes (or numbers) on the backend, one flat array
    X = xp.reshape(xp.astype(X, b.dtype), (shape[0], shape[1] * shape[2]))
    top = float(xp.max(X)) if shape[0] else 1.0
    X = X / (top if top > 0 else 1.0)
    return X, asarray(labels, dtype="int64", backend=b)


def train_test_split(X, y, *, test_size: float = 0.25, seed: int = 0):
    """Stratified split of backend arrays (scikit-learn's ``train_test_split`` on the row indices)."""
    sk = _sklearn()
    train_idx, test_idx = sk.model_selection.train_test_split(
        list(range(X.shape[0])), test_size=test_size, random_state=seed, stratify=to_numpy(y)
    )
    xp = kind_of(X).xp
    b = backend_of(X)
    tr = asarray(train_idx, dtype="int64", backend=b)
    te = asarray(test_idx, dtype="int64", backend=b)
    return xp.take(X, tr, axis=0), xp.take(X, te, axis=0), xp.take(y, tr, axis=0), xp.take(y, te, axis=0)
