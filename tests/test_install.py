"""Install hints: the distribution's name on the package index, and every hint a user reads
(README, docs, error messages, skip reasons) names it and an extra that exists."""

from __future__ import annotations

import pathlib
import re

import pytest

from backprop._install import DISTRIBUTION, install_hint

tomllib = pytest.importorskip("tomllib", reason="tomllib comes with Python 3.11")

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: hints written before the name changed, in a file rewritten separately (same wording then)
_ELSEWHERE: set[str] = set()


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _files():
    patterns = ("*.md", "docs/*.md", "docs/api/*.md", "backprop/**/*.py", "tests/*.py")
    patterns += ("benchmarks/*.py", "examples/*.py", "examples/*.ipynb", "pyproject.toml")
    for pattern in patterns:
        for path in sorted(ROOT.glob(pattern)):
            skip = path.name in ("CHANGELOG.md", "test_install.py")  # history; this file's regex
            if path.relative_to(ROOT).as_posix() not in _ELSEWHERE and not skip:
                yield path


def test_the_distribution_is_not_the_index_s_other_backprop():
    project = _project()
    assert project["name"] == DISTRIBUTION == "backprop-nn"
    assert project["scripts"] == {"backprop": "backprop.cli:main"}  # the command keeps its name
    for extra in ("test", "dev"):
        for requirement in project["optional-dependencies"][extra]:
            assert not requirement.startswith("backprop["), requirement


def test_every_install_hint_names_the_distribution_and_an_extra_that_exists():
    extras = set(_project()["optional-dependencies"])
    stale, unknown, seen = [], [], 0
    for path in _files():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            where = f"{path.relative_to(ROOT)}:{number}"
            # 'backprop[x]' quoted, or after pip install ("backprop[numpy]" is a benchmark label)
            if re.search(r"'backprop\[|pip install (?:-\S+ )*backprop\[", line):
                stale.append(where)
            for name in re.findall(r"backprop-nn\[([\w,]+)\]|-e '\.\[([\w,]+)\]'", line):
                seen += 1
                unknown += [
                    f"{where}: {e}" for e in ",".join(name).split(",") if e and e not in extras
                ]
    assert not stale, f"install hints that fetch the index's other 'backprop': {stale}"
    assert not unknown, f"extras that pyproject.toml does not define: {unknown}"
    assert seen > 10


def test_the_hint_works_from_the_index_and_from_a_checkout():
    assert install_hint("onnx") == (
        "pip install 'backprop-nn[onnx]' (from a checkout: pip install -e '.[onnx]')"
    )
    assert install_hint() == "pip install backprop-nn (from a checkout: pip install -e .)"


def test_a_missing_library_s_error_gives_the_hint():
    from backprop.backends import registry

    for name, (*_, hint) in registry.REGISTRY.items():
        assert DISTRIBUTION in hint and "pip install -e" in hint, (name, hint)


def test_every_description_names_the_backends():
    described = [
        _project()["description"],
        (ROOT / "mkdocs.yml").read_text(),
        (ROOT / "docs" / "index.md").read_text().split("\n\n")[1],
    ]
    for text in described:
        for name in ("NumPy", "PyTorch", "JAX", "CuPy"):
            assert name in text, (name, text)
