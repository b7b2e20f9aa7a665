"""The notebook in examples/ runs from top to bottom, its plots render inline and its numbers
hold, executed by a Jupyter kernel (nbclient) as a reader would run it."""

from __future__ import annotations

import os
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "assignment.ipynb"

nbformat = pytest.importorskip("nbformat", reason="the test extra is not installed (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="the test extra is not installed (nbclient)")
pytest.importorskip("ipykernel", reason="the test extra is not installed (ipykernel)")
pytest.importorskip("matplotlib", reason="the notebook plots with matplotlib")
pytest.importorskip("sklearn", reason="the notebook reads the bundled digits")


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_the_notebook_runs_and_shows_its_plots(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    )
    monkeypatch.setenv("BACKPROP_BACKEND", "numpy")
    monkeypatch.delenv("BACKPROP_DEVICE", raising=False)
    monkeypatch.delenv("BACKPROP_MAX_EPOCHS", raising=False)  # the notebook's own epochs
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # a failing cell raises CellExecutionError with its traceback
    code = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    images = sum("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", []))
    assert images == 4, images  # every plot rendered inline
    text = "\n".join(_text(c) for c in code)
    mlp = float(re.search(r"^test accuracy: ([0-9.]+)", text, flags=re.M).group(1))  # Part 3
    cnn = float(re.search(r"1-D CNN test accuracy: ([0-9.]+)", text).group(1))
    three = float(re.search(r"accuracy, 3 against the rest: ([0-9.]+)", text).group(1))
    assert mlp >= 0.95 and cnn >= 0.95 and three >= 0.95, (mlp, cnn, three)
    assert "backward rules agree with finite differences: True" in text
    # the progress bars drew (tqdm writes them on stderr, shown under the cell)
    assert "30/30" in text and "10/10" in text
