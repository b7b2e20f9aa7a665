"""Backend layer: which array library, device and dtype the library computes with.

This package is the only place in ``backprop`` that imports NumPy, CuPy or
PyTorch. Everything else is written against the Python Array API standard and
reaches the namespace of its arrays through :func:`namespace_of` or the
:class:`Backend` record.

Selection
---------
The backend is read once from the environment and can be changed in code:

``BACKPROP_BACKEND``
    ``numpy`` (default), ``cupy``, ``torch`` or ``array_api_strict``.
``BACKPROP_DEVICE``
    e.g. ``cpu``, ``cuda``, ``cuda:1``, or ``device1`` for array_api_strict.
``BACKPROP_DTYPE``
    ``float32`` (default) or ``float64``.

:func:`set_backend` changes the process-wide choice, :func:`use_backend` is a
context manager (a :class:`contextvars.ContextVar`, so it is safe in threads
and coroutines) and :func:`get_backend` returns the record in force.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _standard

__all__ = [
    "BACKENDS",
    "DTYPES",
    "Backend",
    "BackendUnavailableError",
    "asarray",
    "available_backends",
    "backend_like",
    "bernoulli",
    "decode_text",
    "load_npz",
    "save_npz_atomic",
    "get_backend",
    "host_rng",
    "kind_of",
    "manual_seed",
    "namespace_of",
    "normal",
    "permutation",
    "set_backend",
    "to_numpy",
    "uniform",
    "use_backend",
]

BACKENDS = ("numpy", "cupy", "torch", "array_api_strict")
DTYPES = ("float32", "float64")

# the pip extra (or package) that brings each library
_INSTALL_HINT = {
    "numpy": "pip install backprop (numpy is a core dependency)",
    "cupy": "pip install 'backprop[cuda12]' or 'backprop[cuda13]' (CuPy for your CUDA version)",
    "torch": "pip install torch (see pytorch.org for the build that fits your machine)",
    "array_api_strict": "pip install 'backprop[test]' (or pip install array-api-strict)",
}


class BackendUnavailableError(RuntimeError):
    """The requested array library is not installed or has no usable device."""


# --------------------------------------------------------------------------
# Array kinds: what the library knows about each array type it meets
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrayKind:
    """Facts about one array library, cached by array type.

    ``xp`` is its Array API namespace, ``ops`` the module with the native (or
    standard) primitives, ``float_dtypes`` the real floating dtypes it has.
    """

    name: str
    xp: Any
    ops: Any
    array_type: type
    float_dtypes: tuple
    int_dtypes: tuple
    has_devices: bool

    def device(self, x):
        return x.device if self.has_devices else "cpu"


_KINDS: dict[str, ArrayKind] = {}
_KIND_BY_TYPE: dict[type, ArrayKind] = {}


def _load_kind(name: str) -> ArrayKind:
    """Import the library ``name`` and describe it (cached)."""
    kind = _KINDS.get(name)
    if kind is not None:
        return kind
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid names are: {', '.join(BACKENDS)}")
    try:
        if name == "numpy":
            from . import _numpy as ops

            xp = ops.namespace

            array_type, has_devices = np.ndarray, False
        elif name == "torch":
            import array_api_compat.torch as xp
            import torch

            from . import _torch as ops

            array_type, has_devices = torch.Tensor, True
        elif name == "cupy":
            import array_api_compat.cupy as xp
            import cupy

            from . import _cupy as ops

            array_type, has_devices = cupy.ndarray, True
        else:
            import array_api_strict as xp

            ops = _standard
            array_type, has_devices = type(xp.asarray(0.0)), True
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {name!r} is not installed ({exc}); install it with: {_INSTALL_HINT[name]}"
        ) from exc
    kind = ArrayKind(
        name=name,
        xp=xp,
        ops=ops,
        array_type=array_type,
        float_dtypes=(xp.float32, xp.float64),
        int_dtypes=tuple(getattr(xp, n) for n in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")),
        has_devices=has_devices,
    )
    _KINDS[name] = kind
    _KIND_BY_TYPE[array_type] = kind
    return kind


def _kind_name_for_type(t: type) -> str | None:
    root = t.__module__.partition(".")[0]
    return {"numpy": "numpy", "torch": "torch", "cupy": "cupy", "array_api_strict": "array_api_strict"}.get(root)


def kind_of(x) -> ArrayKind:
    """The :class:`ArrayKind` of an array; TypeError for anything that is not a supported array."""
    t = type(x)
    kind = _KIND_BY_TYPE.get(t)
    if kind is not None:
        return kind
    name = _kind_name_for_type(t)
    if name is not None:
        kind = _load_kind(name)
        if isinstance(x, kind.array_type):
            _KIND_BY_TYPE[t] = kind
            return kind
    raise TypeError(
        f"expected an array (numpy, cupy, torch or array_api_strict), got {t.__name__}; convert it with backprop.asarray(x)"
    )


def namespace_of(x):
    """The Array API namespace of ``x`` (cached by type, so cheap on a hot path)."""
    return kind_of(x).xp


# --------------------------------------------------------------------------
# The Backend record and its selection
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """The array library, device and dtype that new parameters and data use.

    Attributes
    ----------
    name : str
        One of :data:`BACKENDS`.
    xp : module
        The Array API namespace (through ``array-api-compat`` for NumPy, CuPy
        and PyTorch).
    device : object
        The library's device object (``"cpu"`` for NumPy).
    dtype : object
        ``xp.float32`` or ``xp.float64``.
    dtype_name : str
        ``"float32"`` or ``"float64"``.
    """

    name: str
    xp: Any = field(repr=False)
    device: Any
    dtype: Any = field(repr=False)
    dtype_name: str
    kind: ArrayKind = field(repr=False, compare=False)

    @property
    def ops(self):
        """The native primitives (windows, overlap_add) of this library."""
        return self.kind.ops

    def synchronize(self) -> None:
        """Wait for the device to finish queued work (a no-op on CPU libraries)."""
        if self.name == "cupy":
            import cupy

            with self.device:
                cupy.cuda.get_current_stream().synchronize()
        elif self.name == "torch" and self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    def __reduce__(self):
        # pickled by description: the namespace and library modules are not picklable
        return _make_backend, (self.name, _device_label(self.device), self.dtype_name)

    def describe(self) -> str:
        """A short label such as ``numpy:cpu/float32``."""
        return f"{self.name}:{_device_label(self.device)}/{self.dtype_name}"


def _device_label(device) -> str:
    if hasattr(device, "id") and type(device).__module__.startswith("cupy"):
        return f"cuda:{device.id}"
    return str(device).replace("array_api_strict.Device(", "").rstrip(")").strip("'")


def _resolve_device(name: str, device):
    """Turn a user's device spec into the library's device object, or raise."""
    if name == "numpy":
        if device not in (None, "cpu"):
            raise ValueError(f"backend 'numpy' runs on the CPU only; got device {device!r}")
        return "cpu"
    if name == "torch":
        import torch

        dev = torch.device(device) if device is not None else torch.device("cpu")
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise BackendUnavailableError(
                    "backend 'torch' was asked for a CUDA device but torch.cuda.is_available() is False "
                    "(no GPU, no driver, or a CPU-only build of PyTorch)"
                )
            index = torch.cuda.current_device() if dev.index is None else dev.index
            if index >= torch.cuda.device_count():
                raise BackendUnavailableError(
                    f"backend 'torch': device cuda:{index} does not exist ({torch.cuda.device_count()} CUDA device(s) visible)"
                )
            dev = torch.device("cuda", index)
        return dev
    if name == "cupy":
        import cupy

        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError without a driver or a GPU
            raise BackendUnavailableError(
                f"backend 'cupy' is installed but no CUDA device is usable here ({type(exc).__name__}: {exc})"
            ) from None
        if count == 0:
            raise BackendUnavailableError("backend 'cupy' is installed but no CUDA device is visible")
        if device is None:
            index = 0
        elif isinstance(device, int):
            index = device
        elif isinstance(device, str) and device.partition(":")[0] in ("cuda", "gpu"):
            index = int(device.partition(":")[2] or 0)
        elif isinstance(device, str) and device.isdigit():
            index = int(device)
        elif isinstance(device, cupy.cuda.Device):
            index = device.id
        else:
            raise ValueError(f"backend 'cupy': cannot read device {device!r}; use e.g. 'cuda:0'")
        if not 0 <= index < count:
            raise BackendUnavailableError(f"backend 'cupy': device cuda:{index} does not exist ({count} visible)")
        return cupy.cuda.Device(index)
    # array_api_strict
    import array_api_strict

    if device is None:
        return array_api_strict.Device("CPU_DEVICE")
    if isinstance(device, array_api_strict.Device):
        return device
    try:
        return array_api_strict.Device(str(device))
    except ValueError:
        raise ValueError(
            f"backend 'array_api_strict': unknown device {device!r}; use 'CPU_DEVICE', 'device1' or 'device2'"
        ) from None


def _make_backend(name: str, device=None, dtype=None) -> Backend:
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid names are: {', '.join(BACKENDS)}")
    if dtype is None:
        dtype = "float32"
    dtype_name = dtype if isinstance(dtype, str) else _dtype_name(dtype)
    if dtype_name not in DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}; valid dtypes are: {', '.join(DTYPES)}")
    kind = _load_kind(name)
    dev = _resolve_device(name, device)
    return Backend(
        name=name,
        xp=kind.xp,
        device=dev,
        dtype=getattr(kind.xp, dtype_name),
        dtype_name=dtype_name,
        kind=kind,
    )


def _dtype_name(dtype) -> str:
    text = str(dtype)
    for name in DTYPES:
        if text.endswith(name):
            return name
    return text


_global_backend: Backend | None = None
_context_backend: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("backprop_backend", default=None)


def _from_environment() -> Backend:
    name = os.environ.get("BACKPROP_BACKEND", "numpy").strip() or "numpy"
    device = os.environ.get("BACKPROP_DEVICE", "").strip() or None
    dtype = os.environ.get("BACKPROP_DTYPE", "").strip() or None
    try:
        return _make_backend(name, device, dtype)
    except ValueError as exc:
        raise ValueError(f"{exc} (read from the environment variables BACKPROP_*)") from None


def get_backend() -> Backend:
    """The :class:`Backend` in force: the innermost :func:`use_backend`, else the process-wide one."""
    backend = _context_backend.get()
    if backend is not None:
        return backend
    global _global_backend
    if _global_backend is None:
        _global_backend = _from_environment()
    return _global_backend


def _build(name=None, device=None, dtype=None) -> Backend:
    """A backend from explicit fields; ``dtype`` left out keeps the current one."""
    if isinstance(name, Backend):
        return name
    current = get_backend() if (name is None or dtype is None) else None
    if name is None:
        name = current.name
        if device is None:
            device = current.device
    if dtype is None:
        dtype = current.dtype_name
    return _make_backend(name, device, dtype)


def set_backend(name: str, device=None, dtype=None) -> Backend:
    """Choose the process-wide backend; returns the new :class:`Backend`.

    Parameters
    ----------
    name : {'numpy', 'cupy', 'torch', 'array_api_strict'}
    device : str or device object, optional
        Library default when omitted (CPU, or CUDA device 0 for CuPy).
    dtype : {'float32', 'float64'}, optional
        The dtype in force is kept when omitted.
    """
    global _global_backend
    backend = _build(name, device, dtype)
    _global_backend = backend
    _context_backend.set(None)
    return backend


@contextlib.contextmanager
def use_backend(name: str | None = None, device=None, dtype=None):
    """Context manager: compute with another backend (or dtype) inside the block.

    >>> with use_backend("numpy", dtype="float64"):
    ...     layer = Linear(3, 2)        # float64 NumPy parameters
    """
    backend = _build(name, device, dtype)
    token = _context_backend.set(backend)
    try:
        yield backend
    finally:
        _context_backend.reset(token)


_LIKE: dict[tuple, Backend] = {}


def backend_like(x) -> Backend:
    """The :class:`Backend` of an existing floating array: its library, device and dtype.

    Cached by (library, device, dtype): Dropout asks for it on every batch,
    and resolving a device can query the driver.
    """
    kind = kind_of(x)
    device = kind.device(x)
    key = (kind.name, str(device), str(x.dtype))
    backend = _LIKE.get(key)
    if backend is None:
        backend = _LIKE[key] = _make_backend(kind.name, device, _dtype_name(x.dtype))
    return backend


def available_backends() -> dict[str, str | None]:
    """Map each backend name to ``None`` if usable here, else the reason it is not."""
    result = {}
    for name in BACKENDS:
        try:
            _make_backend(name)  # the library's default device (the CPU for torch)
            result[name] = None
        except (BackendUnavailableError, ValueError) as exc:
            result[name] = str(exc)
    return result


# --------------------------------------------------------------------------
# Moving data
# --------------------------------------------------------------------------


def to_numpy(x):
    """Any supported array (or nested list, or scalar) as a NumPy array on the host."""
    if isinstance(x, np.ndarray):
        return x
    name = _kind_name_for_type(type(x))
    if name == "torch":
        return x.detach().cpu().resolve_conj().numpy()
    if name == "cupy":
        import cupy

        return cupy.asnumpy(x)
    if name == "array_api_strict":
        import array_api_strict

        return np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))
    return np.asarray(x)


def _is_floating_host(a: np.ndarray) -> bool:
    return a.dtype.kind == "f"


def asarray(x, *, dtype=None, backend: Backend | None = None):
    """Put ``x`` on the current backend, device and dtype.

    Floating data takes the backend's dtype (or ``dtype``); integer and boolean
    data (labels, masks) keep their kind. ``x`` may be host data (lists, NumPy
    arrays) or an array of any supported library, on any device.
    """
    b = backend or get_backend()
    t = type(x)
    kind = _KIND_BY_TYPE.get(t)
    if t is np.ndarray and x.dtype.kind not in "fiub":
        raise TypeError(f"backprop.asarray: cannot convert data of dtype {x.dtype} (expected numbers)")
    if kind is b.kind:
        target = _target_dtype(b, x.dtype, dtype, kind)
        if kind.has_devices and x.device != b.device:
            x = _same_library_to_device(b, x)
        if target is not None and x.dtype != target:
            x = b.xp.astype(x, target)
        return x
    host = to_numpy(x)
    if host.dtype.kind not in "fiub":
        raise TypeError(f"backprop.asarray: cannot convert data of dtype {host.dtype} (expected numbers)")
    if dtype is not None:
        host = host.astype(dtype if isinstance(dtype, str) else _dtype_name(dtype), copy=False)
    elif _is_floating_host(host):
        host = host.astype(b.dtype_name, copy=False)
    return b.xp.asarray(np.ascontiguousarray(host), device=b.device)


def _target_dtype(b: Backend, current, requested, kind: ArrayKind):
    if requested is not None:
        return getattr(b.xp, requested) if isinstance(requested, str) else requested
    if current in kind.float_dtypes:
        return b.dtype
    return None


def _same_library_to_device(b: Backend, x):
    if b.name == "torch":
        return x.to(b.device)
    if b.name == "cupy":
        import cupy

        with b.device:
            return cupy.asarray(x)
    return x.to_device(b.device)


# --------------------------------------------------------------------------
# Random numbers: drawn on the host, so the same seed gives the same values on
# every backend (the standard has no random module).
# --------------------------------------------------------------------------

_host_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Reseed the library's host generator (weights, shuffles, noise, dropout masks)."""
    global _host_generator
    _host_generator = np.random.default_rng(seed)


def host_rng(rng=None):
    """A NumPy ``Generator``: the library's own when ``rng`` is None, a new one from an int seed, or ``rng`` itself."""
    if rng is None:
        return _host_generator
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be None, an int seed or a numpy Generator, got {type(rng).__name__}")


def uniform(low: float, high: float, shape, *, rng=None, backend: Backend | None = None):
    """U(low, high) samples of ``shape`` on the backend (drawn in float64 on the host)."""
    values = host_rng(rng).uniform(low, high, size=shape)
    return asarray(values, backend=backend)


def normal(shape, std: float = 1.0, *, rng=None, backend: Backend | None = None):
    """N(0, std^2) samples of ``shape`` on the backend."""
    values = host_rng(rng).normal(0.0, std, size=shape)
    return asarray(values, backend=backend)


def bernoulli(p_one: float, shape, *, rng=None, backend: Backend | None = None):
    """Float array of ``shape`` with ones drawn with probability ``p_one`` and zeros elsewhere."""
    values = (host_rng(rng).random(size=shape) < p_one).astype(np.float64)
    return asarray(values, backend=backend)


def permutation(n: int, *, rng=None, backend: Backend | None = None):
    """A random permutation of ``range(n)`` as an integer array on the backend."""
    return asarray(host_rng(rng).permutation(n), backend=backend)


# --------------------------------------------------------------------------
# Files: NumPy .npz archives, never pickles
# --------------------------------------------------------------------------


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
