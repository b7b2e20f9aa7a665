"""Peak memory of one training step.

Two methods, named in the results next to each figure:

- ``tracemalloc`` (contenders whose arrays are NumPy's: NumPy reports its
  data buffers to :mod:`tracemalloc`): the peak of the memory allocated
  during one step (traced from its start) and alive at the same moment.
  What existed before the step (parameters, the input batch, what the
  previous step kept) is not counted; backprop's containers replace what
  they kept as the step's forward runs, so none of it is alive at the
  backward peak.
- ``rss``: the rise of the process's resident set during the step. Free
  memory is handed back to the system first (``malloc_trim``), the kernel's
  high-water mark is reset (``/proc/self/clear_refs``), and the figure is
  ``VmHWM`` after the step minus ``VmRSS`` before it. Arrays kept from one
  step to the next are not counted (they are resident before the step), nor
  is memory the library's allocator reuses from its own pools.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import tracemalloc

_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        _LIBC = ctypes.CDLL(name) if name else False
    return _LIBC


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_available() -> bool:
    """Whether the resident-set method works here (Linux with a writable ``/proc/self/clear_refs``)."""
    if _status_kib("VmHWM") is None:
        return False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_tracemalloc(step, sync=lambda *a: None) -> int:
    """Peak bytes traced during one call of ``step`` (after an untraced call: the steady state)."""
    sync(step())
    gc.collect()
    tracemalloc.start()
    try:
        sync(step())
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def peak_rss(step, sync=lambda *a: None) -> int | None:
    """Rise of the resident set during one call of ``step``, in bytes (None where unavailable)."""
    sync(step())
    gc.collect()
    libc = _libc()
    if libc:
        with contextlib.suppress(AttributeError):
            libc.malloc_trim(0)
    before = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    sync(step())
    after = _status_kib("VmHWM")
    if before is None or after is None:
        return None
    return max(0, after - before) * 1024


def peak(step, method: str, sync=lambda *a: None) -> int | None:
    if method == "tracemalloc":
        return peak_tracemalloc(step, sync)
    return peak_rss(step, sync)
