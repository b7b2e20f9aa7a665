"""The benchmark suite runs (it asserts nothing about speed: timing never decides a test)."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quick_run_writes_results(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--batch-sizes", "32", "--repeats", "2", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "throughput.png").stat().st_size > 10_000
    assert set(results["workloads"]) == {"seed_mlp", "digits_mlp", "seed_cnn", "autoencoder"}
    entry = results["workloads"]["seed_cnn"]["batches"]["32"]
    assert "backprop[numpy]" in entry and "numpy (hand-written)" in entry
    assert all(t > 0 for t in entry["backprop[numpy]"]["train"]["raw_s"])
    assert results["gemm_gflops"] > 0
    assert "targets (training step)" in out.stdout


def test_contenders_compute_the_same_step():
    """The hand-written NumPy and native PyTorch steps start from backprop's weights and agree with it."""
    import numpy as np

    import backprop as bp
    from benchmarks.workloads import WORKLOADS, NumpyStep, TorchStep, backprop_loss, backprop_network, make_data, weights_of

    for w in WORKLOADS.values():
        X, y = make_data(w, 8)
        net = backprop_network(w)
        weights = weights_of(net)
        with bp.use_backend("numpy", dtype="float32"):
            loss = float(bp.Optim(net, backprop_loss(w), eps=0.01).step(bp.asarray(X), bp.asarray(y)))
        floor = NumpyStep(w, weights)
        assert abs(float(floor.step(X, y)) - loss) < 1e-3 * max(1, abs(loss)), w.name
        for a, b in zip(floor.p, weights_of(net)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=w.name)
        try:
            import torch  # noqa: F401
        except ImportError:
            continue
        t = TorchStep(w, weights)
        tX, ty = t.prepare(X, y)
        assert abs(float(t.step(tX, ty)) - loss) < 1e-3 * max(1, abs(loss)), w.name
