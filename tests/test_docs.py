"""The documentation: the API reference covers every public name and builds in strict mode.

``mkdocs build --strict`` fails on a docstring that griffe cannot parse, on a
reference to a name that no longer exists and on a broken link, so building
here makes the suite catch them. The build needs the ``docs`` extra; without
it those tests skip.
"""

import importlib
import pathlib
import re
import subprocess
import sys

import pytest

import backprop
from backprop._install import install_hint

ROOT = pathlib.Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"


def documented_names() -> set[str]:
    """Every ``::: identifier`` rendered by the API pages; a module's entry (one family of
    layers) renders the names of its ``__all__``, as ``backprop.NAME`` where backprop exports
    them."""
    names = set()
    for page in API.glob("*.md"):
        for name in re.findall(r"^::: (\S+)", page.read_text(), flags=re.M):
            names.add(name)
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            names.update(
                f"backprop.{member}"
                for member in getattr(module, "__all__", ())
                if getattr(backprop, member, None) is getattr(module, member)
            )
    return names


def test_every_public_name_has_a_reference_entry():
    documented = documented_names()
    missing = [name for name in backprop.__all__ if f"backprop.{name}" not in documented]
    assert not missing, f"add these public names to a page in docs/api/: {missing}"


def test_scikit_learn_estimators_have_a_reference_entry():
    source = (ROOT / "backprop" / "sklearn.py").read_text()
    public = re.search(r"__all__ = \[([^\]]*)\]", source).group(1)
    names = re.findall(r'"(\w+)"', public)
    documented = documented_names()
    assert names and all(f"backprop.sklearn.{n}" in documented for n in names), names


def test_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = ["index.md", "assignment.md", "autoencoder.md", "benchmarks.md"]
    pages += [f"api/{p.name}" for p in sorted(API.glob("*.md"))]
    assert [p for p in pages if p not in nav] == []


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    missing = f"the docs extra is not installed: {install_hint('docs')}"
    pytest.importorskip("mkdocs", reason=missing)
    pytest.importorskip("mkdocstrings_handlers.python", reason=missing)
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stdout}\n{build.stderr}"
    return out


def test_docs_build_in_strict_mode(site):
    layers = (site / "api" / "layers" / "index.html").read_text()
    for name in ("Module", "Linear", "Conv1D", "MaxPool1D", "Flatten"):
        assert f'id="backprop.{name}"' in layers, name
    assert (site / "assignment" / "index.html").exists()


def test_docstrings_are_rendered_as_markdown(site):
    """Sphinx roles become links or code, doctest lines become code blocks."""
    for page in (site / "api").rglob("index.html"):
        html = page.read_text()
        assert not re.search(r":(class|func|meth|attr|mod|data|exc):`", html), page
        assert "<blockquote>" not in html, page  # '>>>' read as nested quotes
    containers = (site / "api" / "containers" / "index.html").read_text()
    assert 'href="../layers/#backprop.Module"' in containers  # :class:`Module` in Sequentiel
