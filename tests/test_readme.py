"""Every python block of the README runs, on every CPU backend of the suite.

The blocks run in order in one interpreter per backend (later blocks use the
names earlier ones defined, as a reader pasting them into one session would),
in a fresh interpreter, from an empty directory, with ``BACKPROP_BACKEND``
set and ``BACKPROP_MAX_EPOCHS=2`` (the documented cap on every training's
epochs) so that a run takes seconds. The blocks are run as written: a
traceback points at the README's own line. A block that must start its own
interpreter (it sets an environment variable before importing scikit-learn)
runs alone.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# under a __main__ guard: the Dask workers a block starts import this script again
RUNNER = """
import json, sys, traceback

if __name__ == "__main__":
    for line, code in json.load(open(sys.argv[1])):
        # blank lines in front, so that a traceback names the README's line
        source = compile("\\n" * (line - 1) + code, "README.md", "exec")
        try:
            exec(source, globals())
        except BaseException:
            traceback.print_exc()
            sys.exit(f"the README's python block at line {line} failed")
    print("all blocks ran")
"""


def readme_blocks() -> list[tuple[int, str]]:
    """``(first line of code, code)`` of every python block of the README."""
    text = README.read_text()
    return [
        (text.count("\n", 0, m.start(1)) + 1, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.M | re.S)
    ]


def _alone(code: str) -> bool:
    return "os.environ[" in code  # sets the environment before its imports


def _run(blocks, backend_name: str, tmp_path: pathlib.Path) -> str:
    import json

    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    (tmp_path / "runner.py").write_text(RUNNER)
    env = dict(os.environ)
    env.update(BACKPROP_BACKEND=backend_name, BACKPROP_MAX_EPOCHS="2", MPLBACKEND="Agg")
    env.pop("BACKPROP_DEVICE", None) if os.environ.get("BACKPROP_BACKEND") != backend_name else None
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, "runner.py", "blocks.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, f"{out.stderr[-6000:]}\n{out.stdout[-2000:]}"
    assert out.stdout.rstrip().endswith("all blocks ran"), out.stdout
    return out.stdout


def test_the_readme_has_the_blocks_this_file_runs():
    blocks = readme_blocks()
    assert len(blocks) >= 8, blocks
    assert sum(_alone(code) for _, code in blocks) == 1


@pytest.mark.slow
def test_readme_python_blocks_in_one_session(backend_name, tmp_path):
    for module in ("sklearn", "onnxruntime", "distributed", "tqdm"):
        pytest.importorskip(module, reason=f"the README's blocks use {module}")
    blocks = [b for b in readme_blocks() if not _alone(b[1])]
    out = _run(blocks, backend_name, tmp_path)
    # the assignment's first block printed an accuracy (2 epochs: above chance already)
    assert float(out.split()[0]) > 0.5, out
    for name in ("run.npz", "digits.npz", "cnn.onnx", "X.npy"):
        assert (tmp_path / name).exists(), name


@pytest.mark.slow
def test_readme_block_that_starts_its_own_interpreter(backend_name, tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("torch")
    blocks = [b for b in readme_blocks() if _alone(b[1])]
    _run(blocks, backend_name, tmp_path)
