import gzip
import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from conftest import assert_like


def test_load_digits_split(backend):
    X_tr, X_te, y_tr, y_te = bp.load_digits()
    assert_like(X_tr, backend, (1347, 64))
    assert tuple(X_te.shape) == (450, 64) and tuple(y_te.shape) == (450,)
    host = bp.to_numpy(X_tr)
    assert host.min() == 0.0 and host.max() == 1.0
    from sklearn.datasets import load_digits

    per_class = np.bincount(load_digits().target)
    counts = np.bincount(bp.to_numpy(y_te))
    assert np.all(np.abs(counts - 0.25 * per_class) <= 1)  # stratified
    images = bp.load_digits(images=True)[0]
    assert tuple(images.shape) == (1347, 8, 8)


def test_one_hot(backend):
    oh = bp.one_hot(bp.asarray(np.array([2, 0])), 3)
    assert_like(oh, backend, (2, 3))
    np.testing.assert_array_equal(bp.to_numpy(oh), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        bp.one_hot(bp.asarray(np.array([3])), 3)


def test_accuracy(backend):
    scores = bp.asarray([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert bp.accuracy(scores, bp.asarray(np.array([1, 0, 0]))) == pytest.approx(2 / 3)
    assert bp.accuracy(scores, np.array([1, 0, 1])) == 1.0
    assert bp.accuracy(scores, bp.asarray(np.eye(2)[[1, 0, 1]])) == 1.0


# ---------------------------------------------------------------- accuracy


def test_accuracy_refuses_labels_that_do_not_fit(backend):
    scores = bp.asarray([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    with pytest.raises(
        ValueError, match=r"accuracy: expected labels of shape \(4,\) .* got \(4, 1\); flatten"
    ):
        bp.accuracy(scores, bp.asarray(np.array([[1], [0], [1], [0]])))
    with pytest.raises(ValueError, match=r"accuracy: expected labels of shape \(4,\).*got \(3,\)"):
        bp.accuracy(scores, np.array([1, 0, 1]))
    with pytest.raises(ValueError, match=r"got \(4, 3\)"):
        bp.accuracy(scores, np.eye(3)[[0, 1, 2, 0]])
    with pytest.raises(
        ValueError, match=r"accuracy: expected scores of shape \(N, C\), got \(4,\)"
    ):
        bp.accuracy(scores[:, 0], np.array([1, 0, 1, 0]))
    with pytest.raises(ValueError, match="label 2 is out of range for scores of 2 classes"):
        bp.accuracy(scores, np.array([1, 0, 2, 0]))
    with pytest.raises(ValueError, match="label -1 is out of range"):
        bp.accuracy(scores, np.array([1, 0, -1, 0]))
    with pytest.raises(ValueError, match="whole numbers"):
        bp.accuracy(scores, np.array([1.0, 0.0, 0.5, 0.0]))
    with pytest.raises(ValueError, match="whole numbers"):
        bp.accuracy(scores, np.array([1.0, 0.0, np.nan, 0.0]))
    with pytest.raises(TypeError, match="accuracy: expected integer labels, got booleans"):
        bp.accuracy(scores, np.array([True, False, True, False]))
    with pytest.raises(ValueError, match="accuracy: no rows"):
        bp.accuracy(scores[:0, :], np.zeros(0, dtype=np.int64))
    with pytest.raises(TypeError, match="accuracy: scores: expected an array"):
        bp.accuracy([[0.1, 0.9]], np.array([1]))
    with pytest.raises(TypeError, match="accuracy: expected real floating scores"):
        bp.accuracy(bp.asarray(np.array([[0, 1]])), np.array([1]))


def test_accuracy_of_a_single_column_explains_itself(backend):
    with pytest.raises(ValueError, match="one column .* need a threshold"):
        bp.accuracy(bp.asarray([[0.9], [0.1]]), np.array([[1], [0]]))


def test_accuracy_accepts_whole_float_labels_and_lists(backend):
    scores = bp.asarray([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert bp.accuracy(scores, np.array([1.0, 0.0, 1.0, 1.0])) == 0.75
    assert bp.accuracy(scores, [1, 0, 1, 0]) == 1.0
    assert bp.accuracy(scores, np.array([1, 0, 1, 0], dtype=np.uint8)) == 1.0


# ---------------------------------------------------------------- one_hot


def test_one_hot_narrow_dtypes_and_arguments(backend):
    oh = bp.to_numpy(bp.one_hot(bp.asarray(np.array([100, 3], dtype=np.int8)), 200))
    assert oh.shape == (2, 200) and oh[0, 100] == 1 and oh[1, 3] == 1 and oh.sum() == 2
    oh = bp.to_numpy(bp.one_hot(bp.asarray(np.array([255, 0], dtype=np.uint8)), np.int64(300)))
    assert oh[0, 255] == 1 and oh[1, 0] == 1 and oh.sum() == 2
    assert bp.one_hot(bp.asarray(np.array([1])), 2, dtype="float64").dtype == backend.xp.float64
    with pytest.raises(
        ValueError, match=r"one_hot: labels must lie in \[0, 200\), got \[-100, 3\]"
    ):
        bp.one_hot(bp.asarray(np.array([-100, 3], dtype=np.int8)), 200)
    with pytest.raises(
        ValueError, match=r"one_hot: n_classes must lie in \[1, 2147483647\], got 0"
    ):
        bp.one_hot(bp.asarray(np.array([0])), 0)
    with pytest.raises(TypeError, match="one_hot: n_classes must be an int, got float"):
        bp.one_hot(bp.asarray(np.array([0])), 2.5)
    with pytest.raises(TypeError, match="one_hot: y: expected an array"):
        bp.one_hot([0, 1], 2)
    with pytest.raises(TypeError, match="one_hot: expected integer labels, got dtype"):
        bp.one_hot(bp.asarray(np.array([0.0, 1.0])), 2)
    with pytest.raises(
        ValueError, match=r"one_hot: expected integer labels of shape \(n,\), got shape \(2, 1\)"
    ):
        bp.one_hot(bp.asarray(np.array([[0], [1]])), 2)
    with pytest.raises(
        ValueError, match="one_hot: dtype must be 'float32' or 'float64', got 'float16'"
    ):
        bp.one_hot(bp.asarray(np.array([0])), 2, dtype="float16")


# ---------------------------------------------------------------- readers


def usps_text(X, y, header=True):
    lines = ([f"{len(y)} {X.shape[1]}"] if header else []) + [
        f"{label} " + " ".join(f"{v:.4f}" for v in row) for row, label in zip(X, y)
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def usps_sample():
    rng = np.random.default_rng(0)
    return np.round(rng.uniform(-1, 1, size=(12, 16)), 4), rng.integers(0, 10, size=12)


@pytest.mark.parametrize("header", [True, False])
def test_usps_with_or_without_header_keeps_every_sample(tmp_path, usps_sample, header):
    X, y = usps_sample
    path = tmp_path / "usps.txt"
    path.write_text(usps_text(X, y, header))
    Xr, yr = bp.data.read_usps(path)
    assert tuple(Xr.shape) == (12, 16)
    np.testing.assert_array_equal(bp.to_numpy(yr), y)
    expected = (X - X.min()) / (X.max() - X.min())
    np.testing.assert_allclose(bp.to_numpy(Xr), expected, rtol=1e-6, atol=1e-7)


def test_usps_single_value_samples_and_blank_lines(tmp_path):
    # "3 1", then three samples of one value: a header only because it announces them
    (tmp_path / "a.txt").write_text("3 1\n1 0.5\n0 0.25\n\n2 1.0\n")
    X, y = bp.data.read_usps(tmp_path / "a.txt")
    np.testing.assert_array_equal(bp.to_numpy(y), [1, 0, 2])
    (tmp_path / "b.txt").write_text("4 1\n1 0.5\n0 0.25\n")  # no header: "4 1" is a sample
    X, y = bp.data.read_usps(tmp_path / "b.txt")
    np.testing.assert_array_equal(bp.to_numpy(y), [4, 1, 0])


def test_gzip_is_detected_from_the_content(tmp_path, usps_sample):
    X, y = usps_sample
    text = usps_text(X, y)
    (tmp_path / "plain.gz").write_text(text)  # named .gz, not compressed
    (tmp_path / "packed.txt").write_bytes(gzip.compress(text.encode()))  # compressed, named .txt
    for name in ("plain.gz", "packed.txt"):
        np.testing.assert_array_equal(bp.to_numpy(bp.data.read_usps(tmp_path / name)[1]), y)


def test_damaged_gzip_files(tmp_path, usps_sample):
    packed = gzip.compress(usps_text(*usps_sample, header=False).encode())
    (tmp_path / "truncated.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="truncated.gz: truncated gzip file"):
        bp.data.read_usps(tmp_path / "truncated.gz")
    (tmp_path / "corrupt.gz").write_bytes(packed[:10] + bytes(200) + packed[210:])
    with pytest.raises(ValueError, match="corrupt.gz: damaged gzip file"):
        bp.data.read_usps(tmp_path / "corrupt.gz")
    (tmp_path / "trailing.gz").write_bytes(packed + b"junk")
    with pytest.raises(ValueError, match="unexpected bytes after the end of the gzip stream"):
        bp.data.read_usps(tmp_path / "trailing.gz")
    (tmp_path / "two.gz").write_bytes(packed + packed)  # two members: a valid gzip file
    assert bp.data.read_usps(tmp_path / "two.gz")[0].shape[0] == 24


@pytest.mark.parametrize(
    "line,message",
    [
        ("1e400 0.1 0.2", r"line 3: the label '1e400' is not a non-negative integer"),
        ("nan 0.1 0.2", r"line 3: the label 'nan' is not a non-negative integer"),
        ("-1 0.1 0.2", r"line 3: the label '-1' is not a non-negative integer"),
        ("1e9 0.1 0.2", r"line 3: the label '1e9' is too large"),
        ("1 nan 0.2", r"line 3: the data holds NaN \('nan', value 1 of the sample\)"),
        ("1 0.1 1e400", r"line 3: the data holds an infinite value \('1e400', value 2"),
        ("1 0.1", r"line 3: expected 2 grey values, got 1"),
        ("1 0.1 x", r"line 3: expected a label and grey values"),
    ],
)
def test_usps_bad_values_name_the_line(tmp_path, line, message):
    path = tmp_path / "bad.txt"
    path.write_text(f"2 2\n0 0.5 0.5\n{line}\n")
    with pytest.raises(ValueError, match=rf"bad.txt, {message}"):
        bp.data.read_usps(path)


def test_usps_header_that_does_not_match(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("3 2\n0 0.5 0.5\n1 0.1 0.2\n")
    with pytest.raises(ValueError, match="announces 3 samples of 2 values, the file holds 2 of 2"):
        bp.data.read_usps(path)


def test_files_that_are_not_usps(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="empty.txt: empty file"):
        bp.data.read_usps(tmp_path / "empty.txt")
    (tmp_path / "binary.bin").write_bytes(b"\x01\x00\xff" * 50)
    with pytest.raises(ValueError, match="binary.bin: neither a text file"):
        bp.data.read_usps(tmp_path / "binary.bin")
    (tmp_path / "latin.txt").write_bytes(b"1 0.5\xe9\n")
    with pytest.raises(ValueError, match="latin.txt: not a text file"):
        bp.data.read_usps(tmp_path / "latin.txt")
    (tmp_path / "header.txt").write_text("7291 256\n")
    with pytest.raises(ValueError, match="no samples after the header line"):
        bp.data.read_usps(tmp_path / "header.txt")
    write_idx(tmp_path / "labels.idx", np.arange(5, dtype=np.uint8), 0x08)
    with pytest.raises(
        ValueError, match="labels.idx is an IDX file .* read the images and labels files together"
    ):
        bp.data.read_usps(tmp_path / "labels.idx")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        bp.data.read_usps(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        bp.data.read_usps(tmp_path / "missing.txt")


IDX_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def write_idx(path, array, code):
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    body = header + array.astype(IDX_CODES[code]).tobytes()
    path.write_bytes(gzip.compress(body) if str(path).endswith(".gz") else body)


@pytest.mark.parametrize("code", sorted(IDX_CODES))
def test_idx_every_element_type(tmp_path, code):
    rng = np.random.default_rng(code)
    array = rng.integers(-100 if code != 0x08 else 0, 100, size=(3, 4, 5)).astype(IDX_CODES[code])
    write_idx(tmp_path / "a.idx.gz", array, code)
    got = bp.data.read_idx(tmp_path / "a.idx.gz")
    assert got.shape == (3, 4, 5) and got.dtype == np.dtype(IDX_CODES[code]).newbyteorder("=")
    np.testing.assert_array_equal(got, array)


def test_idx_header_checked_before_allocating(tmp_path):
    huge = (
        bytes([0, 0, 0x0D, 3]) + np.array([60000, 60000, 60000], dtype=">u4").tobytes() + bytes(16)
    )
    (tmp_path / "huge.idx").write_bytes(huge)
    with pytest.raises(
        ValueError,
        match=r"expected 864000000000000 bytes of data for shape \(60000, 60000, 60000\)",
    ):
        bp.data.read_idx(tmp_path / "huge.idx")
    (tmp_path / "header.idx").write_bytes(bytes([0, 0, 0x08, 3, 0, 0]))
    with pytest.raises(ValueError, match="truncated IDX header"):
        bp.data.read_idx(tmp_path / "header.idx")


def test_mnist_labels_must_be_class_numbers(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(4, 3, 3)).astype(np.uint8)
    write_idx(tmp_path / "images", images, 0x08)
    write_idx(tmp_path / "floats", np.array([0.0, 2.7, 1.0, 3.0]), 0x0D)
    with pytest.raises(ValueError, match=r"floats: label 2.7\d* \(row 1\) is not a class number"):
        bp.data.read_mnist(tmp_path / "images", tmp_path / "floats")
    write_idx(tmp_path / "whole", np.array([0.0, 2.0, 1.0, 3.0]), 0x0E)
    X, y = bp.data.read_mnist(tmp_path / "images", tmp_path / "whole")
    np.testing.assert_array_equal(bp.to_numpy(y), [0, 2, 1, 3])
    np.testing.assert_allclose(bp.to_numpy(X), images.reshape(4, 9) / images.max(), rtol=1e-6)
    write_idx(tmp_path / "negative", np.array([0, -1, 1, 3]), 0x09)
    with pytest.raises(ValueError, match=r"label -1 \(row 1\) is not a class number"):
        bp.data.read_mnist(tmp_path / "images", tmp_path / "negative")
    write_idx(tmp_path / "three", np.array([0, 1, 1]), 0x08)
    with pytest.raises(ValueError, match="expected 4 labels"):
        bp.data.read_mnist(tmp_path / "images", tmp_path / "three")
    with pytest.raises(ValueError, match="pass the images file first"):
        bp.data.read_mnist(tmp_path / "whole", tmp_path / "images")
    write_idx(tmp_path / "nan_images", np.full((4, 2, 2), np.nan), 0x0D)
    with pytest.raises(ValueError, match=r"nan_images: the data holds NaN \(image 0\)"):
        bp.data.read_mnist(tmp_path / "nan_images", tmp_path / "whole")


def test_read_data_tells_the_formats_apart(tmp_path, usps_sample):
    X, y = usps_sample
    (tmp_path / "u.txt").write_text(usps_text(X, y, header=False))
    assert tuple(bp.data.read_data(tmp_path / "u.txt")[0].shape) == (12, 16)
    write_idx(tmp_path / "i", np.zeros((12, 2, 2), dtype=np.uint8), 0x08)
    write_idx(tmp_path / "l", y.astype(np.uint8), 0x08)
    assert tuple(bp.data.read_data(tmp_path / "i", tmp_path / "l")[0].shape) == (12, 4)


# ---------------------------------------------------------------- split


def test_train_test_split_is_stratified_and_reproducible(backend):
    y_host = np.repeat(np.arange(4), [40, 20, 10, 30])
    X = bp.asarray(np.arange(100.0)[:, None] * np.ones((1, 3)))
    y = bp.asarray(y_host)
    X_tr, X_te, y_tr, y_te = bp.data.train_test_split(X, y, test_size=0.25, seed=3)
    assert tuple(X_tr.shape) == (75, 3) and tuple(X_te.shape) == (25, 3)
    counts = np.bincount(bp.to_numpy(y_te), minlength=4)
    assert counts.sum() == 25 and np.all(np.abs(counts - 0.25 * np.array([40, 20, 10, 30])) < 1)
    rows = np.concatenate([bp.to_numpy(X_tr)[:, 0], bp.to_numpy(X_te)[:, 0]]).astype(int)
    assert sorted(rows) == list(range(100))
    np.testing.assert_array_equal(y_host[bp.to_numpy(X_te)[:, 0].astype(int)], bp.to_numpy(y_te))
    again = bp.data.train_test_split(X, y, test_size=0.25, seed=3)
    np.testing.assert_array_equal(bp.to_numpy(again[1]), bp.to_numpy(X_te))
    other = bp.data.train_test_split(X, y, test_size=0.25, seed=4)
    assert not np.array_equal(bp.to_numpy(other[1]), bp.to_numpy(X_te))


def test_train_test_split_errors():
    X, y = bp.asarray(np.zeros((4, 2))), bp.asarray(np.array([0, 1, 0, 1]))
    with pytest.raises(
        ValueError, match=r"train_test_split: expected X \(n, ...\) and labels y \(n,\)"
    ):
        bp.data.train_test_split(X, y[:3])
    with pytest.raises(ValueError, match="train_test_split: test_size must be a fraction"):
        bp.data.train_test_split(X, y, test_size=1.5)
    with pytest.raises(ValueError, match="both sets need rows"):
        bp.data.train_test_split(X, y, test_size=4)
    with pytest.raises(TypeError, match="train_test_split: test_size must be"):
        bp.data.train_test_split(X, y, test_size="0.25")


def test_reading_your_own_files_needs_only_numpy(tmp_path, usps_sample):
    X, y = usps_sample
    path = tmp_path / "u.txt"
    path.write_text(usps_text(X, y))
    code = (
        "import sys, backprop as bp\n"
        f"X, y = bp.data.read_usps({str(path)!r})\n"
        "parts = bp.data.train_test_split(X, y, test_size=0.25)\n"
        "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
