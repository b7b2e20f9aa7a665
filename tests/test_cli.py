"""The backprop command, through subprocess, on quick settings."""

import argparse
import gzip
import pathlib
import struct

import numpy as np
import pytest

import backprop as bp
from backprop._install import install_hint
from conftest import run_cli


def test_train_save_plot_evaluate(tmp_path):
    model, plot = tmp_path / "cnn.npz", tmp_path / "curves.png"
    out = run_cli("train", "--epochs", "3", "--quiet", "--save", str(model), "--plot", str(plot))
    assert out.returncode == 0, out.stderr
    assert "cnn: test accuracy" in out.stdout and "Traceback" not in out.stderr
    accuracy = float(out.stdout.split("test accuracy ")[1].split()[0])
    assert plot.stat().st_size > 5000
    ev = run_cli("evaluate", str(model))
    assert ev.returncode == 0, ev.stderr
    assert f"test accuracy {accuracy:.4f}" in ev.stdout
    assert "confusion matrix" in ev.stdout and len(ev.stdout.splitlines()) >= 12


@pytest.mark.parametrize("model", ["mlp", "cnn2d", "autoencoder"])
def test_train_other_models(model):
    out = run_cli("train", "--model", model, "--epochs", "2", "--quiet", "--optimizer", "adam")
    assert out.returncode == 0, out.stderr
    assert ("test BCE" if model == "autoencoder" else "test accuracy") in out.stdout


def test_backend_option_before_or_after_the_command():
    for args in (
        ["--backend", "array_api_strict", "train"],
        ["train", "--backend", "array_api_strict"],
    ):
        out = run_cli(*args, "--model", "mlp", "--epochs", "1")
        assert out.returncode == 0, out.stderr
        assert "array_api_strict:CPU_DEVICE/float32" in out.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--epochs", "0"], "expected a positive int"),
        (["train", "--model", "rnn"], "invalid choice: 'rnn'"),
        (["train", "--backend", "tensorflow"], "invalid choice: 'tensorflow'"),
        (["train", "--data", "/nonexistent/usps.txt"], "no such file: /nonexistent/usps.txt"),
        (["evaluate", "/nonexistent/model.npz"], "no such file"),
        (["train", "--backend", "numpy", "--device", "cuda", "--epochs", "1"], "CPU only"),
    ],
)
def test_errors_are_one_line(args, message):
    out = run_cli(*args)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_info():
    out = run_cli("info")
    assert out.returncode == 0, out.stderr
    assert (
        f"backprop {bp.__version__}" in out.stdout
        and "numpy" in out.stdout
        and "usable" in out.stdout
    )


def test_experiment_quick(tmp_path):
    out = run_cli("experiment", "autoencoder", "--out", str(tmp_path), "--quick")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "report.md").exists()


def write_usps(path, X, y):
    lines = [f"{len(y)} {X.shape[1]}"] + [
        f"{label} " + " ".join(f"{v:.4f}" for v in row) for row, label in zip(X, y)
    ]
    path.write_text("\n".join(lines) + "\n")


def write_idx(path, array, code):
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(
        ">" + "i" * array.ndim, *array.shape
    )
    with gzip.open(path, "wb") if str(path).endswith(".gz") else open(path, "wb") as f:
        f.write(header + array.astype(">u1" if code == 0x08 else ">f4").tobytes())


def test_usps_reader_and_training(tmp_path):
    rng = np.random.default_rng(0)
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (
        np.repeat(np.repeat(digits.images, 2, axis=1), 2, axis=2).reshape(-1, 256)[:400] / 8.0 - 1.0
    )  # 16x16, [-1, 1]
    y = digits.target[:400]
    path = tmp_path / "usps.txt"
    write_usps(path, X, y)
    Xr, yr = bp.data.read_usps(path)
    assert tuple(Xr.shape) == (400, 256)
    host = bp.to_numpy(Xr)
    assert host.min() == 0 and host.max() == pytest.approx(1)
    np.testing.assert_array_equal(bp.to_numpy(yr), y)
    out = run_cli("train", "--data", str(path), "--epochs", "2", "--quiet", "--model", "cnn2d")
    assert out.returncode == 0, out.stderr
    del rng


@pytest.mark.parametrize(
    "bad,message",
    [
        ("3 0.1 0.2\n", "line 3: expected 4 grey values, got 2"),
        ("3 0.1 zero 0.3 0.4\n", "line 3: expected a label and grey values"),
        ("2.5 0.1 0.2 0.3 0.4\n", "line 3: the label '2.5' is not a non-negative integer"),
    ],
)
def test_usps_reader_malformed_lines(tmp_path, bad, message):
    path = tmp_path / "bad.txt"
    path.write_text("2 4\n1 0.0 0.5 1.0 0.5\n" + bad)
    with pytest.raises(ValueError, match=message):
        bp.data.read_usps(path)
    out = run_cli("train", "--data", str(path))
    assert (
        out.returncode == 2
        and message.split(":")[0] in out.stderr
        and "Traceback" not in out.stderr
    )


def test_idx_reader(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, size=30).astype(np.uint8)
    write_idx(tmp_path / "images.idx3-ubyte.gz", images, 0x08)
    write_idx(tmp_path / "labels.idx1-ubyte", labels, 0x08)
    X, y = bp.data.read_mnist(tmp_path / "images.idx3-ubyte.gz", tmp_path / "labels.idx1-ubyte")
    assert tuple(X.shape) == (30, 784)
    np.testing.assert_allclose(bp.to_numpy(X), images.reshape(30, 784) / images.max(), rtol=1e-6)
    np.testing.assert_array_equal(bp.to_numpy(y), labels)
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        bp.data.read_idx(tmp_path / "junk")
    short = (tmp_path / "labels.idx1-ubyte").read_bytes()[:-3]
    (tmp_path / "short").write_bytes(short)
    with pytest.raises(ValueError, match="expected 30 bytes of data"):
        bp.data.read_idx(tmp_path / "short")


def test_export_onnx(tmp_path):
    pytest.importorskip("onnx", reason=f"onnx is not installed ({install_hint('onnx')})")
    ort = pytest.importorskip(
        "onnxruntime", reason=f"onnxruntime is not installed ({install_hint('onnx')})"
    )
    from backprop.models import cnn1d as seed_cnn_network

    with bp.use_backend("numpy", dtype="float32"):
        bp.manual_seed(0)
        net = seed_cnn_network().eval()
        bp.save(net, tmp_path / "cnn.npz")
        out = run_cli("export", str(tmp_path / "cnn.npz"), str(tmp_path / "cnn.onnx"))
        assert out.returncode == 0, out.stderr
        assert "input (N, 64) -> output (N, 10)" in out.stdout
        X = np.random.default_rng(0).normal(size=(7, 64)).astype(np.float32)
        session = ort.InferenceSession(tmp_path / "cnn.onnx", providers=["CPUExecutionProvider"])
        expected = bp.to_numpy(net.forward(X))
        np.testing.assert_allclose(session.run(None, {"input": X})[0], expected, atol=1e-5, rtol=0)
        bp.save(bp.Sequentiel(bp.Conv1D(3, 1, 4), bp.Flatten()), tmp_path / "conv.npz")
    conv, conv_onnx = str(tmp_path / "conv.npz"), str(tmp_path / "conv.onnx")
    out = run_cli("export", conv, conv_onnx)
    assert out.returncode == 2 and "pass input_shape (--input-shape" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_cli("export", conv, conv_onnx, "--input-shape", "10,1")
    assert out.returncode == 0, out.stderr
    assert "input (N, 10, 1) -> output (N, 32)" in out.stdout


# ---------------------------------------------------------------- help and progress


def test_help_shows_every_default_and_no_markup():
    from backprop.cli import parser

    p = parser()
    subparsers = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in [("backprop", p), *subparsers.items()]:
        text = sub.format_help()
        assert "``" not in text, name
        for action in sub._actions:
            if action.dest in ("help", "version"):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest}: no help text"
            if action.option_strings:
                assert "default" in action.help or "required" in action.help, (
                    f"{name} {action.option_strings}"
                )


def test_one_line_per_epoch_when_not_a_terminal():
    out = run_cli("train", "--model", "mlp", "--epochs", "3")  # stdout is a pipe here
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("epoch")]
    assert len(lines) == 3
    assert all(
        "cost" in line and "accuracy" in line and line.rstrip().endswith(" s)") for line in lines
    )
    quiet = run_cli("train", "--model", "mlp", "--epochs", "2", "--quiet")
    assert not [line for line in quiet.stdout.splitlines() if line.startswith("epoch")]


# ------------------------------------------------ bad input: one line, exit status 2


def _usps(path, rows):
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def _one_line_error(out, *fragments):
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    for fragment in fragments:
        assert fragment in out.stderr, (fragment, out.stderr)
    assert "training " not in out.stdout  # refused before any training


def test_bad_data_files(tmp_path):
    good = [f"{i % 3} " + " ".join(["0.5"] * 4) for i in range(12)]
    packed = gzip.compress(("\n".join(good) + "\n").encode())
    (tmp_path / "truncated.gz").write_bytes(packed[: len(packed) // 2])
    cases = [
        (str(tmp_path / "truncated.gz"), ["truncated.gz: truncated gzip file"]),
        (
            _usps(tmp_path / "huge.txt", good + ["1e400 0.1 0.2 0.3 0.4"]),
            ["huge.txt, line 13: the label '1e400'"],
        ),
        (
            _usps(tmp_path / "nanlabel.txt", good[:3] + ["nan 0.1 0.2 0.3 0.4"] + good),
            ["nanlabel.txt, line 4", "'nan'"],
        ),
        (
            _usps(tmp_path / "nanpixel.txt", good + ["1 0.1 nan 0.3 0.4"]),
            ["nanpixel.txt, line 13: the data holds NaN"],
        ),
        (
            _usps(tmp_path / "single.txt", [f"3 {i} 0.5 0.5 0.5" for i in range(10)]),
            ["a single class (label 3)"],
        ),
        (
            _usps(tmp_path / "garbage.txt", ["hello world", "this is not data"]),
            ["garbage.txt, line 2: expected a label and grey values"],
        ),
    ]
    write_idx(tmp_path / "labels.idx", np.arange(12, dtype=np.uint8), 0x08)
    cases.append(
        (str(tmp_path / "labels.idx"), ["labels.idx is an IDX file", "--data IMAGES LABELS"])
    )
    for data, fragments in cases:
        _one_line_error(
            run_cli("train", "--data", data, "--epochs", "1", "--model", "mlp"), *fragments
        )


def test_idx_float_labels_are_refused(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(10, 4, 4)).astype(np.uint8)
    write_idx(tmp_path / "images", images, 0x08)
    write_idx(tmp_path / "labels", np.array([0, 1, 2.7, 1, 0, 1, 2, 0, 1, 2]), 0x0D)
    out = run_cli(
        "train", "--data", str(tmp_path / "images"), str(tmp_path / "labels"), "--epochs", "1"
    )
    _one_line_error(out, "label 2.7 (row 2) is not a class number")


def test_outputs_are_checked_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    cases = [
        (["--save", str(tmp_path / "missing" / "net.npz")], "--save", "does not exist"),
        (["--plot", str(tmp_path / "missing" / "curves.png")], "--plot", "does not exist"),
        (["--plot", str(tmp_path / "curves.xyz")], "unknown image format 'xyz'"),
        (["--save", str(tmp_path)], "it is a directory"),
    ]
    for extra, *fragments in cases:
        _one_line_error(run_cli("train", "--epochs", "1", *extra), *fragments)
    _one_line_error(
        run_cli("experiment", "autoencoder", "--quick", "--out", str(tmp_path / "file")),
        "it is a file",
    )
    out = run_cli("experiment", "autoencoder", "--quick", "--out", str(tmp_path / "file" / "sub"))
    _one_line_error(out, "is a file, so the directory cannot be created")


def test_evaluate_refuses_an_autoencoder(tmp_path):
    path = tmp_path / "ae.npz"
    bp.save(bp.build_autoencoder((64, 16, 4)).network, path)
    _one_line_error(
        run_cli("evaluate", str(path)), "reconstructs its input", "an autoencoder, not a classifier"
    )
    bp.save(bp.Sequentiel(bp.Linear(30, 10)), tmp_path / "other.npz")
    _one_line_error(run_cli("evaluate", str(tmp_path / "other.npz")), "does not take this data")
    (tmp_path / "text.npz").write_text("not a model")
    _one_line_error(
        run_cli("evaluate", str(tmp_path / "text.npz")), "text.npz is not a readable .npz archive"
    )


def _cli(capsys, *args):
    """``backprop ARGS`` in this process: (exit status, stdout, stderr)."""
    from backprop import cli

    status = cli.main(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.fixture
def tabular(tmp_path):
    """A 3-class tabular problem (4 features, not images) as X.npy / y.npy and as a CSV file."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    X = (rng.normal(size=(120, 4)) + 2.0 * y[:, None]).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    rows = "\n".join(",".join([str(int(c))] + [f"{v:.6g}" for v in x]) for c, x in zip(y, X))
    (tmp_path / "data.csv").write_text("label,a,b,c,d\n" + rows + "\n")
    return tmp_path


def test_npy_data_train_then_evaluate_and_info(tabular, capsys):
    """evaluate reads what train read (.npy files), on the same test rows; info shows the data."""
    d, model = tabular, str(tabular / "m.npz")
    status, out, err = _cli(
        capsys, "train", "--data", str(d / "X.npy"), str(d / "y.npy"), "--epochs", "20",
        "--save", model, "--verbose",
    )  # fmt: skip
    assert status == 0, err
    assert out.startswith("training mlp on ")  # flat data: the MLP unless told otherwise
    assert "(90 train / 30 test, 4 values each, 1 chunk)" in out
    accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert accuracy >= 0.9
    status, out, err = _cli(capsys, "evaluate", model, "--data", str(d / "X.npy"), str(d / "y.npy"))
    assert status == 0, err
    assert f"test accuracy {accuracy:.4f} on 30 samples" in out
    status, out, err = _cli(capsys, "info", model)
    assert status == 0, err
    assert f"data: ['{d / 'X.npy'}', '{d / 'y.npy'}']" in out and "model: mlp" in out


def test_npy_samples_alone_say_the_labels_are_needed(tabular, capsys):
    status, _, err = _cli(capsys, "train", "--data", str(tabular / "X.npy"), "--epochs", "1")
    assert status == 2
    assert "a .npy file holds the samples only; give their labels file too: --data" in err
    status, out, err = _cli(
        capsys, "train", "--data", str(tabular / "X.npy"), str(tabular / "y.npy"), "--epochs", "1",
        "--quiet",
    )  # fmt: skip
    assert status == 0, err
    assert "mlp: test accuracy" in out and "1 epoch," in out  # one epoch, not "1 epochs"
    with pytest.raises(ValueError, match="is a NumPy .npy file: give the samples and their labels"):
        bp.data.read_usps(tabular / "X.npy")


def test_csv_data_label_first(tabular, capsys):
    """A comma-separated file in the USPS layout, with a line of column names, trains the MLP."""
    X, y = bp.data.read_usps(tabular / "data.csv")
    assert tuple(X.shape) == (120, 4)
    np.testing.assert_array_equal(bp.to_numpy(y), np.repeat(np.arange(3), 40))
    status, out, err = _cli(
        capsys, "train", "--data", str(tabular / "data.csv"), "--epochs", "20", "--save",
        str(tabular / "csv.npz"), "--verbose",
    )  # fmt: skip
    assert status == 0, err
    assert out.startswith("training mlp on ") and "(90 train / 30 test, 4 values each)" in out
    accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert accuracy >= 0.9
    status, out, err = _cli(
        capsys, "evaluate", str(tabular / "csv.npz"), "--data", str(tabular / "data.csv")
    )
    assert status == 0 and f"test accuracy {accuracy:.4f} on 30 samples" in out, err


@pytest.mark.parametrize(
    "text,message",
    [
        ("1,0.5,,0.2\n0,0.1,0.2,0.3\n", "line 1: an empty field (a missing value)"),
        ("a,b,c\n1,0.5,0.2\n0,0.1,x\n", "line 3: expected a label and grey values"),
        ("1,0.5,0.2\n0,0.1\n", "line 2: expected 2 grey values, got 1"),
    ],
)
def test_csv_errors_name_the_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    status, _, err = _cli(capsys, "train", "--data", str(path), "--epochs", "1")
    assert status == 2 and message in err, err


def test_the_data_help_names_every_format(capsys):
    with pytest.raises(SystemExit):
        _cli(capsys, "train", "--help")
    text = " ".join(capsys.readouterr().out.split())
    for what in ("USPS layout", "commas (CSV", "MNIST IDX", "X.npy (n, values)", "mlp for tabular"):
        assert what in text, what


def test_two_branch_model_and_a_resumed_run(tmp_path, capsys):
    status, out, err = _cli(capsys, "train", "--model", "two_branch", "--epochs", "1", "--quiet")
    assert status == 0 and out.startswith("two_branch: test accuracy"), err
    ckpt = str(tmp_path / "run.npz")
    common = ("train", "--model", "mlp", "--checkpoint", ckpt, "--quiet")
    assert _cli(capsys, *common, "--epochs", "2")[0] == 0
    status, out, err = _cli(capsys, *common, "--epochs", "3", "--resume")
    assert status == 0, err
    assert "(final training cost" in out and "3 epochs, 2 before the resume," in out


def test_export_to_a_missing_directory_is_one_clear_line(tmp_path, capsys):
    model = str(tmp_path / "m.npz")
    bp.save(bp.Sequentiel(bp.Linear(4, 3)), model)
    status, _, err = _cli(capsys, "export", model, str(tmp_path / "missing" / "x.onnx"))
    assert status == 2
    assert err.strip() == (
        f"backprop: error: export: output {tmp_path / 'missing' / 'x.onnx'}: the directory "
        f"{tmp_path / 'missing'} does not exist"
    )


def test_the_main_job_s_adam_line_says_what_its_number_is():
    from backprop.experiments.assignment import adam_vs_sgd

    line = adam_vs_sgd(epochs=2).line()
    assert line.startswith("1-D CNN, Adam vs SGD: SGD's final test accuracy, 0.")
    assert "is first reached at epoch" in line and "by SGD and" in line and "speed-up" in line


def test_the_package_says_it_is_typed():
    import backprop

    assert (pathlib.Path(backprop.__file__).parent / "py.typed").exists()
    text = (pathlib.Path(backprop.__file__).parents[1] / "pyproject.toml").read_text()
    assert 'backprop = ["py.typed"]' in text
