"""Embedding: integer indices to learned vectors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._checks import parameter_shape, positive_int, prod
from .backends import get_backend, kind_of, normal
from .module import Module

if TYPE_CHECKING:
    from ._typing import Array
    from .backends.random import RNG

__all__ = ["Embedding"]


class Embedding(Module):
    """A lookup table: each integer index selects a row of ``weight`` (PyTorch's ``nn.Embedding``,
    Torch7's ``nn.LookupTable``).

    Parameters
    ----------
    num_embeddings : int
        Size of the table (indices lie in ``[0, num_embeddings)``).
    embedding_dim : int
        Size of each vector.
    rng : None, int or numpy Generator, optional

    Shape
    -----
    integer ``(N, *)`` -> ``(N, *, embedding_dim)``.

    Parameters (``_parameters``)
    ----------------------------
    weight ``(num_embeddings, embedding_dim)``, drawn from N(0, 1) as PyTorch's.

    Notes
    -----
    The input is integer indices, not a gradient path: ``backward_delta``
    returns None (nothing flows to an index). Out-of-range indices and
    non-integer input are errors. The weight gradient adds up the rows of
    ``delta`` of every occurrence of an index.
    """

    torch_names = ("Embedding",)

    def __init__(self, num_embeddings: int, embedding_dim: int, *, rng: RNG = None) -> None:
        super().__init__()
        self.num_embeddings = positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = positive_int("Embedding", "embedding_dim", embedding_dim)
        shape = parameter_shape("Embedding", (self.num_embeddings, self.embedding_dim))
        self.add_parameter("weight", normal(shape, rng=rng, backend=get_backend()))

    def get_config(self) -> dict:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        n = positive_int("Embedding", "num_embeddings", config["num_embeddings"])
        return {"weight": (n, positive_int("Embedding", "embedding_dim", config["embedding_dim"]))}

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*input_shape, self.embedding_dim)

    def _indices(self, X, method: str, check_values: bool = True):
        b = self._backend
        try:
            cls = kind_of(X)
        except TypeError as exc:
            raise TypeError(self._error(method, f"input: {exc}")) from None
        if cls is not type(b) or not b.on_device(X):
            raise TypeError(
                self._error(
                    method,
                    f"input is on {cls.name} but the parameters live on {b.describe()}; move it "
                    "with backprop.asarray(x, backend=module.backend) or move the module with "
                    "module.to(...)",
                )
            )
        if not b.xp.isdtype(X.dtype, "integral"):
            raise TypeError(self._error(method, f"expected integer indices, got dtype {X.dtype}"))
        if X.ndim < 1:
            raise ValueError(
                self._error(method, f"expected input of shape (N, ...), got {tuple(X.shape)}")
            )
        unknown = False  # whether the values could not be read (a compiled step's tracer)
        bad = self._out_of_range(X) if check_values and prod(X.shape) else False
        if bad is None:
            unknown = True
        elif bad:
            low, high = int(b.xp.min(X)), int(b.xp.max(X))
            raise ValueError(
                self._error(
                    method,
                    f"indices must lie in [0, {self.num_embeddings}), got values from {low} to "
                    f"{high}",
                )
            )
        return X, unknown

    def _out_of_range(self, X):
        """Whether an index is out of range; None when the values cannot be read here (a
        traced value inside a compiled step)."""
        xp = self._backend.xp
        try:
            return bool(xp.any((X < 0) | (self.num_embeddings <= X)))  # one read
        except Exception:  # a tracer refuses bool(): the compiled step poisons such rows
            return None

    def forward(self, X: Array) -> Array:
        X, unknown = self._indices(X, "forward")
        xp = self._backend.xp
        flat = xp.reshape(X, (prod(X.shape),))
        W = self._parameters["weight"]
        if unknown:
            # values unknown until run (a compiled step): an index out of range gives NaN rows,
            # which stop the training with a DivergenceError, never another row's vector
            valid = (flat >= 0) & (flat < self.num_embeddings)
            rows = xp.take(W, xp.where(valid, flat, xp.zeros_like(flat)), axis=0)
            rows = xp.where(valid[:, None], rows, xp.asarray(float("nan"), dtype=W.dtype))
        else:
            rows = xp.take(W, flat, axis=0)
        return xp.reshape(rows, (*X.shape, self.embedding_dim))

    def backward_update_gradient(self, input: Array, delta: Array) -> None:
        input, _ = self._indices(input, "backward_update_gradient", check_values=False)
        delta = self.check_delta(
            delta, (*input.shape, self.embedding_dim), "backward_update_gradient"
        )
        b = self._backend
        n = prod(input.shape)
        grad = b.xp.zeros_like(self._parameters["weight"])
        grad = b.index_add_rows(
            grad, b.xp.reshape(input, (n,)), b.xp.reshape(delta, (n, self.embedding_dim))
        )
        self.accumulate_gradient("weight", grad)

    def backward_delta(self, input: Array, delta: Array) -> None:
        return None  # indices have no gradient

    def export_onnx(self, graph, value):
        # the graph's input is float: indices are cast back (exact below 2^24)
        index = graph.node("Cast", [value.name], to=graph.TensorProto.INT64)
        out = graph.node("Gather", [graph.param(self, "weight"), index], axis=0)
        return type(value)(out, (*value.shape, self.embedding_dim))

    def to_torch(self, converter):
        layer = converter.nn.Embedding(self.num_embeddings, self.embedding_dim)
        converter.set(layer, "weight", converter.tensor(self._parameters["weight"]))
        converter.sequence()
        return layer

    @classmethod
    def from_torch(cls, module, converter) -> Embedding:
        converter.refuse_unless(
            module, padding_idx=None, max_norm=None, scale_grad_by_freq=False, sparse=False
        )
        layer = cls(module.num_embeddings, module.embedding_dim)
        layer.load_state_dict({"weight": converter.array(module.weight)})
        converter.sequence()
        return layer
