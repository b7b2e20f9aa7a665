"""benchmarks/distributed.py runs and writes its results (timing never decides a test)."""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_run_writes_results(tmp_path):
    pytest.importorskip("distributed", reason="the distributed extra is not installed")
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.distributed", "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for name in ("small", "large"):
        for timing in results["networks"][name]["32"].values():
            assert timing > 0
        assert set(results["networks"][name]["32"]) == {"single_s", "workers_1_s", "workers_2_s"}
    assert results["model"]["bandwidth_Bps"] > 0 and results["model"]["round_trip_s"] > 0
    rows = results["projection"]["loopback (measured)"]
    assert {row["network"] for row in rows} == {"small", "large"} and all(
        row["W=512"] > 0 for row in rows
    )
    assert "projection" in out.stdout and "rss" not in results
