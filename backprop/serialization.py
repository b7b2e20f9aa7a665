"""Saving and loading whole networks: architecture as JSON plus parameters, in one .npz file.

The file is a NumPy ``.npz`` archive read with ``allow_pickle=False``, so
loading a file never runs code. It holds ``__format__``, ``__architecture__``
(UTF-8 JSON as bytes) and one ``param/<name>`` array per parameter, on the
host: a file saved from any backend loads on any other.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import TYPE_CHECKING

from .backends import Backend, namespace_of, use_backend
from .io.npz import NpzArchive, decode_text, save_npz_atomic
from .module import Module, module_type, type_name

if TYPE_CHECKING:
    from ._typing import Device, DType, FilePath

__all__ = ["load", "save"]

FORMAT = 1
_ARCH, _FORMAT, _PARAM, _BUFFER = "__architecture__", "__format__", "param/", "buffer/"


def architecture(module: Module) -> dict:
    """The JSON-serialisable description that :func:`load` rebuilds ``module`` from."""
    paths = {id(m): path for path, m in module.named_modules()}

    def describe(m: Module) -> dict:
        node = {"type": type_name(type(m)), "config": m.get_config()}
        refs = {}
        for name, target in m.get_references().items():
            if id(target) not in paths:
                raise ValueError(
                    f"backprop.save: {m._label()} refers to {target._label()}, "
                    "which is not part of the saved network"
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
    """A fresh module (new parameters) from :func:`architecture`'s description."""
    pending = []
    try:
        root = _build(node, pending)
    except RecursionError:
        raise ValueError(
            f"the architecture is nested too deeply (more than {MAX_DEPTH} levels)"
        ) from None
    modules = dict(root.named_modules())
    for m, refs in pending:
        for name, path in refs.items():
            if path not in modules:
                raise ValueError(
                    f"{m._label()}: reference {name!r} points to {path!r}, which does not exist"
                )
            m.set_reference(name, modules[path])
    return root


def _build(node: dict, pending: list) -> Module:
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise ValueError(f"malformed architecture entry: {_short(node)}")
    cls = module_type(node["type"])
    children = [_build(c, pending) for c in node.get("children", [])]
    config = node.get("config", {})
    try:
        module = cls.from_config(dict(config), children)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise ValueError(f"cannot rebuild {node['type']} from {_short(config)}: {exc}") from None
    if node.get("references"):
        pending.append((module, dict(node["references"])))
    return module


def _short(value, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ------------------------------------------------------------------ checks before building

#: deepest nesting of containers a file may describe
MAX_DEPTH = 64
#: most modules a file may describe
MAX_MODULES = 100_000
#: largest architecture record (JSON), in bytes
MAX_ARCHITECTURE_BYTES = 16 << 20


def _walk(root) -> list:
    """``(path, node)`` of every node, depth first, after checking the structure (no recursion)."""
    found, stack = [], [("", root, 0)]
    while stack:
        path, node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"the architecture is nested more than {MAX_DEPTH} levels deep")
        if len(found) >= MAX_MODULES:
            raise ValueError(f"the architecture describes more than {MAX_MODULES} modules")
        where = f"module {path!r}" if path else "the root module"
        if not isinstance(node, dict):
            raise ValueError(
                f"malformed architecture: {where} is a {type(node).__name__}, not an object"
            )
        if not isinstance(node.get("type"), str):
            raise ValueError(f"malformed architecture: {where} has no 'type' name")
        for key, kind in (("config", dict), ("children", list), ("references", dict)):
            if key in node and not isinstance(node[key], kind):
                raise ValueError(
                    f"malformed architecture: {where} has a {key!r} that is not a {kind.__name__}"
                )
        for name, target in node.get("references", {}).items():
            if not isinstance(target, str):
                raise ValueError(
                    f"malformed architecture: {where} has a reference {name!r} that is not a path"
                )
        found.append((path, node))
        children = node.get("children", [])
        prefix = f"{path}." if path else ""
        stack.extend((f"{prefix}{i}", c, depth + 1) for i, c in reversed(list(enumerate(children))))
    return found


def _state_shapes(node: dict):
    """The parameter and buffer shapes, by key, that the layer type ``node['type']`` declares
    for its config (:meth:`Module.state_shapes`); None when it does not declare them or the
    config is one its constructor will refuse anyway (it is then left to the constructor)."""
    cls = module_type(node["type"])
    if not cls._defines_at_least_as_late("state_shapes", "__init__"):
        return None
    try:
        shapes = cls.state_shapes(dict(node.get("config", {})))
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError):
        return None
    return None if shapes is None else {k: tuple(v) for k, v in shapes.items()}


def _check_parameters(nodes: list, archive, path) -> list:
    """Check the file's parameter entries against the architecture, from headers only.

    Returns the parameter names to read. Raises before anything is allocated
    when a parameter the architecture needs is missing or has another shape
    or a non-floating dtype, when a tied layer points to a layer of the wrong
    size, or (for networks made of the library's own layers) when the file
    holds parameters the architecture does not have.
    """
    present = [
        name[len(prefix) :]
        for name in archive.names
        for prefix in (_PARAM, _BUFFER)
        if name.startswith(prefix)
    ]
    expected, all_known = {}, True
    by_path = dict(nodes)
    for node_path, node in nodes:
        _check_references(node_path, node, by_path)
        shapes = _state_shapes(node)
        if shapes is None:
            all_known = False
            continue
        prefix = f"{node_path}." if node_path else ""
        for key, shape in shapes.items():
            expected[prefix + key] = shape
    for name, shape in expected.items():
        entry = _PARAM + name if _PARAM + name in archive else _BUFFER + name
        if entry not in archive:
            raise ValueError(
                f"parameter {name!r} is missing from the file (its architecture needs it)"
            )
        declared, dtype = archive.header(entry)
        if declared != shape:
            raise ValueError(f"parameter {name!r} has shape {declared}, expected {shape}")
        if dtype.kind != "f":
            raise TypeError(f"parameter {name!r} has dtype {dtype}, expected a floating dtype")
    if all_known:
        unexpected = sorted(set(present) - set(expected))
        if unexpected:
            raise ValueError(
                f"the file holds parameters its architecture does not have: {unexpected[:10]}"
            )
    return present


def _check_references(node_path: str, node: dict, by_path: dict) -> None:
    """Let the layer check the saved modules it refers to (a tied weight's owner)."""
    refs = node.get("references", {})
    if not refs:
        return
    targets = {}
    for name, target in refs.items():
        owner = by_path.get(target)
        targets[name] = (
            (module_type(owner["type"]), owner.get("config", {}), target)
            if owner is not None
            else (None, None, target)
        )
    module_type(node["type"]).check_saved_references(node_path, node.get("config", {}), targets)


# ------------------------------------------------------------------ save and load


def save(module: Module, path: FilePath, *, metadata: dict | None = None) -> None:
    """Write ``module`` (architecture and parameters) to ``path``, atomically.

    ``metadata`` (JSON values: what the network was trained on, its task,
    input shape, classes...) is stored beside them; :func:`load` puts it
    back as ``module.metadata``. By default the module's own ``metadata``
    is written.

    The file is written to a temporary name in the same directory and renamed
    over ``path`` only once complete: an interrupted save leaves the previous
    file intact. A new file follows the umask; an existing one keeps its mode.

    Raises
    ------
    TypeError
        ``module`` is not a Module.
    ValueError
        A parameter holds NaN or infinite values (a diverged training: the
        file would not load), or the network refers to a module outside it.
    OSError
        FileNotFoundError for a missing directory, PermissionError,
        IsADirectoryError...: each names ``path``.
    """
    if not isinstance(module, Module):
        raise TypeError(f"backprop.save: expected a Module, got {type(module).__name__}")
    try:
        meta = dict(module.metadata if metadata is None else metadata)
        text = json.dumps(
            {"format": FORMAT, "architecture": architecture(module), "metadata": meta}
        )
    except TypeError as exc:
        raise TypeError(
            f"backprop.save: the architecture cannot be written as JSON ({exc})"
        ) from None
    arrays = {_FORMAT: str(FORMAT), _ARCH: text}
    for prefix, what, entries in (
        (_PARAM, "parameter", module.named_parameters()),
        (_BUFFER, "buffer", module.named_buffers()),
    ):
        for name, value in entries:
            xp = namespace_of(value)
            if not bool(xp.all(xp.isfinite(value))):
                raise ValueError(
                    f"backprop.save: {what} {name!r} holds NaN or infinite values (did the "
                    f"training diverge?); {os.fspath(path)} was not written"
                )
            arrays[prefix + name] = value
    try:
        save_npz_atomic(path, arrays)
    except OSError as exc:
        raise _prefixed(exc, "backprop.save") from None


def _prefixed(exc: OSError, prefix: str) -> OSError:
    message = (
        f"{prefix}: {exc.strerror or exc}" if exc.errno is None else f"{prefix}: {exc.strerror}"
    )
    return type(exc)(exc.errno, message) if exc.errno is not None else type(exc)(message)


def load(
    path: FilePath,
    *,
    backend: str | Backend | None = None,
    device: Device | None = None,
    dtype: DType | None = None,
) -> Module:
    """Rebuild the network saved at ``path``, on the current backend (or the one given).

    Nothing in the file is trusted before it is checked: the zip structure,
    each array's declared size and dtype, the architecture (its structure,
    depth and size) and each parameter's shape against the architecture are
    checked before any parameter is allocated or decompressed, so a small
    crafted file cannot take much memory or time. Entries that are not part
    of the model are never decompressed. Loading never runs code from the
    file.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Anything else wrong with the file: not an .npz archive (an .npy, a
        text file, a pickle), truncated or corrupted, duplicated entries, a
        missing or corrupted architecture record, an unknown layer type,
        parameters whose names, shapes or values (NaN, infinity) do not fit
        the architecture. Each names ``path``.
    TypeError
        Parameters of a non-floating dtype.
    OSError
        The system refuses to read the file (permissions, a directory).
    """
    try:
        shown = os.fspath(path)
    except TypeError:
        raise TypeError(f"backprop.load: expected a file path, got {type(path).__name__}") from None
    try:
        with NpzArchive(path) as archive:
            record = _read_record(archive, shown)
            nodes = _walk(record["architecture"])
            names = _check_parameters(nodes, archive, shown)
            state = {
                name: archive.read(_PARAM + name if _PARAM + name in archive else _BUFFER + name)
                for name in names
            }
    except (TypeError, ValueError) as exc:
        message = str(exc)
        raise type(exc)(
            f"backprop.load: {message if shown in message else f'{shown}: {message}'}"
        ) from None
    except OSError as exc:
        raise _prefixed(exc, "backprop.load") from None
    context = (
        use_backend(backend, device, dtype)
        if (backend or device or dtype)
        else contextlib.nullcontext()
    )
    with context:
        try:
            module = build(record["architecture"])
            module.load_state_dict(state)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"backprop.load: {shown}: {exc}") from None
    meta = record.get("metadata", {})
    module.metadata = meta if isinstance(meta, dict) else {}
    return module


def _read_record(archive, path) -> dict:
    """The architecture record, checked: ``{"format": 1, "architecture": {...}}``."""
    if _ARCH not in archive or _FORMAT not in archive:
        names = ", ".join(repr(n) for n in archive.names[:5]) or "none"
        raise ValueError(
            f"{path} is not a backprop model file (no architecture record; its arrays: {names}); "
            "write models with backprop.save"
        )
    try:
        text = decode_text(archive.read(_ARCH, max_bytes=MAX_ARCHITECTURE_BYTES))
        version = decode_text(archive.read(_FORMAT, max_bytes=64))
    except ValueError as exc:
        raise ValueError(f"{path}: the architecture record is corrupted ({exc})") from None
    if version.strip() != str(FORMAT):
        raise ValueError(
            f"{path}: unsupported format {version[:20]!r} (this version reads {FORMAT})"
        )
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValueError(f"{path}: the architecture record is corrupted ({reason})") from None
    if not isinstance(record, dict):
        raise ValueError(
            f"{path}: the architecture record is a {type(record).__name__}, not an object"
        )
    missing = [key for key in ("format", "architecture") if key not in record]
    if missing:
        raise ValueError(f"{path}: the architecture record lacks {', '.join(map(repr, missing))}")
    if record["format"] != FORMAT:
        raise ValueError(
            f"{path}: unsupported format {_short(record['format'])} (this version reads {FORMAT})"
        )
    return record
