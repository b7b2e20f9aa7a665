"""NumPy ``.npz`` archives, read safely and written atomically.

Reading never runs code (no pickles) and never trusts a size it has not
checked: the zip directory, each entry's declared sizes and each array's
``.npy`` header are checked against limits, against each other and against
the size of the file before any array is allocated or any entry decompressed.
An entry nobody asks for is never decompressed. Every problem with a file is
a ValueError that names it (FileNotFoundError for a missing file, another
OSError when the system refuses to read it).

Writing goes to a temporary file in the target directory, flushed and synced,
then renamed over the target: an interrupted save leaves any previous file
intact and nothing behind. The new file follows the umask like any other
(mode 0666 minus the umask); an existing file keeps its mode.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import struct
import zipfile
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from .readers import existing_file, open_regular

if TYPE_CHECKING:
    from .._typing import FilePath

__all__ = ["MAX_ENTRIES", "NpzArchive", "decode_text", "load_npz", "save_npz_atomic"]

#: most entries an archive may hold (a network has two per parameterised layer)
MAX_ENTRIES = 65536
# deflate cannot expand more than about 1032:1; the constant term covers tiny streams
_DEFLATE_RATIO, _DEFLATE_SLACK = 1100, 1 << 12
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_MAX_NPY_HEADER = 1 << 16
_CHUNK = 1 << 22
# element kinds an array in a file may have: booleans and numbers, never objects or records
_NUMERIC_KINDS = "biuf"


class NpzArchive:
    """A read-only ``.npz`` archive: names and ``.npy`` headers first, arrays on demand.

    >>> with NpzArchive("model.npz") as archive:
    ...     shape, dtype = archive.header("param/0.weight")
    ...     weight = archive.read("param/0.weight")

    Opening checks the zip structure (entry count, duplicated names,
    compression methods, declared sizes against the file size); :meth:`header`
    reads and checks one array's ``.npy`` header without reading its data;
    :meth:`read` allocates the array only once the header agrees with the zip
    entry (and with ``shape``/``max_bytes`` when given).
    """

    def __init__(self, path: FilePath) -> None:
        self.path = existing_file(path, "an .npz file")
        self._file = open_regular(self.path, "an .npz file")  # closed by close()
        self._zip = None
        self._headers: dict = {}
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ opening

    def _bad(self, reason: str) -> ValueError:
        return ValueError(f"{self.path} is not a readable .npz archive ({reason})")

    def _open(self) -> None:
        f = self._file
        self.size = os.fstat(f.fileno()).st_size
        start = f.read(8)
        if start[:4] not in _ZIP_MAGICS:
            raise self._bad(_describe_content(start, f))
        count = _zip_entry_count(f, self.size)
        if count is None:
            raise self._bad("no zip directory at its end: truncated or damaged")
        if count > MAX_ENTRIES:
            raise self._bad(
                f"its directory announces {count} entries, more than the {MAX_ENTRIES} allowed"
            )
        f.seek(0)
        try:
            self._zip = zipfile.ZipFile(f)
            infos = self._zip.infolist()
        except _ZIP_ERRORS as exc:
            raise self._bad(f"{type(exc).__name__}: {exc}") from None
        entries = {}
        for info in infos:
            name = info.filename
            if name[:-4] in entries and name.endswith(".npy"):
                raise self._bad(f"the entry {name!r} appears twice")
            if not name.endswith(".npy"):
                raise self._bad(f"the entry {name!r} is not an .npy array")
            if info.flag_bits & 0x1:
                raise self._bad(f"the entry {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self._bad(f"the entry {name!r} uses compression method {info.compress_type}")
            limit = info.compress_size * (
                1 if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_RATIO
            )
            if info.compress_type == zipfile.ZIP_DEFLATED:
                limit += _DEFLATE_SLACK
            if info.file_size > limit or info.header_offset + info.compress_size > self.size:
                raise self._bad(
                    f"the entry {name!r} declares {info.file_size} bytes from {info.compress_size} "
                    f"stored in a file of {self.size}: its sizes are false"
                )
            entries[name[:-4]] = info
        self._entries = entries

    # ------------------------------------------------------------ reading

    @property
    def names(self) -> list:
        """The array names, in the archive's order."""
        return list(self._entries)

    def __contains__(self, name) -> bool:
        return name in self._entries

    def _info(self, name):
        info = self._entries.get(name)
        if info is None:
            raise ValueError(f"{self.path}: no array named {name!r} in the archive")
        return info

    def header(self, name: str) -> tuple[tuple, np.dtype]:
        """``(shape, dtype)`` of an array, from its ``.npy`` header (its data is not read)."""
        return self._header(name)[:2]

    def nbytes(self, name: str) -> int:
        """The size in bytes of an array's data, as its (checked) header declares it."""
        shape, dtype, _, _ = self._header(name)
        return math.prod(shape) * dtype.itemsize

    def _header(self, name):
        cached = self._headers.get(name)
        if cached is not None:
            return cached
        info = self._info(name)
        try:
            with self._zip.open(info) as f:
                major, _ = np.lib.format.read_magic(f)
                if major == 1:
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                        f, max_header_size=_MAX_NPY_HEADER
                    )
                elif major in (2, 3):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                        f, max_header_size=_MAX_NPY_HEADER
                    )
                else:
                    raise ValueError(f"unknown .npy format version {major}")
                offset = f.tell()
        except _ZIP_ERRORS as exc:
            raise self._bad(f"the header of {name!r}: {type(exc).__name__}: {exc}") from None
        if (
            dtype.hasobject
            or dtype.kind not in _NUMERIC_KINDS
            or dtype.fields is not None
            or dtype.subdtype
        ):
            raise self._bad(
                f"the entry {name!r} holds {dtype} values; "
                "only numbers are read (never Python objects)"
            )
        if any(not isinstance(d, int) or d < 0 for d in shape):
            raise self._bad(f"the entry {name!r} declares the shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise self._bad(
                f"the entry {name!r} declares an array of shape {shape} ({dtype}, {nbytes} bytes) "
                f"but holds {info.file_size - offset} bytes of data"
            )
        self._headers[name] = cached = (tuple(shape), dtype, fortran, offset)
        return cached

    def read(
        self, name: str, *, shape: tuple[int, ...] | None = None, max_bytes: int | None = None
    ) -> np.ndarray:
        """One array, read and checked (CRC included) into a fresh NumPy array.

        ``shape`` or ``max_bytes``, when given, are checked against the header
        before anything is allocated.
        """
        declared, dtype, fortran, offset = self._header(name)
        if shape is not None and tuple(shape) != declared:
            raise ValueError(f"{self.path}: {name!r} has shape {declared}, expected {tuple(shape)}")
        nbytes = math.prod(declared) * dtype.itemsize
        if max_bytes is not None and nbytes > max_bytes:
            raise ValueError(
                f"{self.path}: {name!r} holds {nbytes} bytes, more than the {max_bytes} expected"
            )
        out = np.empty(math.prod(declared), dtype=dtype)
        view = memoryview(out.view(np.uint8)) if nbytes else memoryview(b"")
        try:
            with self._zip.open(self._info(name)) as f:
                f.read(offset)  # the header, already checked
                done = 0
                while done < nbytes:
                    got = f.readinto(view[done : done + _CHUNK])
                    if not got:
                        raise EOFError(f"the data of {name!r} ends after {done} of {nbytes} bytes")
                    done += got
                if f.read(1):
                    raise ValueError(f"{name!r} holds more data than its header declares")
        except _ZIP_ERRORS as exc:
            raise self._bad(f"{name!r}: {type(exc).__name__}: {exc}") from None
        if fortran and len(declared) > 1:
            return out.reshape(declared[::-1]).T
        return out.reshape(declared)

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# every exception a damaged zip stream or .npy header can raise from the
# standard library and NumPy (FileNotFoundError cannot happen once open)
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    OverflowError,
    SyntaxError,  # a .npy header is a Python literal, parsed safely by NumPy
    TypeError,
    KeyError,
    IndexError,
    MemoryError,
    RecursionError,
    OSError,
)


def _describe_content(start: bytes, f) -> str:
    """Why a file that does not start like a zip is not an .npz archive."""
    if start.startswith(_NPY_MAGIC):
        return "it holds a single .npy array (numpy.save); save networks with backprop.save"
    if start.startswith(b"\x80") or start[:2] in (b"\x1f\x8b", b"BZ"):
        return "it is not a zip archive: pickled or compressed data, which is never loaded"
    if not start:
        return "the file is empty"
    f.seek(0)
    sample = f.read(1024)
    try:
        sample.decode("utf-8")
        return "it is a text file, not a zip archive"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 4:  # a character cut by the sample's end
            return "it is a text file, not a zip archive"
    return "it does not start like a zip archive"


def _zip_entry_count(f, size: int) -> int | None:
    """The entry count of the end-of-central-directory record (Zip64 aware).

    Read before zipfile reads the directory: it builds a Python object per
    entry, so a crafted directory of millions of entries would take
    gigabytes before any check could run.
    """
    tail = min(size, 22 + 65535 + 20)  # record, longest comment, Zip64 locator
    f.seek(size - tail)
    data = f.read(tail)
    at = data.rfind(b"PK\x05\x06")
    if at < 0 or len(data) - at < 22:
        return None
    count = struct.unpack("<H", data[at + 10 : at + 12])[0]
    if count == 0xFFFF and at >= 20 and data[at - 20 : at - 16] == b"PK\x06\x07":
        (offset,) = struct.unpack("<Q", data[at - 12 : at - 4])
        if offset + 56 > size:
            return None
        f.seek(offset)
        record = f.read(56)
        if record[:4] != b"PK\x06\x06":
            return None
        (count,) = struct.unpack("<Q", record[32:40])
    return count


def load_npz(path: FilePath, names: Iterable[str] | None = None) -> dict:
    """Arrays of an .npz archive as NumPy arrays: every one, or those in ``names``.

    Loading runs no code (no pickles). See :class:`NpzArchive` for what is
    checked; entries not asked for are never decompressed.
    """
    with NpzArchive(path) as archive:
        wanted = archive.names if names is None else list(names)
        return {name: archive.read(name) for name in wanted}


def decode_text(array: np.ndarray) -> str:
    """The ``str`` that :func:`save_npz_atomic` stored as bytes; ValueError if it is not one."""
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 1:
        shown = (
            f"{array.dtype} array of shape {array.shape}"
            if isinstance(array, np.ndarray)
            else type(array).__name__
        )
        raise ValueError(f"expected a 1-D array of UTF-8 bytes, got a {shown}")
    try:
        return array.tobytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the bytes are not UTF-8 text (byte {exc.start})") from None


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def save_npz_atomic(path: FilePath, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` as an .npz archive, atomically.

    Values are arrays of any supported library (moved to the host), numbers,
    or ``str`` (stored as UTF-8 bytes; read back with :func:`decode_text`).

    Raises FileNotFoundError (missing directory), IsADirectoryError,
    PermissionError or another OSError naming ``path``; an interrupted write
    leaves any previous file at ``path`` intact and no temporary file.
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"expected a file path, got {type(path).__name__}") from None
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: the directory {directory} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    host = {str(k): _host_value(v) for k, v in arrays.items()}
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = None  # a new file: the umask decides, through os.open's 0o666
    except OSError as exc:
        raise _with_path(exc, path) from None
    fd, tmp = _create_temporary(path, directory)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                _chmod(f.fileno(), tmp, mode)
            np.savez(f, **host)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _with_path(exc, path) from None
        raise
    _sync_directory(directory)


def _create_temporary(path: str, directory: str):
    """An exclusive new file next to ``path``, created with mode 0666 so that the umask applies."""
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_EXCL
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0)
    )
    base = _short_name(os.path.basename(path), directory)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise _with_path(exc, path, f"cannot create a file in {directory}") from None
    raise FileExistsError(f"cannot write {path}: no free temporary name in {directory}")


def _short_name(base: str, directory: str) -> str:
    """``base`` cut so that the temporary name (``.base.<12 hex>.tmp``, 18 more bytes) stays
    within the file system's limit: a legal 250-character target must not fail through it."""
    try:
        limit = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    room = max(1, min(limit, 255) - 18)
    encoded = os.fsencode(base)
    if len(encoded) <= room:
        return base
    return os.fsdecode(encoded[:room].decode("utf-8", "ignore").encode("utf-8"))


def _chmod(fd: int, tmp: str, mode: int) -> None:
    with contextlib.suppress(OSError, NotImplementedError, AttributeError):
        if os.chmod in os.supports_fd:
            os.chmod(fd, mode)
        else:
            os.chmod(tmp, mode)


def _sync_directory(directory: str) -> None:
    """Make the rename durable (where the system can sync a directory)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _with_path(exc: OSError, path: str, what: str | None = None) -> OSError:
    """``exc`` again, its message naming the user's ``path`` (not a temporary file)."""
    reason = exc.strerror or str(exc)
    message = f"cannot write {path}: " + (f"{what}: {reason}" if what else reason)
    new = type(exc)(exc.errno, message) if exc.errno is not None else type(exc)(message)
    return new


def _host_value(value):
    if isinstance(value, str):
        return np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
    if isinstance(value, (np.ndarray, int, float, np.number)) and not isinstance(value, bool):
        return np.asarray(value)
    from ..backends import to_numpy  # every supported library

    return to_numpy(value)
