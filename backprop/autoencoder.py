"""Autoencoders: a builder for symmetric networks, and noise for denoising."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._checks import positive_int
from .activations import Sigmoid, TanH
from .backends import backend_of, bernoulli, normal
from .containers import Sequentiel
from .linear import Linear, TiedLinear
from .module import Module

if TYPE_CHECKING:
    from ._typing import Array
    from .backends.random import RNG

__all__ = ["Autoencoder", "build_autoencoder", "gaussian_noise", "masking_noise"]


@dataclass
class Autoencoder:
    """What :func:`build_autoencoder` returns: the two halves and the whole (sharing modules)."""

    encoder: Sequentiel
    decoder: Sequentiel
    network: Sequentiel


def build_autoencoder(
    sizes: Sequence[int],
    *,
    activation: type[Module] | None = TanH,
    latent_activation: type[Module] | None = TanH,
    output_activation: type[Module] | None = Sigmoid,
    tied: bool = False,
    rng: RNG = None,
) -> Autoencoder:
    """A symmetric autoencoder ``sizes[0] -> ... -> sizes[-1] -> ... -> sizes[0]``.

    Parameters
    ----------
    sizes : sequence of int
        Input size, hidden sizes, latent size; e.g. ``(256, 100, 10)`` gives
        the assignment's ``Linear(256,100) TanH Linear(100,10) TanH`` encoder and
        ``Linear(10,100) TanH Linear(100,256) Sigmoid`` decoder.
    activation, latent_activation, output_activation : Module class or None
        After each hidden layer, after the code, after the output (None: none).
    tied : bool
        Decoder layers use the transposed encoder weights (:class:`TiedLinear`).
    rng : None, int or numpy Generator
        Source of the initial weights.
    """
    sizes = tuple(positive_int("build_autoencoder", "each size", s) for s in sizes)
    if len(sizes) < 2:
        raise ValueError(
            f"build_autoencoder: sizes must be at least two positive ints, got {sizes!r}"
        )

    def make(cls) -> list[Module]:
        return [cls()] if cls is not None else []

    encoder, linears = Sequentiel(), []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        lin = Linear(a, b, rng=rng)
        linears.append(lin)
        encoder.add(lin)
        for m in make(latent_activation if i == len(sizes) - 2 else activation):
            encoder.add(m)
    decoder = Sequentiel()
    for i, lin in enumerate(reversed(linears)):
        decoder.add(
            TiedLinear(lin, rng=rng) if tied else Linear(lin.out_features, lin.in_features, rng=rng)
        )
        for m in make(output_activation if i == len(linears) - 1 else activation):
            decoder.add(m)
    return Autoencoder(encoder, decoder, Sequentiel(encoder, decoder))


def gaussian_noise(X: Array, std: float, *, clip: bool = True, rng: RNG = None) -> Array:
    """``X`` plus N(0, std^2) noise, clipped to [0, 1] by default (pixel data)."""
    if std < 0:
        raise ValueError(f"gaussian_noise: std must be non-negative, got {std!r}")
    noisy = X + normal(tuple(X.shape), std, rng=rng, backend=backend_of(X))
    if clip:
        noisy = backend_of(X).xp.clip(noisy, 0.0, 1.0)
    return noisy


def masking_noise(X: Array, fraction: float, *, rng: RNG = None) -> Array:
    """``X`` with each entry set to 0 with probability ``fraction`` (masking corruption)."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"masking_noise: fraction must lie in [0, 1], got {fraction!r}")
    return X * bernoulli(1 - fraction, tuple(X.shape), rng=rng, backend=backend_of(X))
