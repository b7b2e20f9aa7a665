import os
import pickle

import numpy as np
import pytest

import backprop as bp
from backprop import backends
from backprop.backends import npz


def make_net():
    bp.manual_seed(0)
    return bp.Sequentiel(
        bp.Concat(
            bp.Sequentiel(bp.Reshape((8, 8, 1)), bp.Conv2D(3, 1, 4), bp.MaxPool2D(2), bp.Flatten()),
            bp.Sequentiel(bp.Reshape((64, 1)), bp.Conv1D(3, 1, 2, stride=2), bp.AvgPool1D(2), bp.Flatten()),
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
        np.testing.assert_allclose(bp.to_numpy(loaded(bp.asarray(x))), expected, rtol=1e-12, atol=1e-14)
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
    text = npz.decode_text(npz.load_npz(path)["__architecture__"]).replace('"Dropout"', '"Dropin"')
    _rewrite(path, unknown, __architecture__=np.frombuffer(text.encode(), dtype=np.uint8))
    with pytest.raises(ValueError, match="unknown layer type 'Dropin'"):
        bp.load(unknown)
    with pytest.raises(FileNotFoundError):
        bp.load(tmp_path / "missing.npz")


def test_interrupted_save_keeps_previous_file(tmp_path, monkeypatch):
    net, path = _saved(tmp_path)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(backends.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        bp.save(make_net(), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["good.npz"]
    bp.load(path)


def test_save_rejects_non_modules(tmp_path):
    with pytest.raises(TypeError, match="expected a Module"):
        bp.save("net", tmp_path / "x.npz")
