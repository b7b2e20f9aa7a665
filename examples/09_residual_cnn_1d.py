"""A residual 1-D CNN with padding and batch normalisation, the digits read as 1-D signals.

Each 8x8 digit is a sequence of 64 pixels with one channel. ``padding=1``
keeps the length through every 3-wide convolution, so a ``Residual`` block
can add its input to its output (He et al., 2016); ``BatchNorm1D``
normalises each channel over the batch and the positions (running
statistics for evaluation).

Run: ``python examples/09_residual_cnn_1d.py``
"""

import backprop as bp
from backprop import (
    SGD,
    BatchNorm1D,
    CELogSoftmax,
    Conv1D,
    Flatten,
    Linear,
    MaxPool1D,
    ReLU,
    Reshape,
    Residual,
    Sequentiel,
)


def block(channels):
    return Residual(
        Sequentiel(
            Conv1D(3, channels, channels, padding=1),
            BatchNorm1D(channels),
            ReLU(),
            Conv1D(3, channels, channels, padding=1),
            BatchNorm1D(channels),
        )
    )


def main():
    bp.manual_seed(0)
    X_train, X_test, y_train, y_test = bp.load_digits()
    net = Sequentiel(
        Reshape((64, 1)),
        Conv1D(3, 1, 16, padding=1),  # (N, 64, 16): 'same' length
        BatchNorm1D(16),
        ReLU(),
        block(16),
        ReLU(),
        MaxPool1D(2),  # (N, 32, 16)
        Flatten(),
        Linear(32 * 16, 10),
    )
    print(net.summary((64,)))
    SGD(net, CELogSoftmax(), X_train, y_train, batch_size=32, epochs=8, eps=1e-3, optimizer="adam")
    net.eval()  # running statistics from here on
    print("test accuracy:", round(float(bp.accuracy(net.forward(X_test), y_test)), 4))


if __name__ == "__main__":
    main()
