"""Reading data files on the host with NumPy: USPS text, IDX (MNIST), gzip, and a stratified split.

The format is read from the content, never from the file name: gzip by its
magic bytes (then the content inside), IDX by its magic number, anything else
as USPS text (an optional header line, then one sample per line: its label
and its values). Parsing runs at NumPy's speed (``np.loadtxt``'s C parser for
text, one ``np.frombuffer`` for IDX); the slow line-by-line scan runs only to
name the line of an error.

Every problem is a ValueError (FileNotFoundError for a missing file) naming
the file, and the line for text.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
import zlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .._typing import FilePath

__all__ = [
    "MAX_READ_BYTES",
    "detect_format",
    "existing_file",
    "file_identity",
    "open_regular",
    "parse_idx",
    "parse_usps",
    "read_file",
    "read_mnist",
    "read_usps",
    "stratified_split",
]

_GZIP_MAGIC = b"\x1f\x8b"
# IDX element types: the third byte of the magic number
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
#: labels are class numbers; a larger one is a damaged file, not a class
_MAX_CLASSES = 1 << 20


#: the most bytes a reader takes from one file, decompressed or not (larger data: a .npy file,
#: memory-mapped and read a block of rows at a time)
MAX_READ_BYTES = 1 << 30
_CHUNK = 1 << 22


def existing_file(path: FilePath, what: str = "a data file", owner: str = "") -> str:
    """``path`` as a string, once it names a regular file that exists (TypeError,
    FileNotFoundError, IsADirectoryError or ValueError otherwise, their messages starting
    with ``owner``).

    A FIFO, a device (``/dev/zero``, also through a link), a socket is refused: reading one
    would wait forever or never end.
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"{owner}expected a file path, got {type(path).__name__}") from None
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{owner}no such file: {path}") from None
    except OSError as exc:
        raise type(exc)(exc.errno, f"{owner}cannot read {path}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{owner}{path} is a directory, not {what}")
    if not stat.S_ISREG(mode):
        raise ValueError(f"{owner}{path} is {_kind(mode)}, not {what}: only regular files are read")
    return path


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: FilePath, what: str = "a data file", owner: str = "") -> io.BufferedReader:
    """``path`` opened for binary reading, once it is a regular file (see :func:`existing_file`).

    The check is made again on the open file (a FIFO put in its place in between
    is refused, never waited on: the file is opened without blocking).
    """
    path = existing_file(path, what, owner)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(
                f"{owner}{path} is {_kind(mode)}, not {what}: only regular files are read"
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_identity(f) -> tuple:
    """What tells an open file from another one or from itself changed: device, inode, size,
    modification time."""
    st = os.fstat(f.fileno())
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_file(path: FilePath, max_bytes: int = MAX_READ_BYTES) -> bytes:
    """The bytes of ``path``, decompressed when the content is gzip (whatever the name).

    A regular file only; ValueError when it, or its decompressed content, holds
    more than ``max_bytes`` (checked before reading, and while decompressing).
    """
    path = existing_file(path)
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise ValueError(_too_big(path, size, max_bytes, ""))
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(_too_big(path, len(data), max_bytes, ""))
    if data[:2] == _GZIP_MAGIC:
        data = _gunzip(data, path, max_bytes)
    return data


def _too_big(path, size, limit, how) -> str:
    return (
        f"{path}: more than {limit:,d} bytes{how} ({size:,d} at least); the readers stop there: "
        "save larger data as .npy files, which are read memory-mapped, a block of rows at a time"
    )


def _gunzip(data: bytes, path: str, max_bytes: int = MAX_READ_BYTES) -> bytes:
    """Every member of a gzip stream, at most ``max_bytes`` of it; ValueError for a damaged or
    truncated one, or one that expands beyond ``max_bytes``."""
    parts = []
    total = 0
    rest = data
    try:
        while rest:
            d = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
            pending = rest
            while True:
                out = d.decompress(pending, _CHUNK)
                total += len(out)
                if total > max_bytes:
                    raise ValueError(_too_big(path, total, max_bytes, " once decompressed"))
                parts.append(out)
                if d.eof:
                    break
                pending = d.unconsumed_tail
                if not pending and len(out) < _CHUNK:
                    raise ValueError(
                        f"{path}: truncated gzip file (the compressed stream ends early)"
                    )
            rest = d.unused_data
            if rest and rest[:2] != _GZIP_MAGIC:
                if rest.strip(b"\x00"):  # zero padding after the last member is allowed
                    raise ValueError(f"{path}: unexpected bytes after the end of the gzip stream")
                break
    except zlib.error as exc:
        raise ValueError(f"{path}: damaged gzip file ({exc})") from None
    return b"".join(parts)


def detect_format(data: bytes) -> str:
    """``"idx"`` or ``"text"`` (``"empty"`` for no bytes), from the first bytes of ``data``."""
    if not data:
        return "empty"
    if len(data) >= 4 and data[0] == 0 and data[1] == 0 and data[2] in _IDX_DTYPES and data[3] >= 1:
        return "idx"
    return "text"


def parse_idx(data: bytes, path: FilePath) -> np.ndarray:
    """An IDX file's array (any element type, any rank), read with one ``frombuffer``.

    The header is checked against the data size before anything is allocated.
    """
    if detect_format(data) != "idx":
        raise ValueError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'none'})")
    ndim = data[3]
    start = 4 + 4 * ndim
    if len(data) < start:
        raise ValueError(
            f"{path}: truncated IDX header ({ndim} dimensions announced, {len(data)} bytes)"
        )
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    count = math.prod(shape)
    expected = count * dtype.itemsize
    if len(data) - start != expected:
        raise ValueError(
            f"{path}: expected {expected} bytes of data for shape {shape} ({dtype.name}), "
            f"got {len(data) - start}"
        )
    return (
        np.frombuffer(data, dtype=dtype, count=count, offset=start)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _text(data: bytes, path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from None


def _head(data: bytes, path, count: int = 2) -> list:
    """``(line number, fields)`` of the first ``count`` non-empty lines (the file is not split)."""
    found, number, start = [], 0, 0
    while len(found) < count and start < len(data):
        stop = data.find(b"\n", start)
        stop = len(data) if stop < 0 else stop
        number += 1
        fields = _text(data[start:stop], path).split()
        if fields:
            found.append((number, fields))
        start = stop + 1
    return found


def _is_header(first: list, second: list | None, n_rest) -> bool:
    """Whether the first line is a header rather than a sample.

    A header has another number of fields than the samples (USPS: ``"7291 256"``
    before lines of 257). When the counts agree (one value per sample), it is a
    header only if it reads ``n d`` with ``n`` the number of samples after it.
    """
    if second is None:  # a single line: a header alone, or one sample
        return len(first) == 2 and all(_is_int(v) for v in first)
    if len(first) != len(second):
        return True
    # n_rest (the number of samples after the first line) is counted only here: a slow scan
    return len(first) == 2 and _is_int(first[0]) and first[1] == "1" and int(first[0]) == n_rest()


def _is_int(text: str) -> bool:
    return text.isdigit()


def parse_usps(
    data: bytes, path: FilePath, *, numeric_header: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``(values, labels)`` of a USPS text file: float64 ``(n, d)`` and int64 ``(n,)``.

    The header line is optional (detected, see :func:`_is_header`). Labels must
    be non-negative integers and values finite; a ValueError names the line.
    """
    if b"\x00" in data[:4096]:
        raise ValueError(f"{path}: neither a text file (it holds binary data) nor an IDX file")
    head = _head(data, path)
    if not head:
        raise ValueError(
            f"{path}: empty file (expected one sample per line: a label, then its values)"
        )
    first_no, first = head[0]
    second = head[1][1] if len(head) > 1 else None
    header = numeric_header and _is_header(
        first, second, lambda: sum(1 for _ in _data_lines(_text(data, path).split("\n"), first_no))
    )
    skip = first_no if header else first_no - 1
    if header and second is None:
        raise ValueError(f"{path}: no samples after the header line")
    lines = _Lines(data, path)
    try:
        table = np.loadtxt(
            io.BytesIO(data),
            dtype=np.float64,
            comments=None,
            skiprows=skip,
            ndmin=2,
            encoding="utf-8",
        )
    except ValueError:
        _raise_line_error(lines, skip, path)
        raise  # _raise_line_error always raises; kept for the reader
    if table.shape[0] == 0:
        raise ValueError(f"{path}: no samples after the header line")
    if table.shape[1] < 2:
        raise ValueError(f"{path}, line {_line_of(lines, skip, 0)}: no values after the label")
    if header and len(first) == 2 and all(_is_int(v) for v in first):
        announced = (int(first[0]), int(first[1]))
        if announced != (table.shape[0], table.shape[1] - 1):
            raise ValueError(
                f"{path}: the header line announces {announced[0]} samples of {announced[1]} "
                f"values, the file holds {table.shape[0]} of {table.shape[1] - 1} (truncated?)"
            )
    labels, values = table[:, 0], table[:, 1:]
    bad = ~(np.isfinite(labels) & (labels >= 0) & (labels == np.floor(labels)))
    if bad.any():
        row = int(np.argmax(bad))
        token = _tokens(lines, skip, row)[0]
        raise ValueError(
            f"{path}, line {_line_of(lines, skip, row)}: the label {token!r} "
            "is not a non-negative integer"
        )
    if labels.max() >= _MAX_CLASSES:
        row = int(np.argmax(labels >= _MAX_CLASSES))
        raise ValueError(
            f"{path}, line {_line_of(lines, skip, row)}: "
            f"the label {_tokens(lines, skip, row)[0]!r} is too large "
            f"(labels number the classes 0, 1, ..., at most {_MAX_CLASSES - 1})"
        )
    finite = np.isfinite(values)
    if not finite.all():
        row = int(np.argmax(~finite.all(axis=1)))
        col = int(np.argmax(~finite[row]))
        token = _tokens(lines, skip, row)[col + 1]
        what = "NaN" if np.isnan(values[row, col]) else "an infinite value"
        raise ValueError(
            f"{path}, line {_line_of(lines, skip, row)}: the data holds {what} "
            f"({token!r}, value {col + 1} of the sample)"
        )
    return values, labels.astype(np.int64)


class _Lines:
    """The file's lines, split only when an error message needs a line number."""

    def __init__(self, data: bytes, path: FilePath) -> None:
        self._data, self._path, self._lines = data, path, None

    def __getitem__(self, index):
        if self._lines is None:
            self._lines = _text(self._data, self._path).split("\n")
        return self._lines[index]

    def __len__(self) -> int:
        return len(self[:])


def _data_lines(lines, skip: int):
    """``(line number, fields)`` of each non-empty line after the first ``skip`` lines."""
    for number, line in enumerate(lines[skip:], start=skip + 1):
        fields = line.split()
        if fields:
            yield number, fields


def _line_of(lines: list, skip: int, row: int) -> int:
    for i, (number, _) in enumerate(_data_lines(lines, skip)):
        if i == row:
            return number
    return len(lines)


def _tokens(lines: list, skip: int, row: int) -> list:
    for i, (_, fields) in enumerate(_data_lines(lines, skip)):
        if i == row:
            return fields
    return []


def _raise_line_error(lines: list, skip: int, path) -> None:
    """The first malformed line, by a slow scan (only after the fast parser failed)."""
    width = None
    for number, fields in _data_lines(lines, skip):
        for token in fields:
            try:
                float(token)
            except ValueError:
                raise ValueError(
                    f"{path}, line {number}: expected a label and grey values, "
                    f"got {' '.join(fields)[:60]!r}"
                ) from None
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise ValueError(
                f"{path}, line {number}: expected {width - 1} grey values, got {len(fields) - 1}"
            )
    raise ValueError(f"{path}: cannot read the file as USPS text")


def _first_line(data: bytes) -> tuple[int, int]:
    """``(start, stop)`` of the first line that is not blank."""
    start = 0
    while True:
        stop = data.find(b"\n", start)
        stop = len(data) if stop < 0 else stop
        if data[start:stop].strip() or stop == len(data):
            return start, stop
        start = stop + 1


def _csv_as_usps(data: bytes, path) -> bytes:
    """A comma-separated file in the USPS layout (label first) as USPS text: commas become
    spaces and a first line of column names (no field a number) becomes an empty line, so that
    line numbers in errors stay the file's. An empty field is an error (it would shift the
    values after it)."""
    for empty in re.finditer(rb"(?:^|,)[ \t]*(?:,|\r?$)", data, flags=re.M):
        if b"," in empty.group():
            line = data.count(b"\n", 0, empty.start()) + 1
            raise ValueError(f"{path}, line {line}: an empty field (a missing value); fill it in")
    start, stop = _first_line(data)
    if not any(_is_float(v) for v in _text(data[start:stop], path).split(",")):
        data = data[:start] + data[stop:]  # the header's line stays, empty
    return data.replace(b",", b" ")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_usps(path: FilePath) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a USPS text file (gzip or not), values rescaled from their range to [0, 1].

    A comma-separated file in the same layout (the label first, then the values; an optional
    first line of column names) is read the same way.
    """
    data = read_file(path)
    kind = detect_format(data)
    if kind == "idx":
        raise ValueError(
            f"{path} is an IDX file (MNIST's format), which holds images or labels only: "
            "read the images and labels files together (read_mnist, or --data IMAGES LABELS)"
        )
    if data.startswith(b"\x93NUMPY"):
        raise ValueError(
            f"{path} is a NumPy .npy file: give the samples and their labels as two files "
            "(--data X.npy y.npy), each saved with numpy.save"
        )
    start, stop = _first_line(data)
    csv = b"," in data[start:stop]
    if csv:  # a CSV header is a line of names (blanked here), never numbers
        data = _csv_as_usps(data, path)
    values, labels = parse_usps(data, path, numeric_header=not csv)
    lo, hi = float(values.min()), float(values.max())
    values -= lo
    if hi > lo:
        values *= 1.0 / (hi - lo)
    return values, labels


def read_idx(path: FilePath) -> np.ndarray:
    """The array of one IDX file (gzip or not)."""
    return parse_idx(read_file(path), path)


def read_mnist(images_path: FilePath, labels_path: FilePath) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` from IDX images ``(n, ...)`` and labels ``(n,)``.

    ``X`` is float64 ``(n, values per image)``, divided by its maximum when
    the values are non-negative (MNIST's bytes: by 255), else rescaled from
    its range to [0, 1]. Labels must be non-negative integers (of any IDX
    type: 2.0 is accepted, 2.7 is refused).
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim < 2:
        raise ValueError(
            f"{images_path}: expected images of shape (n, rows, cols), got shape {images.shape}; "
            "pass the images file first, then the labels file"
        )
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected labels of shape (n,), got shape {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path}: expected {images.shape[0]} labels (one per image of "
            f"{images_path}), got {labels.shape[0]}"
        )
    X = images.reshape(images.shape[0], -1).astype(np.float64)
    finite = np.isfinite(X)
    if not finite.all():
        row = int(np.argmax(~finite.all(axis=1)))
        what = "NaN" if np.isnan(X[row]).any() else "infinite values"
        raise ValueError(f"{images_path}: the data holds {what} (image {row})")
    y = labels.astype(np.float64)
    bad = ~(np.isfinite(y) & (y >= 0) & (y == np.floor(y)) & (y < _MAX_CLASSES))
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"{labels_path}: label {float(labels[row]):g} (row {row}) is not a class number "
            f"(a non-negative integer below {_MAX_CLASSES})"
        )
    if X.size:
        lo, hi = float(X.min()), float(X.max())
        if lo < 0:
            X -= lo
            hi -= lo
        if hi > 0:
            X *= 1.0 / hi
    return X, y.astype(np.int64)


def stratified_split(
    labels: np.ndarray, test_size: float, seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)`` with each class split in the same proportion.

    ``test_size`` is a fraction in (0, 1) or a number of rows. Each class
    gives ``test_size`` of its rows to the test set, rounded so that the test
    set has exactly ``ceil(test_size * n)`` rows (largest remainders first).
    Vectorised: no loop over the rows or the classes.
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(
        test_size, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"test_size must be a fraction in (0, 1) or a number of rows, got {test_size!r}"
        )
    if isinstance(test_size, (int, np.integer)):
        n_test = int(test_size)
    elif 0 < test_size < 1:
        n_test = math.ceil(float(test_size) * n)
    else:
        raise ValueError(
            f"test_size must be a fraction in (0, 1) or a number of rows, got {test_size!r}"
        )
    if not 1 <= n_test <= n - 1:
        raise ValueError(
            f"test_size={test_size!r} leaves {n_test} of {n} rows for the test set: "
            "both sets need rows"
        )
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    exact = counts * (n_test / n)
    alloc = np.floor(exact).astype(np.int64)
    short = n_test - int(alloc.sum())
    if short > 0:  # largest remainders first, ties in a random order
        order = np.lexsort((rng.random(classes.shape[0]), -(exact - alloc)))
        alloc[order[:short]] += 1
    shuffled = rng.permutation(n)
    grouped = shuffled[
        np.argsort(inverse[shuffled], kind="stable")
    ]  # by class, random within a class
    starts = np.cumsum(counts) - counts
    cls = inverse[grouped]
    rank = np.arange(n) - starts[cls]
    is_test = rank < alloc[cls]
    return rng.permutation(grouped[~is_test]), rng.permutation(grouped[is_test])
