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
    pytest.importorskip("torch", reason="the collective needs torch.distributed")
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.distributed", "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for world in ("2", "3"):
        entry = results["allreduce"][world]
        assert entry["alpha_s"] > 0 and entry["beta_Bps"] > 0
    for name in ("seed_cnn", "mlp_1.86M"):
        steps = results["steps"][name]
        for w in (1, 2, 3):
            timing = steps[f"workers_{w}"]
            assert timing["step_s"] > 0 and timing["driver_cpu_s"] >= 0
    rows = results["projection"]
    assert {row["network"] for row in rows} == {"seed_cnn", "mlp_1.86M"}
    assert all(0 < row["W=512"]["efficiency"] <= 1 for row in rows)
    assert "projection" in out.stdout and "memory" not in results
