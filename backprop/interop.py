"""Networks in and out of PyTorch: :func:`from_torch` and :func:`to_torch`.

Each layer converts itself (its ``torch_names``, ``from_torch`` and ``to_torch``);
this module walks the tree and carries what crosses layers. PyTorch's
convolutions and poolings are channels-first and the library's channels-last:
a converted network takes channels-last input (``x.permute(0, 2, 3, 1)`` for
images), and the ``Linear`` after a ``Flatten`` of such values has its input
rows reordered, so both networks compute the same function.
"""

from __future__ import annotations

from typing import Any

from .backends import asarray, get_backend, to_numpy
from .backends.torch_modules import load_torch
from .module import MODULE_TYPES, Module

__all__ = ["TorchConverter", "from_torch", "to_torch"]


def _by_torch_name() -> dict[str, type]:
    """Every registered layer class by the ``torch.nn`` class names it converts from (the
    library's own first, so a user's class never replaces one of them)."""
    found: dict[str, type] = {}
    ordered = sorted(MODULE_TYPES.values(), key=lambda c: not c.__module__.startswith("backprop."))
    for cls in ordered:
        for name in cls.__dict__.get("torch_names", ()):
            found.setdefault(name, cls)
    return found


def _same(value, expected) -> bool:
    """``value == expected``, where an int and a tuple of that int agree (torch stores both)."""
    if isinstance(expected, int) and not isinstance(expected, bool) and isinstance(value, tuple):
        return all(v == expected for v in value)
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(expected, tuple):
        return all(e == value for e in expected)
    return value == expected


class TorchConverter:
    """What the layers' ``from_torch`` / ``to_torch`` hooks use: ``nn`` (``torch.nn``), array
    and tensor conversions, children's conversion, and the order of features after a
    ``Flatten`` of channels-first values.

    Parameters
    ----------
    input_shape : tuple of int, optional
        One sample's shape, no batch axis, in the layout of the network being
        converted (PyTorch's channels-first for :func:`from_torch`, the
        library's channels-last for :func:`to_torch`). Needed when a
        ``Flatten`` follows a convolution or a pooling.
    """

    def __init__(self, input_shape: tuple[int, ...] | None = None) -> None:
        self.torch = load_torch()
        self.nn = self.torch.nn
        self.backend = get_backend()
        self._shape = None if input_shape is None else (1, *input_shape)
        self._sample = None  # a zero batch of one, PyTorch's layout (from_torch)
        self._channels_first = False  # whether PyTorch's layout differs from the library's here
        self._sequence = False  # whether a layer made (N, L, C) values
        self._order = None  # feature order for the next Linear after a Flatten
        self._direction = ""

    # ---------------------------------------------------------------- walking

    def convert(self, module: Any) -> Module:
        """The backprop layer for the ``torch.nn`` ``module`` (and its children)."""
        name = type(module).__name__
        cls = _by_torch_name().get(name)
        if cls is None or not isinstance(module, self.nn.Module):
            supported = ", ".join(sorted(_by_torch_name()))
            raise ValueError(
                f"from_torch: cannot convert {name} (type {type(module).__module__}.{name}); "
                f"supported torch.nn modules: {supported}"
            )
        layer = cls.from_torch(module, self)
        if not list(module.children()) and self._sample is not None:
            with self.torch.no_grad():
                out = module(self._sample)
            self._sample = out if isinstance(out, self.torch.Tensor) else None
        return layer

    def export(self, module: Module) -> Any:
        """The ``torch.nn`` module for the backprop ``module`` (and its children)."""
        if not isinstance(module, Module):
            raise TypeError(f"to_torch: expected a Module, got {type(module).__name__}")
        cls = type(module)
        if not cls._defines_at_least_as_late("to_torch", "forward", "chain_forward"):
            raise ValueError(
                f"to_torch: cannot convert {module._label()} (type {cls.__module__}."
                f"{cls.__qualname__}): it defines its own forward but not to_torch"
            )
        layer = module.to_torch(self)
        if not module.children() and self._shape is not None:
            self._shape = tuple(module.output_shape(self._shape))
        return layer

    # ------------------------------------------------------------- arrays

    def array(self, tensor: Any, axes: tuple[int, ...] | None = None) -> Any:
        """A copy of ``tensor`` as an array of the current backend (its dtype), permuted by
        ``axes``."""
        host = tensor.detach().to("cpu").numpy()
        out = asarray(host.copy(), backend=self.backend)
        return out if axes is None else self.backend.xp.permute_dims(out, axes)

    def tensor(self, array: Any, axes: tuple[int, ...] | None = None) -> Any:
        """A CPU tensor holding a copy of ``array`` (its precision), permuted by ``axes``."""
        t = self.torch.from_numpy(to_numpy(array).copy())
        return t if axes is None else t.permute(*axes).contiguous()

    def set(self, layer: Any, name: str, tensor: Any) -> None:
        """Store ``tensor`` as parameter or buffer ``name`` of the ``torch.nn`` ``layer``."""
        if name in dict(layer.named_parameters(recurse=False)):
            setattr(layer, name, self.nn.Parameter(tensor))
        elif name in dict(layer.named_buffers(recurse=False)):
            setattr(layer, name, tensor)
        else:
            raise ValueError(f"to_torch: {type(layer).__name__} has no parameter or buffer {name}")

    def refuse_unless(self, module: Any, **expected: Any) -> None:
        """A ValueError naming ``module`` and the first attribute that differs from what the
        library's layer computes (attributes the module lacks are not checked)."""
        missing = object()
        for attribute, value in expected.items():
            got = getattr(module, attribute, missing)
            if got is not missing and not _same(got, value):
                raise ValueError(
                    f"from_torch: {type(module).__name__} with {attribute}={got!r} is not "
                    f"supported (only {attribute}={value!r})"
                )

    # ------------------------------------------------------------ layouts

    def spatial(self) -> None:
        """Called by convolutions and poolings: values are channels-first in PyTorch from here."""
        self._channels_first = True

    def sequence(self) -> None:
        """Called by layers whose output is ``(N, L, C)`` in both libraries (recurrent layers,
        embeddings)."""
        self._channels_first = False
        self._sequence = True

    def channel_dim(self) -> int:
        """PyTorch's channel axis here (for ``to_torch``): 1 after convolutions, else -1."""
        return 1 if self._channels_first else -1

    def is_channel_dim(self, dim: int) -> bool:
        """Whether PyTorch's axis ``dim`` here is the channels, the library's last axis."""
        shape = self._current_shape()
        if shape is not None:
            rank = len(shape)
            channels = 1 if self._channels_first else rank - 1
            return -rank <= dim < rank and dim % rank == channels
        if self._channels_first:
            return dim == 1
        # (N, C) values, unless a recurrent layer made (N, L, C)
        return dim == -1 or (dim == 1 and not self._sequence)

    def _current_shape(self):
        if self._sample is not None:
            return tuple(self._sample.shape)
        return self._shape

    def flattened(self) -> None:
        """Called by ``Flatten``: record how the features it makes are ordered in each library."""
        if not self._channels_first:
            self._order = None
            self._sequence = False
            return
        shape = self._current_shape()
        if shape is None:
            raise ValueError(
                f"{self._direction}: a Flatten after a convolution or pooling needs the sample "
                "shape to order the next Linear's inputs: pass input_shape (one sample, no "
                "batch axis)"
            )
        xp = self.backend.xp
        inner = tuple(shape[1:])
        n = 1
        for s in inner:
            n *= s
        index = xp.reshape(xp.arange(n), inner)
        d = len(inner) - 1
        if self._direction == "from_torch":
            # torch's (C, *S) order -> ours (*S, C): at our position, torch's index
            perm = xp.permute_dims(index, (*range(1, d + 1), 0))
        else:
            # ours (*S, C) -> torch's (C, *S): at torch's position, our index
            perm = xp.permute_dims(index, (d, *range(d)))
        self._order = xp.reshape(perm, (n,))
        self._channels_first = self._sequence = False

    def linear_weight_from_torch(self, weight: Any) -> Any:
        """A Linear's ``(in, out)`` weight from torch's ``(out, in)``, rows in the library's
        feature order."""
        W = self.array(weight, (1, 0))
        order, self._order = self._order, None
        return W if order is None else self.backend.xp.take(W, order, axis=0)

    def linear_weight_to_torch(self, weight: Any) -> Any:
        """Torch's ``(out, in)`` weight from a Linear's ``(in, out)``, in torch's feature order."""
        order, self._order = self._order, None
        if order is not None:
            b = self.backend
            weight = b.xp.take(asarray(weight, backend=b), asarray(order, backend=b), axis=0)
        return self.tensor(weight, (1, 0))


def from_torch(module: Any, input_shape: tuple[int, ...] | int | None = None) -> Module:
    """A backprop network computing what the ``torch.nn`` ``module`` computes, on the current
    backend, with copies of its weights and buffers (running statistics included).

    Parameters
    ----------
    module : torch.nn.Module
        A tree of supported modules (``Sequential``, ``Linear``, ``Conv1d/2d``,
        poolings, activations, ``Flatten``, ``Dropout``... and every layer
        whose class lists the name in ``torch_names``).
    input_shape : tuple of int, optional
        One sample's shape in PyTorch's layout (``(C, H, W)``), needed when a
        ``Flatten`` follows a convolution or pooling.

    The returned network takes channels-last input (``x.permute(0, 2, 1)``
    of a ``(N, C, L)`` batch); its training mode is the module's.
    """
    converter = TorchConverter(_shape(input_shape, "from_torch"))
    converter._direction = "from_torch"
    if converter._shape is not None:
        converter._sample = converter.torch.zeros(
            converter._shape, dtype=next(iter(module.parameters()), converter.torch.zeros(0)).dtype
        )
    net = converter.convert(module)
    net.train(module.training)
    return net


def to_torch(net: Module, input_shape: tuple[int, ...] | int | None = None) -> Any:
    """A ``torch.nn`` module computing what ``net`` computes (CPU, the network's precision),
    with copies of its parameters and buffers.

    ``input_shape`` (one sample, the library's channels-last layout) is needed
    when a ``Flatten`` follows a convolution or pooling and the network does
    not fix its input shape. The returned module takes channels-first input.
    """
    if not isinstance(net, Module):
        raise TypeError(f"to_torch: expected a Module, got {type(net).__name__}")
    converter = TorchConverter(_shape(input_shape, "to_torch") or net.input_shape())
    converter._direction = "to_torch"
    b = None
    for m in net.unique_modules():
        m._ensure_backend()
        b = b or m.backend
    if b is not None:
        converter.backend = b
    layer = converter.export(net)
    if b is not None:
        layer = layer.to(
            converter.torch.float64 if b.dtype_name == "float64" else converter.torch.float32
        )
    layer.train(net.training)
    return layer


def _shape(input_shape, owner: str):
    if input_shape is None:
        return None
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(
            f"{owner}: input_shape must be one sample's shape (positive ints, no batch axis), "
            f"got {input_shape!r}"
        )
    return shape
