"""Shared fixtures: every test that takes ``backend`` runs on each array library.

``BACKPROP_BACKEND`` (and ``BACKPROP_DEVICE``), when set, restrict the run to
that one backend, e.g. ``BACKPROP_BACKEND=cupy pytest`` on a GPU machine.
A library that is missing, or has no device, is a skip with its reason.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from backprop.backends import BACKENDS, BackendUnavailableError, make_backend

_ORDER = ("numpy", "array_api_strict", "torch", "jax", "cupy")


def _selected() -> tuple[str, ...]:
    name = os.environ.get("BACKPROP_BACKEND", "").strip()
    return (name,) if name in BACKENDS else _ORDER


def _device_for(name: str):
    if os.environ.get("BACKPROP_BACKEND", "").strip() == name:
        return os.environ.get("BACKPROP_DEVICE", "").strip() or None
    return None


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "random_shapes: hypothesis draws new shapes each example; on JAX each new shape compiles "
        "every operation again (seconds per example), so the all-backend run leaves JAX out of "
        "these tests",
    )


def pytest_terminal_summary(terminalreporter):
    """One line per skip reason (pytest's own summary repeats it for every test file)."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = (
            longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        )
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("skips, by reason")
        for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{count:5d} skipped: {reason}")


def pytest_collection_modifyitems(config, items):
    """Deselect the JAX variants of ``random_shapes`` tests, and JAX in float32 where a test also
    runs in float64, unless the run is restricted to JAX.

    They run the standard-only primitives that array_api_strict runs through the same tests;
    JAX's own parity with NumPy is checked on fixed shapes in test_parity.py, and
    ``BACKPROP_BACKEND=jax pytest`` runs them all.
    """
    if os.environ.get("BACKPROP_BACKEND", "").strip() == "jax":
        return
    keep, drop = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        params = spec.params if spec is not None else {}
        jax_case = params.get("backend_name") == "jax"
        # each new shape or dtype compiles every JAX operation again: the all-backend run
        # takes JAX in float64 only where a test runs in both dtypes (float32 on JAX is
        # covered by the parity tests and the trainings)
        if jax_case and (
            item.get_closest_marker("random_shapes") or params.get("dtype") == "float32"
        ):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _available(name: str) -> str:
    """``name``, or a skip naming why its backend cannot be built here."""
    try:
        make_backend(name, _device_for(name), "float32")
    except BackendUnavailableError as exc:
        pytest.skip(f"{name} unavailable: {exc}")
    return name


@pytest.fixture(params=_selected())
def backend_name(request) -> str:
    return _available(request.param)


@pytest.fixture(params=[n for n in _selected() if n != "numpy"])
def other_backend_name(request) -> str:
    """Each backend but NumPy, the reference the parity tests compare it with."""
    return _available(request.param)


@pytest.fixture(params=["float32", "float64"])
def dtype(request) -> str:
    return request.param


@pytest.fixture
def backend(backend_name, dtype):
    """The backend under test, in float32 and float64, made current for the test."""
    with bp.use_backend(backend_name, device=_device_for(backend_name), dtype=dtype) as b:
        bp.manual_seed(0)
        yield b


@pytest.fixture
def f64(backend_name):
    """The backend under test in float64 (for finite-difference checks), made current."""
    with bp.use_backend(backend_name, device=_device_for(backend_name), dtype="float64") as b:
        bp.manual_seed(0)
        yield b


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def tol(b) -> dict:
    """Comparison tolerances for the backend's dtype."""
    return (
        {"rtol": 1e-5, "atol": 1e-6}
        if b.dtype_name == "float32"
        else {"rtol": 1e-12, "atol": 1e-12}
    )


def assert_close(actual, expected, b=None, **kw):
    kw = {**(tol(b) if b is not None else {"rtol": 1e-6, "atol": 1e-8}), **kw}
    np.testing.assert_allclose(bp.to_numpy(actual), np.asarray(expected), **kw)


def assert_like(out, b, shape=None):
    """``out`` is an array of the backend's library, device and dtype (and shape)."""
    kind = bp.backends.kind_of(out)
    assert kind.name == b.name
    assert out.dtype == b.dtype
    assert b.on_device(out)
    if shape is not None:
        assert tuple(out.shape) == tuple(shape)


def try_torch():
    try:
        import torch
    except ImportError:
        pytest.skip("PyTorch is not installed: parity tests against torch.nn.functional skipped")
    return torch


ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m backprop ARGS`` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "backprop", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
