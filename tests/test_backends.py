import numpy as np
import pytest

import backprop as bp
from backprop import backends
from backprop.backends import registry
from conftest import _available, assert_like


def test_unknown_backend_lists_valid_names():
    with pytest.raises(
        ValueError, match="valid names are: numpy, cupy, torch, jax, array_api_strict"
    ):
        bp.set_backend("tensorflow")


def test_unknown_dtype():
    with pytest.raises(ValueError, match="valid dtypes are: float32, float64"):
        bp.use_backend("numpy", dtype="float16").__enter__()


def test_numpy_has_no_gpu():
    with pytest.raises(ValueError, match="CPU only"):
        bp.use_backend("numpy", device="cuda").__enter__()


def test_missing_library_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy.") or name == "array_api_compat.cupy":
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.delitem(registry._CLASSES, "cupy", raising=False)
    with pytest.raises(
        backends.BackendUnavailableError,
        match=r"pip install 'backprop-nn\[cuda12\]' "
        r"\(from a checkout: pip install -e '\.\[cuda12\]'\)",
    ):
        backends.make_backend("cupy")


def test_cupy_without_device_is_a_clear_error():
    try:
        import cupy
    except ImportError:
        _available("cupy")  # the suite's one wording of the skip: "cupy unavailable: ..."
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception:
        n = 0
    if n:
        pytest.skip("a CUDA device is present")
    with pytest.raises(backends.BackendUnavailableError, match="no CUDA device"):
        backends.make_backend("cupy")


def test_torch_cuda_without_gpu_is_a_clear_error():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(backends.BackendUnavailableError, match="CUDA"):
        backends.make_backend("torch", "cuda")


def test_environment_selects_backend(monkeypatch):
    monkeypatch.setattr(backends.selection, "_global", None)
    monkeypatch.setenv("BACKPROP_BACKEND", "array_api_strict")
    monkeypatch.setenv("BACKPROP_DTYPE", "float64")
    monkeypatch.delenv("BACKPROP_DEVICE", raising=False)
    b = bp.get_backend()
    assert (b.name, b.dtype_name) == ("array_api_strict", "float64")
    monkeypatch.setattr(backends.selection, "_global", None)
    monkeypatch.setenv("BACKPROP_BACKEND", "nope")
    with pytest.raises(ValueError, match="environment"):
        bp.get_backend()


def test_set_and_use_backend_nest(monkeypatch):
    monkeypatch.setattr(backends.selection, "_global", None)
    monkeypatch.delenv("BACKPROP_BACKEND", raising=False)
    monkeypatch.delenv("BACKPROP_DTYPE", raising=False)
    bp.set_backend("numpy", dtype="float64")
    assert bp.get_backend().dtype_name == "float64"
    with bp.use_backend("array_api_strict") as outer:
        assert bp.get_backend() is outer and outer.dtype_name == "float64"
        with bp.use_backend(dtype="float32") as inner:
            assert (inner.name, inner.dtype_name) == ("array_api_strict", "float32")
        assert bp.get_backend() is outer
    assert bp.get_backend().name == "numpy"


def test_record_fields(backend):
    assert backend.name in backends.BACKENDS
    assert backend.xp is type(backend).xp
    assert backends.kind_of(bp.asarray([1.0])) is type(backend)
    assert backend.dtype == getattr(backend.xp, backend.dtype_name)
    assert backend.describe().startswith(backend.name + ":")


def test_asarray_floats_take_backend_dtype_and_ints_keep_kind(backend):
    x = bp.asarray([[1.0, 2.0], [3.0, 4.0]])
    assert_like(x, backend, (2, 2))
    labels = bp.asarray(np.array([0, 3, 1]))
    assert backend.xp.isdtype(labels.dtype, "integral")
    np.testing.assert_array_equal(bp.to_numpy(labels), [0, 3, 1])


def test_asarray_from_every_library(backend):
    host = np.arange(6.0).reshape(2, 3)
    sources = [host, host.tolist()]
    for other in ("numpy", "array_api_strict", "torch"):
        try:
            with bp.use_backend(other, dtype="float64"):
                sources.append(bp.asarray(host))
        except backends.BackendUnavailableError:
            pass
    for src in sources:
        out = bp.asarray(src)
        assert_like(out, backend, (2, 3))
        np.testing.assert_array_equal(bp.to_numpy(out), host)


def test_asarray_rejects_non_numbers():
    with pytest.raises(TypeError, match="cannot convert"):
        bp.asarray(np.array(["a", "b"]))


def test_to_numpy_round_trip(backend):
    host = np.random.default_rng(0).normal(size=(3, 4))
    back = bp.to_numpy(bp.asarray(host))
    assert isinstance(back, np.ndarray)
    np.testing.assert_allclose(back, host, rtol=1e-6)


def test_same_seed_same_weights_on_every_backend(backend_name):
    with bp.use_backend(backend_name, dtype="float64"):
        w = bp.to_numpy(backends.uniform(-1, 1, (3, 4), rng=7))
    with bp.use_backend("numpy", dtype="float64"):
        ref = bp.to_numpy(backends.uniform(-1, 1, (3, 4), rng=7))
    np.testing.assert_array_equal(w, ref)


def test_manual_seed_is_reproducible():
    bp.manual_seed(3)
    a = bp.to_numpy(backends.uniform(0, 1, (5,)))
    bp.manual_seed(3)
    b = bp.to_numpy(backends.uniform(0, 1, (5,)))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="rng must be"):
        backends.host_rng("seed")


def test_kind_of_rejects_non_arrays():
    with pytest.raises(TypeError, match="convert it with backprop.asarray"):
        backends.kind_of([1.0, 2.0])


def test_strict_second_device():
    import array_api_strict as strict

    with bp.use_backend("array_api_strict", device="device1") as b:
        x = bp.asarray([1.0, 2.0])
        assert x.device == strict.Device("device1")
        assert b.describe() == "array_api_strict:device1/float32"
    with pytest.raises(ValueError, match="unknown device"):
        bp.use_backend("array_api_strict", device="gpu7").__enter__()


def test_available_backends_reports_reasons():
    report = bp.available_backends()
    assert report["numpy"] is None
    assert set(report) == set(backends.BACKENDS)
    for reason in report.values():
        assert reason is None or isinstance(reason, str)


def test_the_advice_for_an_input_on_another_backend_works(backend_name, other_backend_name):
    """The error for an input from another library or device gives a call that moves it there:
    run as written, it makes the forward pass succeed (``asarray`` alone would move the input to
    the current backend, which is not the network's)."""
    if backend_name == other_backend_name:
        pytest.skip("the same backend")
    import re

    net = bp.Sequentiel(bp.Linear(4, 3), bp.ReLU())
    net.to(other_backend_name)
    with bp.use_backend(backend_name):  # the current backend is not the network's
        x = bp.asarray(np.ones((2, 4)))
        with pytest.raises(TypeError, match="move it there with") as info:
            net.forward(x)
        advice = re.search(r"`(with backprop\.use_backend\(.*?\): x = backprop\.asarray\(x\))`",
                           str(info.value)).group(1)  # fmt: skip
        scope = {"backprop": bp, "x": x}
        exec(advice, scope)
        out = net.forward(scope["x"])
    np.testing.assert_allclose(bp.to_numpy(out), bp.to_numpy(net.forward(scope["x"])))
    assert type(out) is type(scope["x"]) and tuple(out.shape) == (2, 3)


def test_the_advice_for_an_input_on_another_device_works():
    pytest.importorskip("array_api_strict")
    import re

    net = bp.Sequentiel(bp.Linear(4, 3), bp.ReLU())
    net.to("array_api_strict", device="device1")
    with bp.use_backend("array_api_strict"):  # CPU_DEVICE
        x = bp.asarray(np.ones((2, 4)))
        with pytest.raises(ValueError, match="input is on device") as info:
            net.forward(x)
    advice = re.search(r"`(with .*?)`", str(info.value)).group(1)
    assert "device='device1'" in advice
    scope = {"backprop": bp, "x": x}
    exec(advice, scope)
    assert tuple(net.forward(scope["x"]).shape) == (2, 3)


def test_a_missing_cupy_is_skipped_in_the_suite_s_one_wording():
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is installed")
    with pytest.raises(pytest.skip.Exception, match=r"^cupy unavailable: backend 'cupy' is not"):
        test_cupy_without_device_is_a_clear_error()
