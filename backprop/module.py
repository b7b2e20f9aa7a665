"""The assignment's two abstract classes, :class:`Module` and :class:`Loss`, and the shared input
checks.

A module knows its own forward pass and its two backward rules:

* ``backward_update_gradient(input, delta)`` adds dL/dW to ``_gradient``;
* ``backward_delta(input, delta)`` returns dL/dinput.

``_parameters`` and ``_gradient`` are dicts with the same keys and shapes.
Gradients accumulate until :meth:`Module.zero_grad`.

State between passes (the rule is written out in ``docs/architecture.md``):
the public methods compute from the arrays they are given and rely on
nothing kept from an earlier call, except what cannot be recomputed
(Dropout's mask) and what containers hold (below). Containers and the
training step call the internal pair :meth:`Module.chain_forward` /
:meth:`Module.chain_backward`, with arrays the library created and never handed
out: there a module may reuse what its last ``chain_forward`` computed, keyed by
the identity of that input.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .backends import Backend, asarray, backend_of, get_backend, kind_of, make_backend

if TYPE_CHECKING:
    from ._typing import Array, Device, DType

__all__ = ["Loss", "Module"]

#: every Module subclass by qualified name (``"backprop.linear.Linear"``, ``"mypkg.layers.Gate"``):
#: what backprop.load rebuilds architectures from. A user's class never replaces a library class.
MODULE_TYPES: dict[str, type] = {}
#: the library's own classes by bare name, for files written before names were qualified
_LIBRARY_TYPES: dict[str, type] = {}


def type_name(cls: type) -> str:
    """The name a saved architecture records for ``cls``: ``module.QualifiedName``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def module_type(name: str) -> type:
    """The registered :class:`Module` subclass saved as ``name`` (see :func:`type_name`).

    A bare name (files written by older versions) means one of the library's
    own classes. An unknown name is a ValueError that names it and says
    which module to import.
    """
    cls = MODULE_TYPES.get(name) or _LIBRARY_TYPES.get(name)
    if cls is not None:
        return cls
    where, _, short = name.rpartition(".")
    hint = (
        f"import {where} (which defines {short}) before loading"
        if where and not where.startswith("backprop")
        else "import the module that defines it before loading"
    )
    raise ValueError(f"unknown layer type {name!r}: {hint}")


def _shape(x) -> tuple:
    return tuple(x.shape)


def _floating(x, what: str, error):
    """The :class:`Backend` class of ``x``, a real floating array; else a TypeError worded by
    ``error``."""
    try:
        cls = kind_of(x)
    except TypeError as exc:
        raise TypeError(error(f"{what}: {exc}")) from None
    if x.dtype not in cls.float_dtypes:
        raise TypeError(error(f"expected a real floating {what}, got dtype {x.dtype}"))
    return cls


def _fresh_copy(x):
    """A copy of ``x`` that nobody else holds (``x`` itself for an immutable library)."""
    return backend_of(x).copy(x)


# bumped whenever a container changes its children: cached structure facts are then recomputed
_structure_version = itertools.count()
_STRUCTURE = [next(_structure_version)]


def _structure_changed() -> None:
    _STRUCTURE[0] = next(_structure_version)


class Module:
    """Base class of every layer, activation and container.

    Subclasses implement :meth:`forward`, :meth:`backward_delta` and, when they
    have parameters, :meth:`backward_update_gradient`; they register their
    parameters with :meth:`add_parameter`. The base class owns everything
    else: :meth:`zero_grad`, :meth:`update_parameters`, :meth:`parameters`,
    :meth:`to` and ``repr``.
    """

    #: the backend of the parameters (set by the first add_parameter)
    _backend: Backend | None = None
    #: where the current call is in the network (set by the container calling; see
    #: Container.child_forward): per-call state is kept under it
    _call_path: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__name__.startswith("_"):
            return
        MODULE_TYPES[type_name(cls)] = cls
        if cls.__module__.startswith("backprop."):
            _LIBRARY_TYPES[cls.__name__] = cls

    def __init__(self) -> None:
        self._parameters: dict[str, Any] = {}
        self._gradient: dict[str, Any] = {}
        # state that is saved, loaded, checkpointed and moved, but never touched by optimizers
        self._buffers: dict[str, Any] = {}
        # keys whose gradient is known to be zero: the next accumulation may
        # store its value instead of adding it to a zero array
        self._zero_keys: set[str] = set()
        self._children: list[Module] = []  # sub-modules; containers fill it
        self._version = 0  # bumped by every parameter write made through the library
        self.training = True
        #: what the network was trained on, as recorded by ``backprop.save(..., metadata=)`` (JSON
        #: values)
        self.metadata: dict = {}

    # ------------------------------------------------------------------ API

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, X: Array) -> Array:
        """Compute the output for a batch ``X``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward_update_gradient(self, input: Array, delta: Array) -> None:
        """Add the gradient of the cost w.r.t. the parameters to ``_gradient``.

        Modules without parameters have nothing to do.
        """

    def backward_delta(self, input: Array, delta: Array) -> Array:
        """Return the gradient of the cost w.r.t. ``input`` given ``delta`` = dL/doutput."""
        raise NotImplementedError(f"{type(self).__name__} does not implement backward_delta")

    def backward(self, input: Array, delta: Array, *, input_grad: bool = True) -> Array | None:
        """Both backward rules at once (Torch7's ``backward``): accumulate, then return dL/dinput.

        With ``input_grad=False`` the input gradient is not computed and None
        is returned (the first layer of a network never needs it).
        """
        self.backward_update_gradient(input, delta)
        return self.backward_delta(input, delta) if input_grad else None

    # ------------------------------------------- the chain pair (containers)

    def chain_forward(self, X):
        """Forward as a container or the training step calls it: ``X`` is the library's own array.

        Nobody else holds ``X``, and it stays unchanged until the matching
        :meth:`chain_backward`, so a module may keep what it computes from it
        (keyed by the identity of ``X``) and reuse it there. The default is
        :meth:`forward`. A container's own ``chain_forward`` calls its
        children's.
        """
        return self.forward(X)

    def chain_backward(self, input, delta, input_grad: bool = True, param_grad: bool = True):
        """Backward as a container or the training step calls it, after :meth:`chain_forward`.

        ``input`` is the object of the matching ``chain_forward`` call,
        unchanged since. Accumulates the parameter gradients when
        ``param_grad``; returns the input gradient when ``input_grad`` (else
        None). The default runs :meth:`backward_update_gradient` and
        :meth:`backward_delta`.
        """
        if param_grad:
            return self.backward(input, delta, input_grad=input_grad)
        return self.backward_delta(input, delta) if input_grad else None

    def draws_random_numbers(self) -> bool:
        """Whether forward draws host random numbers now (such a network cannot be compiled).

        A layer that draws (a dropout mask, noise) in training mode says so here."""
        return False

    def has_parameters(self) -> bool:
        """Whether backward accumulates a gradient anywhere (containers ask, to skip needless input
        gradients). A layer that accumulates into another module's gradient says True."""
        return bool(self._parameters)

    # ------------------------------------------------------------ updates

    def zero_grad(self) -> None:
        """Reset every gradient (this module's and its descendants', each once) to zero."""
        for m in self.unique_modules():
            for key, g in m._gradient.items():
                m._gradient[key] = m._backend.zero_(g)
            m._zero_keys = set(m._gradient)

    def update_parameters(self, gradient_step: float = 1e-3) -> None:
        """Gradient descent step ``p <- p - gradient_step * grad`` on every parameter, each once.

        A module used twice in a network is updated once, with the sum of the
        gradients of both uses. A descendant that redefines this method is
        updated by its own rule.
        """
        for m in self.unique_modules():
            if m is not self and type(m).update_parameters is not Module.update_parameters:
                m.update_parameters(gradient_step)
                continue
            for key in m._parameters:
                # no shortcut for zero gradients: a module may write _gradient directly (the
                # assignment's style)
                m.set_parameter(
                    key, m._backend.axpy_(m._parameters[key], -gradient_step, m._gradient[key])
                )

    # ------------------------------------------ parameters, for optimizers

    @property
    def backend(self) -> Backend | None:
        """The :class:`~backprop.backends.Backend` of this module's parameters (None without
        parameters)."""
        return self._backend

    def get_parameter(self, key: str) -> Array:
        """The parameter array ``key`` of this module (not a copy)."""
        return self._parameters[key]

    def get_gradient(self, key: str) -> Array:
        """The accumulated gradient of parameter ``key``."""
        return self._gradient[key]

    def set_parameter(self, key: str, value: Array) -> None:
        """Store ``value`` (an array of this module's backend and shape) as parameter ``key``.

        The write every update rule goes through: it marks the values of
        earlier forward passes as stale for the containers holding them.
        """
        self._parameters[key] = value
        self._version += 1

    # ---------------------------------------------------------- structure

    def children(self) -> list[Module]:
        """Direct sub-modules."""
        return list(self._children)

    def modules(self) -> Iterator[Module]:
        """This module and all its descendants, depth first (a shared module once per use)."""
        yield self
        for child in self.children():
            yield from child.modules()

    def unique_modules(self) -> list[Module]:
        """This module and its descendants, each once, in order of first appearance.

        Walked once per structure: the list is kept until a container anywhere
        changes its children (every step asks for it two or three times).
        """
        cached = self.__dict__.get("_unique")
        if cached is not None and cached[0] == _STRUCTURE[0]:
            return list(cached[1])
        seen: dict[int, Module] = {}
        for m in self.modules():
            seen.setdefault(id(m), m)
        found = list(seen.values())
        self._unique = (_STRUCTURE[0], found)
        return list(found)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """``(name, array)`` for every parameter, children's names prefixed by their index.

        A module used twice is named once, at its first place.
        """
        for name, m, key in self._named_state_entries("_parameters", prefix):
            yield name, m._parameters[key]

    def _named_state_entries(
        self, kind: str, prefix: str = ""
    ) -> Iterator[tuple[str, Module, str]]:
        """``(name, module, key)`` for every entry of ``_parameters`` or ``_buffers`` (``kind``),
        each module once, at its first place: ``"0.weight"``, ``"1.running_mean"``..."""
        seen: set[int] = set()
        for path, m in self.named_modules(prefix):
            if id(m) in seen:
                continue
            seen.add(id(m))
            m._ensure_backend()
            for key in getattr(m, kind):
                yield (f"{path}.{key}" if path else key), m, key

    def named_children(self) -> list[tuple[str, Module]]:
        return [(str(i), c) for i, c in enumerate(self.children())]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output's shape for an input of ``input_shape`` (batch axis first).

        Layers with a closed form override this. The default runs
        :meth:`forward` in evaluation mode on one zero sample (no random
        numbers drawn, nothing kept) and reads the shape.
        """
        b = self._backend if self._backend is not None else get_backend()
        x = b.xp.zeros((1, *tuple(input_shape)[1:]), dtype=b.dtype, device=b.device)
        modes = [(m, m.training) for m in self.unique_modules()]
        self.eval()
        try:
            y = self.forward(x)
        finally:
            for m, mode in modes:
                m.training = mode
            for m in self.unique_modules():
                m.clear_cache()
        return (input_shape[0], *tuple(y.shape)[1:])

    def input_shape(self) -> tuple[int, ...] | None:
        """The shape of one input sample (no batch axis) when this module fixes it (a Linear's
        ``(in_features,)``), else None. Containers answer for their first child."""
        return None

    def export_onnx(self, graph, value):
        """Append this module's ONNX nodes to ``graph`` (a :class:`backprop.onnx.OnnxGraph`) after
        ``value`` (a :class:`backprop.onnx.OnnxValue`); return the output value.

        The library's layers each write theirs; a module without one cannot be
        exported (a ValueError that names it).
        """
        raise ValueError(
            f"export_onnx: cannot export {self._label()} (type {type(self).__module__}."
            f"{type(self).__qualname__}): it has no export_onnx method"
        )

    #: the ``torch.nn`` class names that :func:`backprop.from_torch` converts into this class
    torch_names: tuple[str, ...] = ()

    @classmethod
    def from_torch(cls, module: Any, converter: Any) -> Module:
        """This class's layer with the weights and buffers of the ``torch.nn`` ``module`` (one of
        :attr:`torch_names`); ``converter`` is the :class:`backprop.interop.TorchConverter`
        doing the conversion (``converter.array(tensor)`` makes an array of the current
        backend; ``converter.convert(child)`` converts a child)."""
        raise ValueError(f"from_torch: {cls.__name__} cannot be made from a torch module")

    def to_torch(self, converter: Any) -> Any:
        """The ``torch.nn`` module computing what this one computes, with copies of its
        parameters and buffers (``converter.nn`` is ``torch.nn``; ``converter.tensor(array)``
        makes a tensor; ``converter.export(child)`` converts a child)."""
        raise ValueError(
            f"to_torch: {self._label()} (type {type(self).__module__}."
            f"{type(self).__qualname__}) has no PyTorch counterpart"
        )

    def summary(self, input_shape: int | tuple[int, ...]) -> str:
        """A table of the layers with their output shapes for samples of ``input_shape`` (no batch
        axis), parameter counts and the total memory of the parameters; see
        :func:`backprop.summary`."""
        from .summary import summary

        return summary(self, input_shape)

    def parameters(self) -> list:
        """Every parameter array of this module and its children, each once."""
        return [p for _, p in self.named_parameters()]

    def parameter_slots(self) -> Iterator[tuple[Module, str]]:
        """``(module, key)`` for every parameter, each once: where optimizers read and write."""
        for m in self.unique_modules():
            m._ensure_backend()
            for key in m._parameters:
                yield m, key

    def n_parameters(self) -> int:
        """Number of scalar parameters (a shared module counted once)."""
        total = 0
        for p in self.parameters():
            size = 1
            for d in p.shape:
                size *= d
            total += size
        return total

    def _ensure_backend(self) -> None:
        # a module that fills _parameters by hand (the assignment's style) gets its backend from
        # them
        if self._backend is None and (self._parameters or self._buffers):
            first = next(iter(self._parameters.values() or self._buffers.values()))
            self._backend = backend_of(first)

    # ------------------------------------------------------- persistence

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this module (JSON-serialisable).

        Modules whose constructor takes arguments override it; containers
        describe their children separately (see :func:`backprop.save`).
        """
        return {}

    @classmethod
    def from_config(cls, config: dict, children: list) -> Module:
        """Rebuild a module from :meth:`get_config` and its rebuilt children."""
        if children:
            raise ValueError(f"{cls.__name__}: unexpected children in a saved architecture")
        return cls(**config)

    @classmethod
    def state_shapes(cls, config: dict) -> dict[str, tuple[int, ...]] | None:
        """The shape of every parameter and buffer a module built from ``config`` has, by key,
        computed without building it (``{}`` for a module without any); None when unknown.

        :func:`backprop.load` checks a file's arrays against these shapes
        before it allocates anything, so a small crafted file cannot make it
        allocate much memory. A layer that knows its shapes from its config
        overrides this; the answer is used only for the class that defines
        it or a subclass that keeps its constructor.
        """
        return None

    @classmethod
    def check_saved_references(cls, path: str, config: dict, targets: dict) -> None:
        """Check, before anything is built, that the saved modules this one refers to fit.

        ``targets`` maps each reference name to ``(type, config, path)`` of
        the module it points to (type and config None when the path does not
        exist).
        Raise ValueError naming ``path`` when they do not fit.
        """

    @classmethod
    def _defines_at_least_as_late(cls, hook: str, *implementation: str) -> bool:
        """Whether the class that provides ``hook`` is ``cls`` or a subclass of every class that
        provides one of ``implementation``: a hook written for a base class says nothing of a
        subclass that computes something else. (The library's own classes keep their hooks
        and their maths in step; the suite checks them.)"""
        mro = cls.__mro__

        def definer(name: str, library_ok: bool) -> int:
            for i, c in enumerate(mro):
                if name in c.__dict__ and not (library_ok and c.__module__.startswith("backprop.")):
                    return i
            return len(mro)

        hook_at = definer(hook, False)
        return all(hook_at <= definer(name, True) for name in implementation)

    def get_references(self) -> dict:
        """Modules this one uses without owning them (e.g. a tied weight's layer), by name."""
        return {}

    def set_reference(self, name: str, module: Module) -> None:
        """Point reference ``name`` at ``module`` (used by :func:`backprop.load`)."""
        raise ValueError(f"{self._label()} has no reference {name!r}")

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """``(path, module)`` for this module (path ``""``) and every descendant (``"0"``,
        ``"0.1"``, ...).

        A module used twice appears at each of its places.
        """
        yield prefix.rstrip("."), self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}{name}.")

    def state_dict(self) -> dict:
        """Every parameter and buffer by name (``"0.weight"``, ``"1.running_mean"``...), as
        copies: later training does not change them."""
        state = {name: _fresh_copy(p) for name, p in self.named_parameters()}
        state.update((name, _fresh_copy(b)) for name, b in self.named_buffers())
        return state

    def _state_slots(self) -> dict:
        """``name -> (module, key, is_buffer)`` for every parameter and buffer."""
        slots = {n: (m, key, False) for n, m, key in self._named_state_entries("_parameters")}
        slots.update((n, (m, key, True)) for n, m, key in self._named_state_entries("_buffers"))
        return slots

    def load_state_dict(self, state: dict) -> None:
        """Set every parameter and buffer from copies of the arrays in ``state`` (any library;
        floating values are cast).

        Everything is checked before anything is written: missing or
        unexpected names, shapes, non-floating dtypes and NaN or infinite
        values each raise, and the module is then left unchanged. The module
        never shares an array with ``state``.
        """
        owner = f"{self._label()}.load_state_dict"
        if not isinstance(state, dict):
            raise TypeError(f"{owner}: expected a dict of arrays, got {type(state).__name__}")
        slots = self._state_slots()
        missing = [n for n in slots if n not in state]
        unexpected = [n for n in state if n not in slots]
        if missing or unexpected:
            raise ValueError(
                f"{owner}: parameter names do not match: missing {missing}, unexpected {unexpected}"
            )
        staged = []
        for name, (m, key, is_buffer) in slots.items():
            m._ensure_backend()
            b = m._backend if m._backend is not None else get_backend()
            what = "buffer" if is_buffer else "parameter"
            try:
                value = asarray(state[name], backend=b)
            except TypeError as exc:
                raise TypeError(f"{owner}: {what} {name!r}: {exc}") from None
            if value.dtype not in b.float_dtypes:
                raise TypeError(
                    f"{owner}: {what} {name!r} has dtype {value.dtype}, expected a floating dtype"
                )
            current = m._buffers[key] if is_buffer else m._parameters[key]
            expected = tuple(current.shape)
            if tuple(value.shape) != expected:
                raise ValueError(
                    f"{owner}: {what} {name!r} has shape {tuple(value.shape)}, expected {expected}"
                )
            if not bool(b.xp.all(b.xp.isfinite(value))):
                raise ValueError(f"{owner}: {what} {name!r} holds NaN or infinite values")
            if value.dtype != b.dtype:
                value = b.xp.astype(value, b.dtype)
            staged.append((m, key, is_buffer, _fresh_copy(value)))
        for m, key, is_buffer, value in staged:
            if is_buffer:
                m._buffers[key] = value
            else:
                m.set_parameter(key, value)
        for m in self.unique_modules():
            m.clear_cache()

    def train(self, mode: bool = True) -> Module:
        """Set training mode (on this module and its children); returns self."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        """Set evaluation mode; returns self."""
        return self.train(False)

    def to(
        self,
        backend: str | Backend | None = None,
        *,
        device: Device | None = None,
        dtype: DType | None = None,
    ) -> Module:
        """Move every parameter and gradient to another backend, device or dtype, in place; returns
        self.

        >>> net.to("torch", device="cuda")
        >>> net.to(dtype="float64")
        """
        target = make_backend(backend, device, dtype)
        for m in self.unique_modules():
            m._ensure_backend()
            # every array is moved, even when the module's backend already says target: a tied
            # layer takes its backend from its owner, which may have moved first
            if m._parameters or m._buffers or m._gradient:
                for key, p in m._parameters.items():
                    m.set_parameter(key, _fresh_copy(asarray(p, backend=target)))
                m._gradient = {
                    k: _fresh_copy(asarray(g, backend=target)) for k, g in m._gradient.items()
                }
                m._buffers = {
                    k: _fresh_copy(asarray(v, backend=target)) for k, v in m._buffers.items()
                }
                m._move_backend(target)
            m.clear_cache()  # cached arrays live on the old device
        return self

    def clear_cache(self) -> None:
        """Drop arrays kept from the last forward (modules that keep some override it)."""

    def _move_backend(self, target: Backend) -> None:
        """Record that the parameters now live on ``target`` (see :meth:`to`)."""
        self._backend = target

    # ------------------------------------------------------------- repr

    def extra_repr(self) -> str:
        """The text between the parentheses of this module's repr."""
        return ""

    def __repr__(self) -> str:
        children = self.named_children()
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        extra = self.extra_repr()
        if extra:
            lines.append(f"  {extra}")
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            count = 0 if child.children() else child.n_parameters()
            lines.append(f"  ({name}): {body}" + (f"  [{count:,d} parameters]" if count else ""))
        lines.append(")")
        return "\n".join(lines)

    def _label(self) -> str:
        """One-line name used in error messages, e.g. ``Linear(64 -> 10)``."""
        return f"{type(self).__name__}({self.extra_repr()})"

    # -------------------------------------------------- parameters, checks

    def _state_array(self, kind: str, name, value):
        """``value`` as a fresh array of this module's backend, dtype and device (the current
        backend's for a module that has none yet), after checking ``name``."""
        method = f"add_{kind}"
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(self._error(method, f"name must be an identifier, got {name!r}"))
        if name in self._parameters or name in self._buffers:
            raise ValueError(self._error(method, f"{name!r} is already registered"))
        b = self._backend if self._backend is not None else get_backend()
        try:
            array = asarray(value, backend=b)
        except (TypeError, ValueError) as exc:
            raise TypeError(self._error(method, f"{name!r}: {exc}")) from None
        if array.dtype == b.xp.bool or b.xp.isdtype(array.dtype, "complex floating"):
            raise TypeError(
                self._error(method, f"{name!r} must hold real numbers, got dtype {array.dtype}")
            )
        if array.dtype != b.dtype:  # integers too: a parameter is floating
            array = b.xp.astype(array, b.dtype)
        if self._backend is None:
            self._backend = b
        return _fresh_copy(array)

    def add_parameter(self, name: str, value: Any) -> None:
        """Register a trainable parameter ``name`` and its zero gradient.

        ``value`` may be host data (a list, a NumPy array) or an array of any
        supported library: it is copied to this module's backend, device and
        floating dtype (the current backend's for a module without
        parameters yet), so the module never shares it with the caller.

        >>> self.add_parameter("scale", np.ones(n))      # float32 on a float32 backend
        """
        value = self._state_array("parameter", name, value)
        self._parameters[name] = value
        self._gradient[name] = self._backend.xp.zeros_like(value)
        self._zero_keys.add(name)
        self._version += 1

    def add_buffer(self, name: str, value: Any) -> None:
        """Register a buffer: state saved, loaded, checkpointed and moved by :meth:`to` with
        the parameters, but never updated by an optimizer (running statistics, for example).

        ``value`` is copied to this module's backend, device and dtype, as for
        :meth:`add_parameter`. Write it with :meth:`set_buffer`.
        """
        self._buffers[name] = self._state_array("buffer", name, value)

    def get_buffer(self, name: str) -> Array:
        """The buffer array ``name`` of this module (not a copy)."""
        return self._buffers[name]

    def set_buffer(self, name: str, value: Array) -> None:
        """Store ``value`` (an array of this module's backend and the buffer's shape) as buffer
        ``name``."""
        if name not in self._buffers:
            raise KeyError(self._error("set_buffer", f"no buffer {name!r}"))
        self._buffers[name] = value

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """``(name, array)`` for every buffer of this module and its descendants, each module
        once, named as :meth:`named_parameters` names parameters."""
        for name, m, key in self._named_state_entries("_buffers", prefix):
            yield name, m._buffers[key]

    def buffers(self) -> list:
        """Every buffer array of this module and its children, each once."""
        return [b for _, b in self.named_buffers()]

    def add_module(self, module: Module) -> Module:
        """Append ``module`` to this module's children (what a container is made of); returns it.

        Children are what :meth:`children`, :meth:`modules`, ``save``,
        ``summary``, ``to`` and the optimizers walk. A container calls its
        children's :meth:`chain_forward` / :meth:`chain_backward`.
        """
        if not isinstance(module, Module):
            raise TypeError(
                self._error("add_module", f"expected a Module, got {type(module).__name__}")
            )
        self._children.append(module)
        self.clear_cache()
        _structure_changed()
        return module

    def accumulate_gradient(self, name: str, value) -> None:
        """``_gradient[name] += value``.

        ``value`` must be a fresh array that nothing else holds: when the
        gradient is known to be zero it is stored as is (saving a zero fill
        and an addition), and :meth:`zero_grad` later zeroes it in place.
        """
        if name in self._zero_keys:
            self._gradient[name] = value
            self._zero_keys.discard(name)
        else:
            self._gradient[name] = self._backend.add_(self._gradient[name], value)

    def _error(self, method: str, message: str) -> str:
        return f"{self._label()}.{method}: {message}"

    def check_array(self, X, method: str = "forward", what: str = "input", like=None):
        """Check ``X``: a real floating array on the parameters' library and device.

        Returns ``X``, cast to the parameters' dtype when it is of another real
        floating precision. A module without parameters checks ``X`` against
        the array ``like`` instead (its input, when ``X`` is a delta), or only
        requires a real floating array.
        """
        b = self._backend
        if b is not None:
            if (
                type(X) is b.array_type
                and X.dtype == b.dtype
                and (not b.has_devices or b.on_device(X))
            ):
                # the common case, checked in a few attribute reads (a PyTorch tensor that
                # requires grad is detached: its graph would pass into every parameter it updates)
                return b.detached(X) if b.detaches else X
        elif like is not None and type(X) is type(like) and X.dtype == like.dtype:
            # a delta like the input of a module without parameters: same library and dtype;
            # the device is compared where the library has devices
            cls = kind_of(like)  # like passed its own check: a known library
            if X.dtype in cls.float_dtypes and (
                not cls.has_devices or cls.device_of(X) == cls.device_of(like)
            ):
                return X
        cls = _floating(X, what, lambda message: self._error(method, message))
        ref = b if b is not None else (backend_of(like) if like is not None else None)
        if ref is not None:
            if cls is not type(ref):
                found = f"{what} is a {cls.name} array"
            elif not ref.on_device(X):
                found = f"{what} is on device {cls.device_of(X)}"
            else:
                found = None
            if found is not None:
                where = (
                    f"the parameters live on {ref.describe()}"
                    if b is not None
                    else f"the input is on {ref.describe()}"
                )
                raise (TypeError if cls is not type(ref) else ValueError)(
                    self._error(
                        method,
                        f"{found} but {where}; move it there with `with backprop.use_backend("
                        f"{ref.name!r}, "
                        f"device={ref.describe().rsplit('/', 1)[0].partition(':')[2]!r}, "
                        f"dtype={ref.dtype_name!r}): x = backprop.asarray(x)`"
                        + (", or move the network with net.to(...)" if b is not None else ""),
                    )
                )
        if b is not None and X.dtype != b.dtype:
            return b.detached(b.xp.astype(X, b.dtype))
        return b.detached(X) if b is not None else X

    def check_shape(self, X, expected: tuple, method: str = "forward", what: str = "input") -> None:
        """ValueError unless ``X`` matches ``expected`` (``None`` entries match any size)."""
        shape = X.shape
        if len(shape) == len(expected):
            for e, s in zip(expected, shape):
                if e is not None and e != s:
                    break
            else:
                return
        shape = tuple(shape)
        shown = (
            "("
            + ", ".join(
                "N" if i == 0 and e is None else ("*" if e is None else str(e))
                for i, e in enumerate(expected)
            )
            + ("," if len(expected) == 1 else "")
            + ")"
        )
        raise ValueError(self._error(method, f"expected {what} of shape {shown}, got {shape}"))

    def _check_window_fits(self, X, kernel: tuple, method: str) -> None:
        """ValueError if a spatial axis of ``X`` (``(N, *spatial, C)``) is shorter than the
        kernel."""
        for axis, (size, k) in enumerate(zip(X.shape[1:-1], kernel)):
            if size < k:
                what = "length" if len(kernel) == 1 else ("height", "width")[axis]
                raise ValueError(
                    self._error(method, f"input {what} {size} is shorter than kernel_size {k}")
                )

    def check_delta_like_input(self, input, delta, method: str):
        """Check ``input`` and ``delta`` for an element-wise module; returns both."""
        input = self.check_array(input, method)
        delta = self.check_array(delta, method, "delta", like=input)
        if tuple(delta.shape) != tuple(input.shape):
            raise ValueError(
                self._error(
                    method,
                    f"expected delta of the input's shape {tuple(input.shape)}, got "
                    f"{tuple(delta.shape)}",
                )
            )
        return input, delta

    def check_delta(self, delta, expected_shape: tuple, method: str, input=None):
        """``delta`` must have the output's shape; returns it checked like ``input``."""
        delta = self.check_array(delta, method, "delta", like=input)
        if _shape(delta) != tuple(expected_shape):
            raise ValueError(
                self._error(
                    method,
                    f"expected delta of the output's shape {tuple(expected_shape)}, got "
                    f"{_shape(delta)}",
                )
            )
        return delta


_TARGETS_CHECKED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "backprop_targets_checked", default=False
)


class Loss:
    """Base class of the costs.

    ``forward(y, yhat)`` returns one value per row, shape ``(N,)``;
    ``backward(y, yhat)`` returns the gradient, shaped like ``yhat``, of the
    **batch mean** of those values, so a learning rate does not depend on the
    batch size. A loss never modifies its arguments.

    Checks of the targets' *values* (label ranges) read a number back from
    the device. The training loop validates every target once, up front, and
    runs its steps inside :meth:`targets_checked`, where those checks are
    skipped: a GPU step then never waits for the host. The switch belongs to
    the current thread (a context variable), so a loss shared by two
    trainings is safe.
    """

    #: whether the value checks run at all (set False on an instance to skip them always)
    check_inputs = True

    @property
    def check_labels(self) -> bool:
        """The older name of :attr:`check_inputs`."""
        return self.check_inputs

    @check_labels.setter
    def check_labels(self, value: bool) -> None:
        self.check_inputs = bool(value)

    @staticmethod
    @contextlib.contextmanager
    def targets_checked() -> Iterator[None]:
        """Context manager: the targets used inside were validated already; skip value checks."""
        token = _TARGETS_CHECKED.set(True)
        try:
            yield
        finally:
            _TARGETS_CHECKED.reset(token)

    def _check_values(self) -> bool:
        """Whether value checks (label ranges) should run now."""
        return self.check_inputs and not _TARGETS_CHECKED.get()

    def __call__(self, y, yhat):
        return self.forward(y, yhat)

    def forward(self, y: Array, yhat: Array) -> Array:
        """The cost of each row: ``(N,)``, for targets ``y`` and predictions ``yhat`` ``(N,
        ...)``."""
        return self._evaluate(y, yhat, "forward", True, False)[0]

    def backward(self, y: Array, yhat: Array) -> Array:
        """The gradient of the batch mean of :meth:`forward` w.r.t. ``yhat``, shaped like
        ``yhat``."""
        return self._evaluate(y, yhat, "backward", False, True)[1]

    def forward_backward(self, y: Array, yhat: Array) -> tuple[Array, Array]:
        """``(forward(y, yhat), backward(y, yhat))`` with the checks and shared work done once."""
        if type(self)._evaluate is Loss._evaluate:  # a loss that defines forward and backward
            return self.forward(y, yhat), self.backward(y, yhat)
        return self._evaluate(y, yhat, "forward", True, True)

    def _evaluate(self, y, yhat, method: str, cost: bool, grad: bool):
        """``(cost or None, gradient or None)``: the library's losses implement this one method."""
        raise NotImplementedError(f"{type(self).__name__} does not implement {method}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _error(self, method: str, message: str) -> str:
        return f"{type(self).__name__}.{method}: {message}"

    def _check_prediction(self, yhat, method: str):
        kind = _floating(yhat, "yhat", lambda message: self._error(method, message))
        if yhat.ndim < 1:
            raise ValueError(
                self._error(method, f"expected yhat of shape (N, ...), got {_shape(yhat)}")
            )
        return kind

    def _check_target_array(self, y, kind, yhat, method: str):
        """``y`` must come from the same library and device as ``yhat``."""
        try:
            other = kind_of(y)
        except TypeError as exc:
            raise TypeError(self._error(method, f"y: {exc}")) from None
        if other is not kind:
            raise TypeError(
                self._error(
                    method,
                    f"y is a {other.name} array but yhat is a {kind.name} array; move it with "
                    "backprop.asarray(y)",
                )
            )
        if kind.device_of(y) != kind.device_of(yhat):
            raise ValueError(
                self._error(
                    method,
                    f"y is on device {y.device} but yhat is on {yhat.device}; move it with "
                    "backprop.asarray(y)",
                )
            )
