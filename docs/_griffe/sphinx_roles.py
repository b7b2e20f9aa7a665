"""Griffe extension for the API reference: Sphinx-flavoured docstrings rendered as Markdown.

The docstrings are numpydoc with Sphinx roles (``:class:`Module```,
``:func:`~backprop.SGD```) and doctest lines (``>>> net.to("torch")``), as
numpydoc tooling expects. mkdocstrings renders docstrings as Markdown, where a
role would show as raw text and ``>>>`` as nested quotes. Before the
docstrings are parsed, this extension turns

* each role into a cross-reference to the object it names, resolved in the
  scope of the documented object (``Module`` inside ``backprop.module`` is
  ``backprop.module.Module``); the link is optional, so a role naming an
  object that the reference does not render shows as code, not as an error;
* each run of doctest lines into a fenced Python block.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj):`(~?)([^`<>]+?)(?:\(\))?`")
_DOCTEST = re.compile(r"^(\s*)(>>>|\.\.\.)( |$)")


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles and doctest lines in every docstring of the package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        for obj in _walk(pkg, set()):
            if obj.docstring is not None:
                obj.docstring.value = _fence_doctests(_replace_roles(obj, obj.docstring.value))


def _walk(obj, seen: set):
    if obj.path in seen:
        return
    seen.add(obj.path)
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member, seen)


def _resolve(obj, target: str) -> str | None:
    """The full path of ``target`` as Python would find it from ``obj``, or None."""
    if target.startswith("backprop"):
        return target
    head, _, rest = target.partition(".")
    scope = obj
    while scope is not None:
        try:
            path = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError):
            scope = scope.parent
            continue
        return f"{path}.{rest}" if rest else path
    return None


def _replace_roles(obj, text: str) -> str:
    def link(match: re.Match) -> str:
        short, target = match.group(1), match.group(2).strip()
        shown = target.rsplit(".", 1)[-1] if short else target
        path = _resolve(obj, target)
        if path is None:
            return f"`{shown}`"
        return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'

    return _ROLE.sub(link, text)


def _fence_doctests(text: str) -> str:
    out, in_fence, indent = [], False, None  # indent: that of the open doctest block, if any
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else _DOCTEST.match(line)
        if match and match.group(2) == "..." and indent is None:
            match = None  # "..." only continues a doctest, it never starts one
        if match and indent is None:
            indent = match.group(1)
            out.append(indent + "```python")
        elif not match and indent is not None:
            out.append(indent + "```")
            indent = None
        out.append(line)
    if indent is not None:
        out.append(indent + "```")
    return "\n".join(out)
