import io
import json
import os
import pickle
import struct
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import backprop as bp
from backprop import backends
from backprop.io import npz


def make_net():
    bp.manual_seed(0)
    return bp.Sequentiel(
        bp.Concat(
            bp.Sequentiel(bp.Reshape((8, 8, 1)), bp.Conv2D(3, 1, 4), bp.MaxPool2D(2), bp.Flatten()),
            bp.Sequentiel(
                bp.Reshape((64, 1)), bp.Conv1D(3, 1, 2, stride=2), bp.AvgPool1D(2), bp.Flatten()
            ),
            axis=1,
        ),
        bp.Dropout(0.2),
        bp.Linear(66, 10),
        bp.LogSoftmax(),
    )


def params(net):
    return {k: bp.to_numpy(v).copy() for k, v in net.state_dict().items()}


def test_round_trip_bitwise(backend, tmp_path, rng):
    net = make_net().eval()
    path = tmp_path / "net.npz"
    bp.save(net, path)
    loaded = bp.load(path).eval()
    assert repr(loaded) == repr(net)
    for (k, a), (k2, b) in zip(params(net).items(), params(loaded).items()):
        assert k == k2 and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    x = bp.asarray(rng.random((5, 64)))
    np.testing.assert_array_equal(bp.to_numpy(net(x)), bp.to_numpy(loaded(x)))


@pytest.mark.parametrize("source", ["torch", "array_api_strict"])
def test_save_on_one_backend_load_on_numpy(tmp_path, rng, source):
    try:
        with bp.use_backend(source, dtype="float64"):
            net = make_net().eval()
            x = rng.random((4, 64))
            expected = bp.to_numpy(net(bp.asarray(x)))
            bp.save(net, tmp_path / "m.npz")
    except backends.BackendUnavailableError as exc:
        pytest.skip(str(exc))
    with bp.use_backend("numpy", dtype="float64"):
        loaded = bp.load(tmp_path / "m.npz").eval()
        # parameters are bitwise equal; another library's BLAS may round the last bit differently
        np.testing.assert_allclose(
            bp.to_numpy(loaded(bp.asarray(x))), expected, rtol=1e-12, atol=1e-14
        )
        for a, b in zip(params(net).values(), params(loaded).values()):
            np.testing.assert_array_equal(a, b)


def test_state_dict_round_trip_and_validation(backend):
    net = make_net()
    other = make_net()
    for p in other.parameters():
        p += 1.0
    state = params(other)
    net.load_state_dict(state)
    for a, b in zip(params(net).values(), state.values()):
        np.testing.assert_array_equal(a, b)
    before = params(net)
    bad_shape = dict(state, **{"2.weight": np.zeros((3, 3))})
    with pytest.raises(ValueError, match=r"'2.weight' has shape \(3, 3\), expected \(66, 10\)"):
        net.load_state_dict(bad_shape)
    with pytest.raises(ValueError, match=r"missing \['2.bias'\], unexpected \[\]"):
        net.load_state_dict({k: v for k, v in state.items() if k != "2.bias"})
    nan = dict(state, **{"2.bias": np.full(10, np.nan)})
    with pytest.raises(ValueError, match="'2.bias' holds NaN"):
        net.load_state_dict(nan)
    ints = dict(state, **{"2.bias": np.zeros(10, dtype=np.int64)})
    with pytest.raises(TypeError, match="expected a floating dtype"):
        net.load_state_dict(ints)
    for a, b in zip(params(net).values(), before.values()):  # unchanged by the failed loads
        np.testing.assert_array_equal(a, b)


def _saved(tmp_path):
    net = make_net()
    path = tmp_path / "good.npz"
    bp.save(net, path)
    return net, path


def _rewrite(path, target, **changes):
    arrays = npz.load_npz(path)
    arrays.update(changes)
    np.savez(target, **arrays)


def test_refuses_pickles(tmp_path):
    crafted = tmp_path / "evil.npz"
    with open(crafted, "wb") as f:
        pickle.dump({"x": os.system}, f)
    with pytest.raises(ValueError, match="not a readable .npz archive"):
        bp.load(crafted)
    obj = tmp_path / "objects.npz"
    np.savez(obj, __architecture__=np.array([os.system], dtype=object), __format__=np.array([1]))
    with pytest.raises(ValueError, match="not a readable .npz archive"):
        bp.load(obj)


def test_refuses_truncated_and_mismatched_files(tmp_path):
    net, path = _saved(tmp_path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.npz is not a readable"):
        bp.load(truncated)
    wrong = tmp_path / "wrong.npz"
    _rewrite(path, wrong, **{"param/2.weight": np.zeros((65, 10), dtype=np.float32)})
    with pytest.raises(ValueError, match=r"'2.weight' has shape \(65, 10\)"):
        bp.load(wrong)
    nan = tmp_path / "nan.npz"
    _rewrite(path, nan, **{"param/2.bias": np.full(10, np.nan, dtype=np.float32)})
    with pytest.raises(ValueError, match="holds NaN or infinite values"):
        bp.load(nan)
    unknown = tmp_path / "unknown.npz"
    text = npz.decode_text(npz.load_npz(path)["__architecture__"]).replace('.Dropout"', '.Dropin"')
    _rewrite(path, unknown, __architecture__=np.frombuffer(text.encode(), dtype=np.uint8))
    with pytest.raises(ValueError, match="unknown layer type 'backprop.dropout.Dropin'"):
        bp.load(unknown)
    with pytest.raises(FileNotFoundError):
        bp.load(tmp_path / "missing.npz")


def test_interrupted_save_keeps_previous_file(tmp_path, monkeypatch):
    net, path = _saved(tmp_path)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(npz.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        bp.save(make_net(), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["good.npz"]
    bp.load(path)


def test_save_rejects_non_modules(tmp_path):
    with pytest.raises(TypeError, match="expected a Module"):
        bp.save("net", tmp_path / "x.npz")


# ------------------------------------------------------------ hostile files


def _npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _zip(path, entries, compression=zipfile.ZIP_STORED):
    """An .npz written by hand: ``entries`` is a list of (name, array or raw .npy bytes)."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicated names some tests write
        for name, value in entries:
            zf.writestr(name + ".npy", value if isinstance(value, bytes) else _npy_bytes(value))
    return path


def _declare_size(data: bytearray, name: bytes, size: int) -> None:
    """Declare ``size`` as the uncompressed size of ``name`` (local header and directory)."""
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = data.find(signature)
        while data[at + name_at : at + name_at + len(name)] != name:
            at = data.find(signature, at + 1)
        data[at + size_at : at + size_at + 4] = struct.pack("<I", size)


def _text_array(text):
    return np.frombuffer(text.encode(), dtype=np.uint8)


def _model_entries(architecture, params):
    record = json.dumps({"format": 1, "architecture": architecture})
    return [("__format__", _text_array("1")), ("__architecture__", _text_array(record))] + [
        ("param/" + k, v) for k, v in params.items()
    ]


def _peak_mib(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def test_unused_huge_entry_is_never_decompressed(tmp_path):
    net, path = _saved(tmp_path)
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bomb, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(
            "junk.npy", np.random.default_rng(0).bytes(1 << 20), compress_type=zipfile.ZIP_DEFLATED
        )
    # declare 1 GiB for junk.npy (deflate allows ~1030:1, so 1 MiB may hold it)
    data = bytearray(bomb.read_bytes())
    _declare_size(data, b"junk.npy", 1 << 30)
    bomb.write_bytes(bytes(data))
    assert bomb.stat().st_size < 1.2 * 2**20
    with zipfile.ZipFile(bomb) as zf:
        assert zf.getinfo("junk.npy").file_size == 1 << 30
    peak = _peak_mib(lambda: bp.load(bomb))
    assert peak < 32, f"loading took {peak:.0f} MiB"
    with pytest.raises(
        ValueError, match="'junk'"
    ):  # read on purpose: the damaged stream is refused
        npz.load_npz(bomb, names=["junk"])


def test_small_file_declaring_a_huge_layer_fails_before_allocating(tmp_path):
    arch = {
        "type": "Sequentiel",
        "children": [{"type": "Linear", "config": {"input": 15000, "output": 15000}}],
    }
    small = {"0.weight": np.zeros((2, 2), np.float32), "0.bias": np.zeros(2, np.float32)}
    path = _zip(tmp_path / "small.npz", _model_entries(arch, small), zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 1500
    errors = []
    peak = _peak_mib(lambda: errors.append(pytest.raises(ValueError, bp.load, path)))
    assert peak < 8, f"failing took {peak:.0f} MiB"
    assert "'0.weight' has shape (2, 2), expected (15000, 15000)" in str(errors[0].value)
    # the same, with the parameters missing
    path = _zip(tmp_path / "none.npz", _model_entries(arch, {}))
    peak = _peak_mib(lambda: errors.append(pytest.raises(ValueError, bp.load, path)))
    assert peak < 8 and "parameter '0.weight' is missing" in str(errors[1].value)


def test_npy_header_declaring_more_than_the_entry_holds(tmp_path):
    arch = {"type": "Linear", "config": {"input": 15000, "output": 15000, "bias": False}}
    header = _npy_bytes(
        np.zeros((15000, 15000), np.float32)[:0]
    )  # a real header, then patch the shape
    header = header.replace(b"(0, 15000)", b"(15000, 15000)")
    path = _zip(tmp_path / "liar.npz", _model_entries(arch, {"weight": header + bytes(64)}))
    peak = _peak_mib(lambda: pytest.raises(ValueError, bp.load, path))
    assert peak < 8
    with pytest.raises(
        ValueError, match=r"declares an array of shape \(15000, 15000\) .* but holds \d+ bytes"
    ):
        bp.load(path)


def test_duplicated_entries_are_refused(tmp_path):
    net, path = _saved(tmp_path)
    entries = [(name, array) for name, array in npz.load_npz(path).items()]
    entries.append(("param/2.bias", np.zeros(10, np.float32)))
    dup = _zip(tmp_path / "dup.npz", entries)
    with pytest.raises(
        ValueError,
        match=r"dup.npz is not a readable .npz archive \(the entry 'param/2.bias.npy' appears tw",
    ):
        bp.load(dup)


@pytest.mark.parametrize(
    "content,message",
    [
        (lambda p: np.save(p, np.zeros(3)), "a single .npy array"),
        (lambda p: p.write_text("Linear 64 10\n"), "a text file"),
        (lambda p: p.write_bytes(b""), "the file is empty"),
        (lambda p: p.write_bytes(b"PK\x03\x04" + bytes(40)), "no zip directory"),
        (lambda p: p.write_bytes(bytes(range(256)) * 4), "does not start like a zip archive"),
    ],
)
def test_files_that_are_not_models(tmp_path, content, message):
    path = tmp_path / "model.npz"
    content(path)
    if not path.exists():  # np.save appends .npy
        path = tmp_path / "model.npz.npy"
    with pytest.raises(
        ValueError, match=f"backprop.load: .* is not a readable .npz archive .*{message}"
    ):
        bp.load(path)


def test_records_that_are_not_models(tmp_path):
    plain = _zip(tmp_path / "plain.npz", [("x", np.zeros(3))])
    with pytest.raises(
        ValueError, match=r"not a backprop model file \(no architecture record; its arrays: 'x'\)"
    ):
        bp.load(plain)
    cases = [
        ({"format": 1}, "lacks 'architecture'"),
        ([1, 2], "the architecture record is a list"),
        ({"format": 2, "architecture": {}}, "unsupported format 2"),
        ({"format": 1, "architecture": {"config": {}}}, "the root module has no 'type' name"),
        (
            {"format": 1, "architecture": {"type": "Linear", "config": [64, 10]}},
            "'config' that is not a dict",
        ),
        (
            {"format": 1, "architecture": {"type": "Sequentiel", "children": [3]}},
            "module '0' is a int",
        ),
        (
            {
                "format": 1,
                "architecture": {"type": "Linear", "config": {"input": "64", "output": 10}},
            },
            "cannot rebuild Linear",
        ),
        (
            {"format": 1, "architecture": {"type": "Linear", "config": {"inputs": 64}}},
            "cannot rebuild Linear",
        ),
    ]
    for record, message in cases:
        entries = [
            ("__format__", _text_array("1")),
            ("__architecture__", _text_array(json.dumps(record))),
        ]
        path = _zip(tmp_path / "r.npz", entries)
        with pytest.raises(ValueError, match=rf"backprop.load: .*r.npz.*{message}"):
            bp.load(path)
    entries = [
        ("__format__", _text_array("1")),
        ("__architecture__", _text_array("[" * 100000 + "]" * 100000)),
    ]
    with pytest.raises(ValueError, match="corrupted"):
        bp.load(_zip(tmp_path / "deep_json.npz", entries))
    entries = [("__format__", _text_array("1")), ("__architecture__", np.array([1.5, 2.5]))]
    with pytest.raises(ValueError, match="architecture record is corrupted"):
        bp.load(_zip(tmp_path / "floats.npz", entries))


def test_deep_or_huge_architectures_are_refused(tmp_path):
    node = {"type": "Flatten"}
    for _ in range(300):
        node = {"type": "Sequentiel", "children": [node]}
    with pytest.raises(ValueError, match="nested more than 64 levels"):
        bp.load(_zip(tmp_path / "deep.npz", _model_entries(node, {})))
    wide = {"type": "Sequentiel", "children": [{"type": "Flatten"}] * 200_001}
    with pytest.raises(ValueError, match="more than 100000 modules"):
        bp.load(_zip(tmp_path / "wide.npz", _model_entries(wide, {})))


def test_parameters_checked_against_the_architecture_before_reading(tmp_path):
    arch = {"type": "Linear", "config": {"input": 3, "output": 2}}
    good = {"weight": np.zeros((3, 2), np.float32), "bias": np.zeros(2, np.float32)}
    assert bp.load(_zip(tmp_path / "ok.npz", _model_entries(arch, good))).in_features == 3
    extra = dict(good, other=np.zeros(1, np.float32))
    with pytest.raises(
        ValueError, match=r"holds parameters its architecture does not have: \['other'\]"
    ):
        bp.load(_zip(tmp_path / "extra.npz", _model_entries(arch, extra)))
    ints = dict(good, bias=np.zeros(2, np.int32))
    with pytest.raises(
        TypeError, match="backprop.load: .*'bias' has dtype int32, expected a floating dtype"
    ):
        bp.load(_zip(tmp_path / "ints.npz", _model_entries(arch, ints)))
    objects = dict(good, bias=np.array([None, None], dtype=object))
    with pytest.raises(ValueError, match="holds object values; only numbers are read"):
        bp.load(_zip(tmp_path / "objects.npz", _model_entries(arch, objects)))
    structured = dict(good, bias=np.zeros(2, dtype=[("a", "f4")]))
    with pytest.raises(ValueError, match="only numbers are read"):
        bp.load(_zip(tmp_path / "records.npz", _model_entries(arch, structured)))


def test_tied_layers_are_checked_before_building(tmp_path):
    arch = {
        "type": "Sequentiel",
        "children": [
            {"type": "Linear", "config": {"input": 4, "output": 2}},
            {
                "type": "TiedLinear",
                "config": {"input": 2, "output": 40000},
                "references": {"linear": "0"},
            },
        ],
    }
    params = {
        "0.weight": np.zeros((4, 2), np.float32),
        "0.bias": np.zeros(2, np.float32),
        "1.bias": np.zeros(40000, np.float32),
    }
    with pytest.raises(
        ValueError,
        match=r"TiedLinear '1' \(2 -> 40000\) cannot share the weight of Linear '0' \(4 -> 2\)",
    ):
        bp.load(_zip(tmp_path / "tied.npz", _model_entries(arch, params)))


def test_damaged_archives(tmp_path):
    net, path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.find(b"param/2.weight")
    data[at + 200] ^= 0xFF  # a byte of the weight's data: the CRC no longer matches
    (tmp_path / "crc.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="Bad CRC-32"):
        bp.load(tmp_path / "crc.npz")
    with zipfile.ZipFile(tmp_path / "bz2.npz", "w", compression=zipfile.ZIP_BZIP2) as zf:
        zf.writestr("x.npy", _npy_bytes(np.zeros(3)))
    with pytest.raises(ValueError, match="uses compression method 12"):
        bp.load(tmp_path / "bz2.npz")


def test_too_many_entries(tmp_path, monkeypatch):
    path = _zip(tmp_path / "many.npz", [(f"x{i}", np.zeros(1)) for i in range(20)])
    monkeypatch.setattr(npz, "MAX_ENTRIES", 10)
    with pytest.raises(ValueError, match="announces 20 entries, more than the 10 allowed"):
        bp.load(path)


def test_load_errors_are_oserrors_for_the_system(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        bp.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        bp.load(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="backprop.load: expected a file path, got int"):
        bp.load(3)


# ------------------------------------------------------------ saving


def test_save_into_a_missing_directory_names_the_path(tmp_path):
    target = tmp_path / "no" / "such" / "net.npz"
    with pytest.raises(
        FileNotFoundError,
        match=f"backprop.save: cannot write {target}: the directory .* does not exist",
    ):
        bp.save(make_net(), target)
    with pytest.raises(IsADirectoryError, match=f"cannot write {tmp_path}: it is a directory"):
        bp.save(make_net(), tmp_path)


def test_save_into_a_read_only_directory_names_the_path(tmp_path, monkeypatch):
    target = tmp_path / "net.npz"
    real_open = os.open

    def refuse(path, flags, mode=0o777, **kw):
        if str(path).startswith(str(tmp_path)):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(npz.os, "open", refuse)  # also when the tests run as root
    with pytest.raises(
        PermissionError,
        match=f"backprop.save: cannot write {target}: cannot create a file in {tmp_path}",
    ):
        bp.save(make_net(), target)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        bp.save(make_net(), tmp_path / "net.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "net.npz").stat().st_mode & 0o777 == 0o666 & ~umask


def test_overwriting_keeps_the_mode(tmp_path):
    path = tmp_path / "net.npz"
    bp.save(make_net(), path)
    os.chmod(path, 0o640)
    bp.save(make_net(), path)
    assert path.stat().st_mode & 0o777 == 0o640
    bp.load(path)


def test_save_refuses_non_finite_parameters(tmp_path, backend):
    net = make_net()
    p = net[2]._parameters["weight"]
    net[2]._parameters["weight"] = p * float("nan")
    with pytest.raises(
        ValueError,
        match=r"backprop.save: parameter '2.weight' holds NaN or infinite .* was not written",
    ):
        bp.save(net, tmp_path / "nan.npz")
    assert not (tmp_path / "nan.npz").exists()
