"""The benchmark suite runs and its contenders compute the same step.

Nothing about speed: timing never decides a test.
"""

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import backprop as bp

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quick_run_writes_results(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--batch-sizes",
            "32",
            "--repeats",
            "2",
            "--min-block",
            "0.001",
            "--gap",
            "0",
            "--backends",
            "numpy",
            "--peers",
            "numpy",
            "jax",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "throughput.png").stat().st_size > 10_000
    assert set(results["workloads"]) == {
        "seed_mlp", "digits_mlp", "seed_cnn", "autoencoder", "lenet5",
    }  # fmt: skip
    lenet = results["workloads"]["lenet5"]["batches"]["32"]["contenders"]
    assert "backprop[numpy]" in lenet and "numpy (hand-written)" not in lenet
    assert any("no hand-written step for lenet5" in s for s in results["skipped"])
    late = results["long_training"]
    entry = late["contenders"]["backprop[numpy]"]
    assert len(entry["epoch_s"]) == late["epochs"] and all(t > 0 for t in entry["epoch_s"])
    assert entry["ratio"] == pytest.approx(entry["late_s"] / entry["early_s"])
    assert entry["subnormal_share"] == 0.0  # Adam flushes them
    assert results["gemm_gflops"] > 0 and results["bandwidth_gbs"] > 0
    batch = results["workloads"]["seed_cnn"]["batches"]["32"]
    entry = batch["contenders"]
    assert "backprop[numpy]" in entry and "numpy (hand-written)" in entry
    assert all(t > 0 for t in entry["backprop[numpy]"]["train"]["raw_s"])
    assert entry["backprop[numpy]"]["memory"]["method"] == "tracemalloc"
    assert entry["backprop[numpy]"]["memory"]["peak_bytes"] > 0
    shares = entry["backprop[numpy]"]["shares"]
    assert 0 < shares["gemm"] <= shares["roofline"]
    assert batch["work"]["flops"] == 32 * 2_541_936
    report = (tmp_path / "report.md").read_text()
    for section in (
        "### Training step",
        "### Share of the hardware",
        "### Peak memory",
        "### Goals",
        "### Late in training (Adam)",
    ):
        assert section in report
    assert "adam_late: backprop[numpy] late / early epoch time" in report
    assert "targets (training step)" in out.stdout and "goals (training step)" in out.stdout


def test_step_model_of_the_cnn():
    """FLOPs, bytes and live set of the seed CNN's step, counted by hand."""
    from benchmarks import roofline
    from benchmarks.workloads import WORKLOADS, backprop_network

    w = WORKLOADS["seed_cnn"]
    model = roofline.step_model(backprop_network(w), w.n_features)
    linear = 2 * 4064 * 100 * 3 + 2 * 100 * 10 * 3  # forward, weight and input gradients
    # forward and weight gradient: no input gradient before the first parameters
    conv = 2 * 254 * 32 * 3 * 2
    assert model["flops"] == linear + conv
    # kept activations (conv, pool, linear, relu, linear)
    # + the widest backward (pool: 4064 in, 8128 out)
    assert model["live_bytes"] == 4 * (8128 + 4064 + 100 + 100 + 10 + 4064 + 8128)
    work = roofline.for_batch(model, 2048)
    assert 193 < work["live_bytes"] / 2**20 < 195  # the 194 MiB of the goal
    shares = roofline.shares(work, 1.0, 100.0, 10.0)
    assert shares["roofline"] >= shares["gemm"] > 0


def test_peak_memory_sees_a_step_allocation():
    from benchmarks import memory

    def step():
        a = np.ones(2**20, dtype=np.float32)  # 4 MiB, alive during the step only
        return float(a.sum())

    assert memory.peak(step, "tracemalloc") >= 4 * 2**20
    if memory.rss_available():
        assert memory.peak(step, "rss") >= 2 * 2**20


def _contenders(w, X, y):
    from benchmarks.workloads import backprop_loss, backprop_network, weights_of

    with bp.use_backend("numpy", dtype="float32"):  # the reference step, whatever the default
        net = backprop_network(w)
        weights = weights_of(net)
        loss = float(bp.Optim(net, backprop_loss(w), eps=0.01).step(bp.asarray(X), bp.asarray(y)))
    return weights, loss, weights_of(net)


@pytest.mark.parametrize("name", ["seed_mlp", "digits_mlp", "seed_cnn", "autoencoder"])
def test_contenders_compute_the_same_step(name):
    """The hand-written NumPy, native PyTorch and JAX steps start from backprop's weights and
    agree with it."""
    from benchmarks.workloads import WORKLOADS, JaxStep, NumpyStep, TorchStep, make_batches

    w = WORKLOADS[name]
    (X, y), (X2, y2) = make_batches(w, 8, count=2)
    weights, loss, after = _contenders(w, X, y)
    floor = NumpyStep(w, weights)
    assert abs(float(floor.step(X, y)) - loss) < 1e-3 * max(1, abs(loss))
    for a, b in zip(floor.p, after):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # the outputs agree too (a step can hide a permuted feature order: the costs barely move)
    ref = _numpy_out(w, weights, X2)
    np.testing.assert_allclose(floor.infer(X2), _numpy_out(w, after, X2), rtol=1e-4, atol=1e-5)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        t = TorchStep(w, weights)
        np.testing.assert_allclose(t.infer(t.prepare(X2, y2)[0]).numpy(), ref, rtol=1e-4, atol=1e-5)
        assert abs(float(t.step(*t.prepare(X, y))) - loss) < 1e-3 * max(1, abs(loss))
    try:
        import jax  # noqa: F401
    except ImportError:
        return
    j = JaxStep(w, weights)
    np.testing.assert_allclose(np.asarray(j.infer(j.prepare(X2, y2)[0])), ref, rtol=1e-4, atol=1e-5)
    assert abs(float(j.step(*j.prepare(X, y))) - loss) < 1e-3 * max(1, abs(loss))
    for a, b in zip(j.params, after):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-4, atol=1e-5)


def _net_with(w, weights):
    from benchmarks.workloads import backprop_network

    with bp.use_backend("numpy", dtype="float32"):
        net = backprop_network(w)
        for (m, key), value in zip(net.parameter_slots(), weights):
            m.set_parameter(key, bp.asarray(value))
    return net


def _numpy_out(w, weights, X):
    net = _net_with(w, weights)
    with bp.use_backend("numpy", dtype="float32"):
        return bp.to_numpy(net.forward(bp.asarray(X)))


def test_profile_times_every_layer():
    from benchmarks import profile

    parts = profile.profile("seed_cnn", 8, "numpy", steps=3)
    assert "1 Conv1D(k=3, 1 -> 32, stride=1) backward" in parts
    assert "2 MaxPool1D(k=2, stride=2) forward" in parts
    assert {"zero_grad", "update", "whole Optim.step"} <= set(parts)
    assert all(t > 0 for t in parts.values())


def test_compare_reads_runs(tmp_path, capsys):
    from benchmarks import compare

    def run(sps_numpy, sps_torch):
        entry = {
            "backprop[numpy]": {"kind": "backprop", "train": {"samples_per_s": sps_numpy}},
            "torch (native)": {"kind": "peer", "train": {"samples_per_s": sps_torch}},
        }
        return {"workloads": {"seed_cnn": {"batches": {"256": {"contenders": entry}}}}}

    (tmp_path / "a.json").write_text(json.dumps(run(100.0, 50.0)))
    (tmp_path / "b.json").write_text(json.dumps(run(150.0, 50.0)))
    compare.main([f"before={tmp_path / 'a.json'}", f"after={tmp_path / 'b.json'}"])
    out = capsys.readouterr().out
    assert "| seed_cnn | 256 | backprop[numpy] | 100 | 150 | 1.50x |" in out
    assert "| seed_cnn | 256 | backprop[numpy] | 2.00 | 3.00 |" in out


@pytest.mark.parametrize("name", ["seed_mlp", "seed_cnn"])
def test_each_peer_gets_its_own_batches(name, monkeypatch):
    """Every contender's step receives the arrays prepared for it (a closure bound late would
    hand the hand-written NumPy step another library's arrays)."""
    from benchmarks import run, workloads

    seen = {}

    def spy(cls, label):
        real = cls.step

        def step(self, X, y):
            seen.setdefault(label, set()).add(type(X).__module__.split(".")[0])
            return real(self, X, y)

        monkeypatch.setattr(cls, "step", step)

    spy(workloads.NumpyStep, "numpy")
    peers = ["numpy"]
    for module, cls in (("torch", "TorchStep"), ("jax", "JaxStep")):
        if importlib.util.find_spec(module) is not None:
            spy(getattr(workloads, cls), module)
            peers.append(module)
    args = run.parse_args(["--quick", "--backends", "numpy", "--peers", *peers, "sklearn"])
    w = workloads.WORKLOADS[name]
    for c in run.contenders_for(w, 8, args, []):
        for _ in range(3):
            c.sync(c.train())
    expected = {"numpy": {"numpy"}, "torch": {"torch"}, "jax": {"jaxlib", "jax"}}
    for label, kinds in seen.items():
        assert kinds <= expected[label], (label, kinds)
    assert set(seen) == set(peers)


def test_lenet_twins_compute_the_same_step():
    """The 28x28 LeNet-5: native PyTorch and the hand-written JAX step start from backprop's
    weights (convolution kernels and the flattening order converted) and agree with it."""
    from benchmarks.workloads import WORKLOADS, JaxStep, TorchStep, make_batches

    w = WORKLOADS["lenet5"]
    (X, y), (X2, y2) = make_batches(w, 8, count=2)
    assert X.shape == (8, 784) and X.dtype == np.float32 and X.min() >= 0 and X.max() <= 1
    assert X.max() > 0.5 and set(np.unique(y)) <= set(range(10))  # digits, not noise
    weights, loss, after = _contenders(w, X, y)
    ref = _numpy_out(w, weights, X2)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        t = TorchStep(w, weights)
        out = t.infer(t.prepare(X2, y2)[0]).numpy()
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
        assert abs(float(t.step(*t.prepare(X, y))) - loss) < 1e-4 * max(1, abs(loss))
    try:
        import jax  # noqa: F401
    except ImportError:
        return
    j = JaxStep(w, weights)
    np.testing.assert_allclose(np.asarray(j.infer(j.prepare(X2, y2)[0])), ref, rtol=1e-4, atol=1e-5)
    assert abs(float(j.step(*j.prepare(X, y))) - loss) < 1e-4 * max(1, abs(loss))
    for a, b in zip(j.params, after):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-4, atol=1e-5)


def test_digits_28x28_are_the_bundled_digits_upsampled():
    from benchmarks.workloads import digits_28x28

    X, y = digits_28x28()
    assert X.shape == (1797, 784) and y.shape == (1797,)
    images = X.reshape(-1, 28, 28)
    assert not images[:, :4].any() and not images[:, 24:].any()  # a frame of zeros, as MNIST's
    from sklearn.datasets import load_digits

    small = load_digits().images / 16.0
    # the corners of the 20x20 digit are the 8x8 corners (bilinear resizing keeps them)
    np.testing.assert_allclose(images[:, 4, 4], small[:, 0, 0], atol=1e-6)
    np.testing.assert_allclose(images[:, 23, 23], small[:, 7, 7], atol=1e-6)
