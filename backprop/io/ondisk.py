"""Arrays on disk, read on the host a block of rows at a time: memory-mapped ``.npy`` files.

:func:`open_npy` maps a ``.npy`` file read-only (its header gives the shape
and dtype; no data is read). :func:`read_rows` copies rows ``[start, stop)``
of such a file into a fresh host array with one positioned read, not through
the mapping: the pages a mapping touches stay counted in the process's
resident memory until the kernel needs them back, so reading a 1 GB file
through its mapping would show 1 GB resident at the end of an epoch, while
reads at an offset leave only the returned block (the file stays in the
page cache, which the system reclaims freely).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .readers import existing_file, file_identity, open_regular

if TYPE_CHECKING:
    from .._typing import FilePath

__all__ = ["host_aligned", "host_arange", "is_memmap", "open_npy", "read_rows", "save_npy"]

_NPY_MAGIC = b"\x93NUMPY"
_NUMERIC_KINDS = "biuf"


def open_npy(path: FilePath) -> np.memmap:
    """The ``.npy`` file at ``path`` mapped read-only (nothing is read but the header).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a ``.npy`` file (read from its first bytes, not its name), or an
        array of objects or records, or a 0-d array.
    """
    shown = existing_file(path, "a .npy file", owner="open_npy: ")
    with open_regular(shown, "a .npy file", owner="open_npy: ") as f:
        magic = f.read(len(_NPY_MAGIC))
        identity = file_identity(f)
    if magic != _NPY_MAGIC:
        raise ValueError(f"open_npy: {shown} is not a .npy file (write one with numpy.save)")
    try:
        array = np.load(shown, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:  # object arrays, damaged headers
        raise ValueError(f"open_npy: {shown} cannot be memory-mapped ({exc})") from None
    if array.dtype.kind not in _NUMERIC_KINDS or array.dtype.fields is not None:
        raise ValueError(f"open_npy: {shown} holds {array.dtype} values; expected numbers")
    if array.ndim < 1:
        raise ValueError(f"open_npy: {shown} holds a 0-d array; expected rows")
    with open_regular(shown, "a .npy file", owner="open_npy: ") as f:
        if file_identity(f) != identity:
            raise ValueError(f"open_npy: {shown} changed while it was being opened")
        array._file_identity = (identity, f.read(int(array.offset)))
    return array


def is_memmap(x: object) -> bool:
    """Whether ``x`` is a NumPy memory map whose rows :func:`read_rows` reads from its file."""
    return isinstance(x, np.memmap) and _file_layout(x) is not None


def _file_layout(x):
    """``(filename, offset of row 0, bytes per row)`` of a C-ordered map of a file, or None."""
    filename = getattr(x, "filename", None)
    if filename is None or not x.flags.c_contiguous or x.ndim < 1:
        return None
    # a slice of a map shares the parent's `offset`: accept only the map of the file itself
    mm = getattr(x, "_mmap", None)
    if mm is None or x.base is not mm:
        return None
    row = int(np.prod(x.shape[1:], dtype=np.int64)) * x.dtype.itemsize
    return filename, int(x.offset), row


def read_rows(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``[start, stop)`` of ``x`` as a fresh host array that nothing else holds.

    A memory map of a whole C-ordered file is read with one positioned read
    (``numpy.fromfile`` at the rows' offset), which leaves no page mapped; any
    other array is sliced and copied.
    """
    layout = _file_layout(x) if isinstance(x, np.memmap) else None
    if layout is None:
        block = np.array(x[start:stop], copy=True)
        return block.astype(block.dtype.newbyteorder("=")) if not block.dtype.isnative else block
    filename, offset, row = layout
    count = (stop - start) * (row // x.dtype.itemsize)
    with open_regular(filename, "a .npy file", owner="read_rows: ") as f:
        # the file read now must be the one whose header gave x its shape and dtype: one
        # replaced or rewritten since (between epochs) would be read with the old header
        identity = (file_identity(f), f.read(offset))
        expected = getattr(x, "_file_identity", None)
        if expected is None:
            x._file_identity = expected = identity
        if identity != expected:
            raise ValueError(
                f"read_rows: {filename} changed since it was opened (another size, modification "
                "time or header): open it again to read the new content"
            )
        f.seek(offset + start * row)
        block = np.fromfile(f, dtype=x.dtype, count=count)
    if block.size != count:
        raise ValueError(
            f"read_rows: {filename} ends before row {stop} (shorter than its header says)"
        )
    if not block.dtype.isnative:  # a big-endian file: the libraries take native numbers
        block = block.astype(block.dtype.newbyteorder("="))
    return block.reshape((stop - start, *x.shape[1:]))


def host_aligned(x: Any) -> Any:
    """``x``, or a contiguous copy of it made once when it is a NumPy array that is not aligned
    in memory or not C-contiguous (an array unpickled from a message buffer may be either;
    ``numpy.take`` would copy such an array whole at every call)."""
    if isinstance(x, np.ndarray) and not (x.flags.aligned and x.flags.c_contiguous):
        return np.array(x, order="C", copy=True)
    return x


def host_arange(start: int, stop: int) -> np.ndarray:
    """``[start, stop)`` as a host int64 array (row numbers)."""
    return np.arange(start, stop, dtype=np.int64)


def save_npy(path: FilePath, array: Any) -> None:
    """Write a host array (or anything :func:`numpy.asarray` takes) to ``path`` as ``.npy``."""
    np.save(os.fspath(path), np.asarray(array), allow_pickle=False)
