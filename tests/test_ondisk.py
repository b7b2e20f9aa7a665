"""backprop.io.ondisk: memory-mapped .npy files read a block of rows at a time."""

import numpy as np
import pytest

from backprop.io.ondisk import host_arange, is_memmap, open_npy, read_rows, save_npy


@pytest.fixture
def npy(tmp_path):
    data = np.arange(60, dtype=np.float32).reshape(10, 2, 3)
    path = tmp_path / "x.npy"
    save_npy(path, data)
    return path, data


def test_open_maps_without_reading(npy):
    path, data = npy
    x = open_npy(path)
    assert isinstance(x, np.memmap) and x.shape == data.shape and x.dtype == data.dtype
    assert is_memmap(x)
    assert not is_memmap(x[2:])  # a slice shares the parent's offset: read by slicing instead
    assert not is_memmap(data)


@pytest.mark.parametrize(("start", "stop"), [(0, 10), (3, 7), (9, 10), (4, 4)])
def test_read_rows_matches_slicing(npy, start, stop):
    path, data = npy
    x = open_npy(path)
    block = read_rows(x, start, stop)
    np.testing.assert_array_equal(block, data[start:stop])
    assert not isinstance(block, np.memmap) and block.flags.writeable
    assert not np.shares_memory(block, x)


def test_read_rows_of_other_arrays_copies(npy):
    path, data = npy
    view = open_npy(path)[2:]
    block = read_rows(view, 1, 3)
    np.testing.assert_array_equal(block, data[3:5])
    block[...] = -1
    np.testing.assert_array_equal(read_rows(data, 0, 2), data[:2])
    assert read_rows(data, 0, 2) is not data


def test_read_rows_of_a_truncated_file(tmp_path):
    path = tmp_path / "x.npy"
    save_npy(path, np.ones((100, 4)))
    x = open_npy(path)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 64)
    # truncated after it was opened: another size than the header was read with
    with pytest.raises(ValueError, match="changed since it was opened"):
        read_rows(x, 90, 100)


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        open_npy(tmp_path / "missing.npy")
    with pytest.raises(IsADirectoryError):
        open_npy(tmp_path)
    text = tmp_path / "text.npy"
    text.write_text("1 2 3\n")
    with pytest.raises(ValueError, match="not a .npy file"):
        open_npy(text)
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="cannot be memory-mapped|expected numbers"):
        open_npy(objects)
    scalar = tmp_path / "scalar.npy"
    np.save(scalar, np.float64(3.0))
    with pytest.raises(ValueError, match="0-d"):
        open_npy(scalar)
    with pytest.raises(TypeError, match="file path"):
        open_npy(3.5)


def test_host_arange():
    np.testing.assert_array_equal(host_arange(2, 5), [2, 3, 4])
    assert host_arange(0, 3).dtype == np.int64
