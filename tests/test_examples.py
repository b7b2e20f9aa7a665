"""The scripts in examples/ run to completion and reach what they print.

Each script runs in a fresh interpreter from the repository root, as a user
would run it; its printed numbers are checked against thresholds that a
correct library reaches with room to spare.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

pytest.importorskip("sklearn", reason="the examples read the bundled digits through scikit-learn")


def run_example(name: str, backend: str | None = None) -> str:
    env = dict(os.environ)
    if backend is not None:
        env["BACKPROP_BACKEND"] = backend
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, f"{name} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def numbers(label: str, text: str) -> list[float]:
    """Every number printed right after ``label`` (e.g. ``"test accuracy:"``)."""
    found = [float(v) for v in re.findall(re.escape(label) + r"\s*([-+0-9.eE]+)", text)]
    assert found, f"{label!r} not in the output:\n{text}"
    return found


def test_every_example_is_tested():
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    tested = sorted(n for n in globals() if re.match(r"test_\d\d_", n))
    assert len(scripts) == len(tested) == 11, (scripts, tested)


def test_01_linear_regression():
    out = run_example("01_linear_regression.py")
    assert numbers("R^2:", out)[0] >= 0.99
    assert numbers("largest parameter error:", out)[0] <= 0.05


def test_02_binary_classification():
    out = run_example("02_binary_classification.py")
    assert numbers("test accuracy:", out)[0] >= 0.95


@pytest.mark.slow
def test_03_sequential_optim_sgd():
    out = run_example("03_sequential_optim_sgd.py")
    assert numbers("Optim step:", out)[0] <= 1e-6  # the encapsulation changes nothing
    assert numbers("test accuracy:", out)[0] >= 0.9


@pytest.mark.slow
def test_04_multiclass_softmax():
    out = run_example("04_multiclass_softmax.py")
    accuracies = numbers("test accuracy:", out)
    assert len(accuracies) == 3 and min(accuracies) >= 0.93, accuracies
    mse_early, nll_early, fused_early = numbers("accuracy after 2 epochs", out)
    assert nll_early > mse_early  # what the script's docstring says about MSE on probabilities
    assert abs(nll_early - fused_early) <= 0.01  # LogSoftmax + CrossEntropyLoss is CELogSoftmax


@pytest.mark.slow
def test_05_autoencoder():
    out = run_example("05_autoencoder.py")
    assert numbers("reconstruction error ratio:", out)[0] <= 0.3
    assert numbers("accuracy on the 10-D codes:", out)[0] >= 0.9


@pytest.mark.slow
def test_06_cnn_1d():
    out = run_example("06_cnn_1d.py")
    # the shapes the assignment fixes: (batch, length, chan) through Conv1D and MaxPool1D
    assert "Conv1D     -> (5, 62, 32)" in out and "MaxPool1D  -> (5, 31, 32)" in out, out
    assert "Flatten    -> (5, 992)" in out, out
    assert numbers("test accuracy:", out)[0] >= 0.95


@pytest.mark.slow
def test_07_two_branch_and_2d_cnn():
    out = run_example("07_two_branch_and_2d_cnn.py")
    accuracies = numbers("test accuracy:", out)
    assert len(accuracies) == 2 and min(accuracies) >= 0.9, accuracies


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict", "torch", "jax"])
def test_08_custom_layer(backend):
    pytest.importorskip(backend, reason=f"{backend} is not installed")
    out = run_example("08_custom_layer.py", backend)
    assert "gradcheck: True" in out
    assert numbers("test accuracy:", out)[0] >= 0.9
    assert "reloaded network gives the same scores: True" in out
    assert numbers("training forwards counted by the buffer:", out)[0] > 0


def test_09_residual_cnn_1d():
    out = run_example("09_residual_cnn_1d.py")
    assert numbers("test accuracy:", out)[0] >= 0.95


def test_10_gru_digits():
    out = run_example("10_gru_digits.py")
    assert numbers("test accuracy:", out)[0] >= 0.93


def test_11_conv_autoencoder():
    out = run_example("11_conv_autoencoder.py")
    error = numbers("test reconstruction MSE per pixel:", out)[0]
    baseline = numbers("mean-image baseline MSE per pixel:", out)[0]
    assert error <= 0.25 * baseline, (error, baseline)
