"""Host random numbers: initial weights, shuffles, noise and dropout masks.

The Array API standard has no random module, so every random draw is made
on the host by a NumPy ``Generator`` and moved to the backend: the same
seed gives the same numbers on every backend.

The library's generator belongs to the current context (a
:class:`contextvars.ContextVar`): :func:`manual_seed` in a thread seeds that
thread's stream only, so two threads that each seed and train reproduce the
single-thread result. A thread that never seeds uses the process-wide
generator.
"""

from __future__ import annotations

import contextvars
import operator
import threading
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

if TYPE_CHECKING:
    from .._typing import Array
    from .base import Backend

__all__ = [
    "bernoulli", "derived_rng", "generator_state", "host_rng", "manual_seed", "normal",
    "permutation", "set_generator_state", "uniform",
]  # fmt: skip

#: what an ``rng`` argument takes: None (the library's generator), an int seed or a NumPy
#: ``Generator``
RNG: TypeAlias = int | np.random.Generator | None

_process_generator = np.random.default_rng()
_generator: contextvars.ContextVar[np.random.Generator | None] = contextvars.ContextVar(
    "backprop_rng", default=None
)


def _seed(owner: str, seed) -> int:
    try:
        value = operator.index(seed)
    except TypeError:
        raise TypeError(f"{owner}: seed must be an int, got {type(seed).__name__}") from None
    if isinstance(seed, bool) or value < 0:
        raise ValueError(f"{owner}: seed must be a non-negative int, got {seed!r}")
    return value


def manual_seed(seed: int) -> None:
    """Reseed the library's host generator for the current thread or context.

    From the main thread it also becomes the generator of threads that never
    seed their own.
    """
    global _process_generator
    generator = np.random.default_rng(_seed("manual_seed", seed))
    _generator.set(generator)
    if threading.current_thread() is threading.main_thread():
        _process_generator = generator


def host_rng(rng: RNG = None) -> np.random.Generator:
    """A NumPy ``Generator``: the library's own when ``rng`` is None, a new one from an int seed, or
    ``rng`` itself."""
    if rng is None:
        current = _generator.get()
        return _process_generator if current is None else current
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(_seed("rng", rng))
    raise TypeError(f"rng must be None, an int seed or a numpy Generator, got {type(rng).__name__}")


def derived_rng(*keys: int) -> np.random.Generator:
    """A generator determined by the non-negative integers ``keys`` alone (``numpy``'s
    ``SeedSequence(keys)``): the same keys give the same stream in any process, and streams of
    different keys are independent (for a worker's rows or masks at an epoch and a step)."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def generator_state(rng: RNG = None) -> dict:
    """The state of a generator (the library's by default), JSON-serialisable: for checkpoints."""
    return host_rng(rng).bit_generator.state


def set_generator_state(state: dict, rng: RNG = None) -> None:
    """Put a generator (the library's by default) back in the state :func:`generator_state`
    returned."""
    gen = host_rng(rng)
    try:
        gen.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ValueError(f"set_generator_state: not a generator state ({exc})") from None


def _put(values, backend):
    from . import asarray  # the face imports this module

    return asarray(values, backend=backend)


def uniform(
    low: float,
    high: float,
    shape: int | tuple[int, ...],
    *,
    rng: RNG = None,
    backend: Backend | None = None,
) -> Array:
    """U(low, high) samples of ``shape`` on the backend (drawn in float64 on the host)."""
    return _put(host_rng(rng).uniform(low, high, size=shape), backend)


def normal(
    shape: int | tuple[int, ...],
    std: float = 1.0,
    *,
    rng: RNG = None,
    backend: Backend | None = None,
) -> Array:
    """N(0, std^2) samples of ``shape`` on the backend."""
    return _put(host_rng(rng).normal(0.0, std, size=shape), backend)


def bernoulli(
    p_one: float, shape: int | tuple[int, ...], *, rng: RNG = None, backend: Backend | None = None
) -> Array:
    """Float array of ``shape`` with ones drawn with probability ``p_one`` and zeros elsewhere."""
    return _put((host_rng(rng).random(size=shape) < p_one).astype(np.float64), backend)


def permutation(n: int, *, rng: RNG = None, backend: Backend | None = None) -> Array:
    """A random permutation of ``range(n)`` as an integer array on the backend."""
    return _put(host_rng(rng).permutation(n), backend)
