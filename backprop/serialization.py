"""Saving and loading whole networks: architecture as JSON plus parameters, in one .npz file.

The file is a NumPy ``.npz`` archive read with ``allow_pickle=False``, so
loading a file never runs code. It holds ``__format__``, ``__architecture__``
(UTF-8 JSON as bytes) and one ``param/<name>`` array per parameter, on the
host: a file saved from any backend loads on any other.
"""

from __future__ import annotations

import contextlib
import json

from .backends import use_backend
from .backends.npz import decode_text, load_npz, save_npz_atomic
from .module import MODULE_TYPES, Module

__all__ = ["load", "save"]

FORMAT = 1
_ARCH, _FORMAT, _PARAM = "__architecture__", "__format__", "param/"


def architecture(module: Module) -> dict:
    """The JSON-serialisable description that :func:`load` rebuilds ``module`` from."""
    paths = {id(m): path for path, m in module.named_modules()}

    def describe(m: Module) -> dict:
        node = {"type": type(m).__name__, "config": m.get_config()}
        refs = {}
        for name, target in m.get_references().items():
            if id(target) not in paths:
                raise ValueError(
                    f"backprop.save: {m._label()} refers to {target._label()}, which is not part of the saved network"
                )
            refs[name] = paths[id(target)]
        if refs:
            node["references"] = refs
        children = m.children()
        if children:
            node["children"] = [describe(c) for c in children]
        return node

    return describe(module)


def build(node: dict) -> Module:
    """A fresh module (new parameters) from :func:`architecture`'s description, references resolved."""
    pending = []
    root = _build(node, pending)
    modules = dict(root.named_modules())
    for m, refs in pending:
        for name, path in refs.items():
            if path not in modules:
                raise ValueError(f"{m._label()}: reference {name!r} points to {path!r}, which does not exist")
            m.set_reference(name, modules[path])
    return root


def _build(node: dict, pending: list) -> Module:
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise ValueError(f"malformed architecture entry: {node!r}")
    cls = MODULE_TYPES.get(node["type"])
    if cls is None:
        raise ValueError(
            f"unknown layer type {node['type']!r}; import the module that defines it before loading "
            f"(known types: {', '.join(sorted(MODULE_TYPES))})"
        )
    children = [_build(c, pending) for c in node.get("children", [])]
    try:
        module = cls.from_config(dict(node.get("config", {})), children)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"cannot rebuild {node['type']} from {node.get('config')!r}: {exc}") from None
    if node.get("references"):
        pending.append((module, dict(node["references"])))
    return module


def save(module: Module, path) -> None:
    """Write ``module`` (architecture and parameters) to ``path``, atomically.

    The file is written to a temporary name in the same directory and renamed
    over ``path`` only once complete: an interrupted save leaves the previous
    file intact.
    """
    if not isinstance(module, Module):
        raise TypeError(f"backprop.save: expected a Module, got {type(module).__name__}")
    text = json.dumps({"format": FORMAT, "architecture": architecture(module)})
    arrays = {_FORMAT: str(FORMAT), _ARCH: text}
    for name, p in module.named_parameters():
        arrays[_PARAM + name] = p
    save_npz_atomic(path, arrays)


def load(path, *, backend=None, device=None, dtype=None) -> Module:
    """Rebuild the network saved at ``path``, on the current backend (or the one given).

    Raises FileNotFoundError for a missing file and ValueError (TypeError for
    non-floating parameters) for a truncated or corrupted file, pickled
    content, an unknown layer type, or parameters whose names, shapes or
    values (NaN, infinity) do not fit the architecture.
    """
    try:
        arrays = load_npz(path)
    except ValueError as exc:
        raise ValueError(f"backprop.load: {exc}") from None
    if _ARCH not in arrays or _FORMAT not in arrays:
        raise ValueError(f"backprop.load: {path} is not a backprop model file (no architecture record)")
    try:
        record = json.loads(decode_text(arrays[_ARCH]))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"backprop.load: {path}: the architecture record is corrupted ({exc})") from None
    version = record.get("format") if isinstance(record, dict) else record
    if version != FORMAT:
        raise ValueError(f"backprop.load: {path}: unsupported format {version!r} (this version reads {FORMAT})")
    state = {name[len(_PARAM) :]: value for name, value in arrays.items() if name.startswith(_PARAM)}
    context = use_backend(backend, device, dtype) if (backend or device or dtype) else contextlib.nullcontext()
    with context:
        try:
            module = build(record["architecture"])
            module.load_state_dict(state)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"backprop.load: {path}: {exc}") from None
    return module
