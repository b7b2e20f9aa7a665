"""Thread counts: the CPU affinity, the cgroup quota, BACKPROP_NUM_THREADS, and their errors."""

import os
import subprocess
import sys

import pytest

from backprop.backends import threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cgroup(tmp_path, files, self_cgroup="0::/\n"):
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc = tmp_path / "self_cgroup"
    proc.write_text(self_cgroup)
    return root, proc


def test_cgroup_v2_quota(tmp_path):
    root, proc = _cgroup(tmp_path, {"cpu.max": "150000 100000\n"})
    assert threads.cgroup_cpu_limit(root, proc) == 1.5
    assert threads.cpu_budget(affinity={0, 1, 2, 3}, quota=1.5) == 2  # rounded up
    root, proc = _cgroup(tmp_path / "b", {"cpu.max": "max 100000\n"})
    assert threads.cgroup_cpu_limit(root, proc) is None  # no quota


def test_cgroup_v2_quota_of_the_process_own_group(tmp_path):
    root, proc = _cgroup(
        tmp_path,
        {"cpu.max": "max 100000\n", "jobs/run7/cpu.max": "50000 100000\n"},
        self_cgroup="0::/jobs/run7\n",
    )
    assert threads.cgroup_cpu_limit(root, proc) == 0.5
    assert threads.cpu_budget(affinity={0, 1}, quota=0.5) == 1  # never below one thread


def test_cgroup_v1_quota(tmp_path):
    root, proc = _cgroup(
        tmp_path,
        {"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"},
        self_cgroup="4:memory:/x\n1:cpu:/\n",
    )
    assert threads.cgroup_cpu_limit(root, proc) == 3.0
    root, proc = _cgroup(
        tmp_path / "b",
        {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
        self_cgroup="1:cpu:/\n",
    )
    assert threads.cgroup_cpu_limit(root, proc) is None  # -1: unlimited


def test_unreadable_or_garbled_cgroup_means_no_quota(tmp_path):
    assert threads.cgroup_cpu_limit(tmp_path / "absent", tmp_path / "absent") is None
    root, proc = _cgroup(tmp_path, {"cpu.max": "lots 0\n"}, self_cgroup="garbage")
    assert threads.cgroup_cpu_limit(root, proc) is None


def test_affinity_is_the_budget_without_quota():
    assert threads.cpu_budget(affinity={3}, quota=None) == 1
    assert threads.cpu_budget(affinity=set(range(6)), quota=None) == 6
    assert threads.cpu_budget(affinity=set(range(6)), quota=8.0) == 6  # quota above affinity
    if hasattr(os, "sched_getaffinity"):
        own = len(os.sched_getaffinity(0))
        assert 1 <= threads.cpu_budget() <= own


def test_environment_variable_wins_and_bad_values_are_refused():
    assert threads.thread_count({"BACKPROP_NUM_THREADS": "3"}) == (3, "BACKPROP_NUM_THREADS")
    assert threads.thread_count({"BACKPROP_NUM_THREADS": " 12 "})[0] == 12
    n, source = threads.thread_count({}, affinity={0, 1}, quota=None)
    assert (n, source) == (2, "CPU affinity and cgroup quota")
    assert threads.thread_count({"BACKPROP_NUM_THREADS": ""}, affinity={0}, quota=None)[0] == 1
    for bad in ("0", "-2", "two", "1.5", "2 threads"):
        with pytest.raises(ValueError, match=r"BACKPROP_NUM_THREADS must be a positive integer"):
            threads.thread_count({"BACKPROP_NUM_THREADS": bad})


def _run(code, **env):
    full = {**os.environ, "PYTHONPATH": ROOT, **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120
    )


def test_pools_get_the_count_when_a_backend_loads():
    code = (
        "import backprop as bp\n"
        "bp.asarray([1.0])\n"
        "from threadpoolctl import threadpool_info\n"
        "print(sorted({p['num_threads'] for p in threadpool_info()}))\n"
        "from backprop.backends import threads\n"
        "print('\\n'.join(threads.thread_report()))\n"
    )
    out = _run(code, BACKPROP_NUM_THREADS="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "[1]"
    assert "threads: 1 (BACKPROP_NUM_THREADS" in out.stdout
    out = _run(code, BACKPROP_NUM_THREADS="many")
    assert out.returncode != 0
    assert "BACKPROP_NUM_THREADS must be a positive integer" in out.stderr
    assert "'many'" in out.stderr


def test_torch_pool_gets_the_count():
    pytest.importorskip("torch")
    code = (
        "import backprop as bp, torch\n"
        "bp.backends.make_backend('torch')\n"
        "print(torch.get_num_threads())\n"
    )
    out = _run(code, BACKPROP_NUM_THREADS="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
