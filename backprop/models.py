"""The assignment's networks, defined once: the CLI, the experiments and the benchmarks build them
here.

Each builder draws its weights from the library's host generator (seed it
with :func:`backprop.manual_seed`) and sizes the network for its data.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._checks import positive_int
from .activations import ReLU, Sigmoid, TanH
from .autoencoder import build_autoencoder
from .containers import Concat, Sequentiel
from .conv import Conv1D, Conv2D
from .linear import Linear
from .pooling import MaxPool1D, MaxPool2D
from .shape import Flatten, Reshape, Transpose

__all__ = ["autoencoder", "binary_classifier", "cnn1d", "cnn2d", "mlp", "two_branch"]


def binary_classifier(n_features: int = 64, hidden: int = 32) -> Sequentiel:
    """Part 2 of the assignment: ``Linear(n_features, hidden) -> TanH -> Linear(hidden, 1) ->
    Sigmoid``.

    Shape: ``(N, n_features)`` -> ``(N, 1)``, probabilities for MSELoss or BCELoss.
    """
    return Sequentiel(Linear(n_features, hidden), TanH(), Linear(hidden, 1), Sigmoid())


def mlp(n_features: int = 64, n_classes: int = 10, hidden: int = 100) -> Sequentiel:
    """Part 4: ``Linear(n_features, hidden) -> TanH -> Linear(hidden, n_classes)``, raw scores for
    CELogSoftmax.

    Shape: ``(N, n_features)`` -> ``(N, n_classes)``.
    """
    return Sequentiel(Linear(n_features, hidden), TanH(), Linear(hidden, n_classes))


def cnn1d(n_features: int = 64, n_classes: int = 10) -> Sequentiel:
    """Part 6: images read as sequences of ``n_features`` pixels with one channel.

    ``Reshape((n_features, 1)) -> Conv1D(3,1,32) -> MaxPool1D(2,2) -> Flatten ->
    Linear(32 * ((n_features - 2) // 2), 100) -> ReLU -> Linear(100, n_classes)``: 992
    inputs to the first Linear on the 8x8 digits, 4064 on 16x16 images.

    Shape: ``(N, n_features)`` -> ``(N, n_classes)``.
    """
    if positive_int("cnn1d", "n_features", n_features) < 4:
        raise ValueError(f"cnn1d: the network needs at least 4 input values, got {n_features}")
    return Sequentiel(
        Reshape((n_features, 1)),
        Conv1D(3, 1, 32),
        MaxPool1D(2, 2),
        Flatten(),
        Linear((n_features - 2) // 2 * 32, 100),
        ReLU(),
        Linear(100, n_classes),
    )


def cnn2d(image_shape: tuple = (8, 8), n_classes: int = 10) -> Sequentiel:
    """Part 7, a 2-D convolution on ``(height, width)`` images (channels last).

    ``Reshape((h, w, 1)) -> Conv2D(3,1,16) -> ReLU -> MaxPool2D(2) -> Flatten -> Linear -> ReLU ->
    Linear``.

    Shape: ``(N, h * w)`` -> ``(N, n_classes)``.
    """
    h, w = image_shape
    if h < 4 or w < 4:
        raise ValueError(f"cnn2d: images must be at least 4x4, got {h}x{w}")
    return Sequentiel(
        Reshape((h, w, 1)),
        Conv2D(3, 1, 16),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Linear((h - 2) // 2 * ((w - 2) // 2) * 16, 100),
        ReLU(),
        Linear(100, n_classes),
    )


def two_branch(side: int = 8, n_classes: int = 10, channels: int = 16) -> Sequentiel:
    """Part 7: horizontal and vertical patterns, two Conv1D branches concatenated.

    The first branch reads each ``side x side`` image row by row, the second
    column by column (the image transposed), so their 1-D kernels see
    horizontal and vertical strokes respectively.

    Shape: ``(N, side * side)`` -> ``(N, n_classes)``.
    """
    n = side * side

    def branch(*head):
        return Sequentiel(
            *head, Reshape((n, 1)), Conv1D(3, 1, channels), ReLU(), MaxPool1D(2), Flatten()
        )

    return Sequentiel(
        Concat(branch(), branch(Reshape((side, side)), Transpose((1, 0))), axis=1),
        Linear(2 * ((n - 2) // 2) * channels, 100),
        ReLU(),
        Linear(100, n_classes),
    )


def autoencoder(sizes: Sequence[int] = (64, 100, 10), *, tied: bool = False) -> Sequentiel:
    """Part 5: the symmetric autoencoder ``sizes[0] -> ... -> sizes[-1] -> ... -> sizes[0]``
    (TanH inside, Sigmoid out), for BCELoss on inputs in [0, 1].

    Shape: ``(N, sizes[0])`` -> ``(N, sizes[0])``. :func:`backprop.build_autoencoder`
    gives the encoder and decoder halves too.
    """
    return build_autoencoder(sizes, tied=tied).network
