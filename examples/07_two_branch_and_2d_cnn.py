"""Part 7 of the assignment: horizontal plus vertical patterns, and "real" 2-D convolutions.

A 1-D convolution over an image read row after row sees horizontal strokes;
over the transposed image (read column after column) it sees vertical ones.
``Concat`` runs two such branches on the same input and joins their outputs
along the feature axis, and one classifier reads both. The second network
convolves the image as an image: ``Conv2D`` takes ``(batch, height, width,
chan_in)`` (channels last, like ``Conv1D``), ``MaxPool2D`` pools 2x2 windows.
The row branch uses ``AvgPool1D`` (the mean of a window) where the column
branch uses ``MaxPool1D``, the other variant the assignment suggests.

Run: ``python examples/07_two_branch_and_2d_cnn.py``
"""

import backprop as bp
from backprop import (
    SGD,
    AvgPool1D,
    CELogSoftmax,
    Concat,
    Conv1D,
    Conv2D,
    Flatten,
    Linear,
    MaxPool1D,
    MaxPool2D,
    ReLU,
    Reshape,
    Sequentiel,
    Transpose,
)

X_train, X_test, y_train, y_test = bp.load_digits()  # (n, 64): 8x8 images, row by row


def branch(pool, *head):
    """(batch, 64) -> 1-D convolution over 64 positions -> (batch, 31 * 16)."""
    return Sequentiel(*head, Reshape((64, 1)), Conv1D(3, 1, 16), ReLU(), pool, Flatten())


bp.manual_seed(0)
rows = branch(AvgPool1D(2))  # the image as it comes: rows
columns = branch(MaxPool1D(2), Reshape((8, 8)), Transpose((1, 0)))  # transposed: columns
two_branch = Sequentiel(
    Concat(rows, columns, axis=1),  # (batch, 496) and (batch, 496) -> (batch, 992)
    Linear(2 * 31 * 16, 100),
    ReLU(),
    Linear(100, 10),
)

bp.manual_seed(0)
cnn2d = Sequentiel(
    Reshape((8, 8, 1)),  # (batch, height, width, chan_in)
    Conv2D(3, 1, 16),  # -> (batch, 6, 6, 16)
    ReLU(),
    MaxPool2D(2),  # -> (batch, 3, 3, 16)
    Flatten(),  # -> (batch, 144)
    Linear(3 * 3 * 16, 100),
    ReLU(),
    Linear(100, 10),
)

for name, net in (("two-branch CNN (rows + columns)", two_branch), ("2-D CNN", cnn2d)):
    history = SGD(net, CELogSoftmax(), X_train, y_train, batch_size=32, epochs=12, eps=0.1, seed=0)
    print(
        f"{name:<32s} {net.n_parameters():6d} parameters, final cost {history[-1]:.4f}, "
        f"test accuracy: {bp.accuracy(net.forward(X_test), y_test):.4f}"
    )
