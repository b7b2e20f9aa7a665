"""NumPy ``.npz`` archives: atomic writes, and reads that never unpickle."""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
import zlib

import numpy as np

from . import to_numpy

__all__ = ["decode_text", "load_npz", "save_npz_atomic"]


def save_npz_atomic(path, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` as an .npz archive, atomically.

    Values are arrays of any supported library (moved to the host), ints, or
    ``str`` (stored as UTF-8 bytes; read back with :func:`decode_text`).

    The archive goes to a temporary file in the same directory, is flushed
    and synced, then renamed over ``path``: an interrupted save leaves any
    previous file intact and no temporary file behind.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: _host_value(v) for k, v in arrays.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _host_value(value):
    if isinstance(value, str):
        return np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
    return to_numpy(value)


def decode_text(array) -> str:
    """The ``str`` that :func:`save_npz_atomic` stored as bytes; ValueError if it is not one."""
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 1:
        raise ValueError("expected a 1-D array of UTF-8 bytes")
    return array.tobytes().decode("utf-8")


def load_npz(path) -> dict:
    """Every array of an .npz archive, read with ``allow_pickle=False`` (loading runs no code).

    A missing file is FileNotFoundError; anything unreadable (truncated,
    corrupted, pickled objects, not an archive) is a ValueError naming the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single array, not an .npz archive")
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{path} is not a readable .npz archive ({type(exc).__name__}: {exc})") from None
