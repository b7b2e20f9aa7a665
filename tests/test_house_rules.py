"""Rules of the code base that a test can check."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = {"numpy", "cupy", "cupyx", "torch"}


def _imports(path: pathlib.Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.partition(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module.partition(".")[0]


def test_only_backends_import_array_libraries():
    """backprop/backends/ computes with the array libraries; backprop/io/ reads and writes files
    with NumPy on the host (its own rule: nothing else of NumPy, and no GPU library)."""
    offenders = []
    for path in (ROOT / "backprop").rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("backprop", "backends"):
            continue
        if rel.parts[:2] == ("backprop", "io"):
            offenders += [
                f"{rel}:{line} imports {name}"
                for line, name in _imports(path)
                if name in FORBIDDEN - {"numpy"}
            ]
            continue
        offenders += [
            f"{rel}:{line} imports {name}" for line, name in _imports(path) if name in FORBIDDEN
        ]
    assert not offenders, "only backprop/backends/ (and io/, numpy) may import them:\n" + "\n".join(
        offenders
    )


def test_no_assert_statements_in_library_code():
    offenders = []
    for path in (ROOT / "backprop").rglob("*.py"):
        tree = ast.parse(path.read_text())
        offenders += [
            f"{path.relative_to(ROOT)}:{n.lineno}"
            for n in ast.walk(tree)
            if isinstance(n, ast.Assert)
        ]
    assert not offenders, "user errors must raise, not assert:\n" + "\n".join(offenders)


def test_public_names_are_exported():
    import backprop

    for name in backprop.__all__:
        assert hasattr(backprop, name), name


def test_main_job_runs():
    out = subprocess.run(
        [sys.executable, "-m", "backprop"], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("test accuracy") >= 2, out.stdout
