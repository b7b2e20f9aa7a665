"""How many threads the BLAS and OpenMP pools run: no more than the CPUs this process may use.

BLAS libraries (OpenBLAS, MKL) and OpenMP size their pools from the
machine's CPU count. In a container limited by a cgroup CPU quota, or a
process pinned to some cores (``taskset``, a batch scheduler), that is more
threads than CPUs: the threads then wait for each other at every barrier
and a step can run several times slower than with the right count.

The count used is, in order:

1. ``BACKPROP_NUM_THREADS`` when it is set (a positive integer; anything
   else is an error naming the variable);
2. otherwise the CPUs this process may run on: its CPU affinity
   (``os.sched_getaffinity``), lowered to the cgroup CPU quota rounded up
   (cgroup v2 ``cpu.max``, cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``).

With ``BACKPROP_NUM_THREADS`` the pools are set to that count; without it a
pool is only ever lowered to the count, never raised (a smaller
``OMP_NUM_THREADS`` or ``OPENBLAS_NUM_THREADS`` stays in force). The limits
are applied through threadpoolctl when a backend library is first loaded
(NumPy's BLAS and OpenMP pools, and PyTorch's intra-op pool with
``torch.set_num_threads``). JAX sizes XLA's pool itself when it starts.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

__all__ = ["apply_limits", "cgroup_cpu_limit", "cpu_budget", "thread_count", "thread_report"]

ENV = "BACKPROP_NUM_THREADS"
_applied: dict[str, int] = {}  # library -> the count set on its pools


def cgroup_cpu_limit(
    root: str | os.PathLike = "/sys/fs/cgroup", self_cgroup: str | os.PathLike = "/proc/self/cgroup"
) -> float | None:
    """The CPU quota of this process's cgroup, in CPUs (``1.5`` = 150 ms per 100 ms), or None.

    Reads cgroup v2 (``cpu.max``) and then v1 (``cpu/cpu.cfs_quota_us``), in
    the process's own cgroup (from ``self_cgroup``) and at the root of
    ``root``; the smallest quota found wins. Unreadable or absent files mean no
    quota.
    """
    root = Path(root)
    v2_dirs, v1_dirs = [root], [root / "cpu", root / "cpu,cpuacct"]
    try:
        for line in Path(self_cgroup).read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            rel = path.lstrip("/")
            if controllers == "":
                v2_dirs.insert(0, root / rel)
            elif "cpu" in controllers.split(","):
                v1_dirs[:0] = [root / controllers / rel, root / "cpu" / rel]
    except (OSError, ValueError):
        pass
    limits = []
    for d in v2_dirs:
        text = _read(d / "cpu.max")
        if text:
            quota, _, period = text.partition(" ")
            if quota != "max":
                limits.append(_ratio(quota, period or "100000"))
    for d in v1_dirs:
        quota = _read(d / "cpu.cfs_quota_us")
        if quota and quota.lstrip("-").isdigit() and int(quota) > 0:
            limits.append(_ratio(quota, _read(d / "cpu.cfs_period_us") or "100000"))
    limits = [x for x in limits if x is not None]
    return min(limits) if limits else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cpu_budget(affinity: set | None = None, quota: float | None | str = "read") -> int:
    """The CPUs this process may use: its affinity, lowered to the cgroup quota (rounded up).

    ``affinity`` and ``quota`` default to the process's own (read from the
    system); pass them to compute the budget for other values.
    """
    if affinity is None:
        try:
            affinity = os.sched_getaffinity(0)
        except (AttributeError, OSError):  # not on Linux
            affinity = range(os.cpu_count() or 1)
    n = max(1, len(affinity))
    if quota == "read":
        quota = cgroup_cpu_limit()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return n


def thread_count(environ: dict | None = None, **budget) -> tuple[int, str]:
    """``(count, where it comes from)``: ``BACKPROP_NUM_THREADS`` if set, else :func:`cpu_budget`.

    ValueError when ``BACKPROP_NUM_THREADS`` is not a positive integer.
    """
    env = os.environ if environ is None else environ
    text = env.get(ENV)
    if text is not None and text.strip() != "":
        value = text.strip()
        if not (value.isdigit() and int(value) > 0):
            raise ValueError(
                f"{ENV} must be a positive integer (the number of BLAS and OpenMP threads), "
                f"got {text!r}"
            )
        return int(value), ENV
    return cpu_budget(**budget), "CPU affinity and cgroup quota"


def apply_limits(library: str = "numpy") -> int:
    """Apply the thread count to the pools a backend library brings (once per library).

    ``numpy``: every BLAS and OpenMP pool loaded so far (threadpoolctl);
    ``torch``: those, and PyTorch's intra-op pool. Returns the count.
    """
    if library in _applied:
        return _applied[library]
    n, source = thread_count()
    exact = source == ENV
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # an install without threadpoolctl: the pools keep their sizes
        ThreadpoolController = None
    if ThreadpoolController is not None:
        for pool in ThreadpoolController().lib_controllers:
            if exact or pool.num_threads > n:
                pool.set_num_threads(n)
    if library == "torch" and "torch" in sys.modules:
        torch = sys.modules["torch"]
        if exact or torch.get_num_threads() > n:
            torch.set_num_threads(n)
    _applied[library] = n
    return n


def thread_report() -> list[str]:
    """Lines for ``backprop info``: the count, its source, and every pool's size now."""
    try:
        n, source = thread_count()
        lines = [f"threads: {n} ({source}; set {ENV} to change)"]
    except ValueError as exc:
        return [f"threads: {exc}"]
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [*lines, "  install threadpoolctl to see and limit the BLAS and OpenMP pools"]
    for pool in threadpool_info():
        lib = pool.get("filepath", "").rsplit("/", 1)[-1]
        name = " ".join(str(x) for x in (pool.get("internal_api"), pool.get("version")) if x)
        lines.append(f"  {name}: {pool.get('num_threads')} threads ({lib})")
    if "torch" in sys.modules:
        lines.append(f"  torch intra-op: {sys.modules['torch'].get_num_threads()} threads")
    return lines
