"""backprop train beyond one process: --workers, --scheduler, --data X.npy y.npy."""

import numpy as np
import pytest

from conftest import run_cli


def accuracy_of(out) -> float:
    assert out.returncode == 0, out.stderr
    return float(out.stdout.split("test accuracy ")[1].split()[0])


@pytest.fixture(scope="module")
def npy_files(tmp_path_factory):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    folder = tmp_path_factory.mktemp("npy")
    np.save(folder / "X.npy", (X / 16.0).astype(np.float32))
    np.save(folder / "y.npy", y.astype(np.int64))
    return str(folder / "X.npy"), str(folder / "y.npy")


def test_train_from_memory_mapped_files(npy_files):
    out = run_cli("train", "--data", *npy_files, "--model", "mlp", "--epochs", "5", "--verbose")
    assert "memory-mapped (1347 train / 450 test" in out.stdout
    assert out.stdout.count("epoch ") == 5 and accuracy_of(out) > 0.9


def test_memory_mapped_training_writes_and_resumes_its_checkpoint(npy_files, tmp_path):
    """--checkpoint/--resume are honoured on the streaming path too (not checked, then dropped)."""
    ckpt = tmp_path / "run.npz"
    common = ("train", "--data", *npy_files, "--model", "mlp", "--checkpoint", str(ckpt))
    first = run_cli(*common, "--epochs", "2", "--quiet")
    assert first.returncode == 0, first.stderr
    assert ckpt.exists()
    resumed = run_cli(*common, "--epochs", "3", "--resume", "--verbose")
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch   1/3" not in resumed.stdout and "epoch   3/3" in resumed.stdout


def test_memory_mapped_files_are_checked(npy_files, tmp_path):
    labels = tmp_path / "labels.npy"
    np.save(labels, np.zeros(10, dtype=np.int64))
    out = run_cli("train", "--data", npy_files[0], str(labels))
    assert out.returncode == 2 and "expected 1797 integer labels" in out.stderr
    pixels = tmp_path / "pixels.npy"
    np.save(pixels, np.zeros((1797, 64), dtype=np.uint8))
    out = run_cli("train", "--data", str(pixels), npy_files[1])
    assert out.returncode == 2 and "expected floating samples" in out.stderr
    out = run_cli("train", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1")
    assert out.returncode == 2 and "give one" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_workers_read_their_own_rows_of_memory_mapped_files(npy_files):
    """--workers with --data: each worker reads its rows of the files; the driver the test rows."""
    pytest.importorskip("distributed", reason="the distributed extra is not installed")
    options = ("train", "--data", *npy_files, "--model", "mlp", "--epochs", "4", "--verbose")
    out = run_cli(*options, "--workers", "2")
    assert "memory-mapped (1347 train / 450 test" in out.stdout
    assert out.stdout.count("epoch ") == 4 and accuracy_of(out) > 0.85


@pytest.mark.slow
def test_workers_reach_the_accuracy_of_one_process():
    pytest.importorskip("distributed", reason="the distributed extra is not installed")
    options = (
        "train",
        "--model",
        "mlp",
        "--epochs",
        "3",
        "--dtype",
        "float64",
        "--seed",
        "3",
        "--quiet",
    )
    alone, clustered = run_cli(*options), run_cli(*options, "--workers", "2")
    assert "a local Dask cluster" not in alone.stdout  # --quiet: the summary line only
    assert accuracy_of(clustered) == accuracy_of(alone)


def test_scheduler_joins_a_running_cluster():
    distributed = pytest.importorskip(
        "distributed", reason="the distributed extra is not installed"
    )
    # worker threads in this process, reached over TCP by the command's process
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        options = ("train", "--model", "mlp", "--epochs", "2", "--dtype", "float64")
        out = run_cli(*options, "--scheduler", cluster.scheduler_address)
        assert f"the Dask cluster at {cluster.scheduler_address}" in out.stdout
        assert accuracy_of(out) == accuracy_of(run_cli(*options))
