"""A convolutional autoencoder: convolutions down to a 4x4x4 code, a transposed convolution up.

Encoder: ``Conv2D(3, 1, 8, padding=1)`` (8x8x8), ``MaxPool2D(2)`` (4x4x8),
``Conv2D(3, 8, 4, padding=1)`` (the 4x4x4 code, 64 values, as many as the
pixels). Decoder: ``ConvTranspose2D(2, 4, 8, stride=2)`` back to 8x8x8, then
a ``Conv2D(3, 8, 1, padding=1)`` and a ``Sigmoid`` for pixels in [0, 1]
(Torch7's ``SpatialFullConvolution`` is the transposed convolution).

Run: ``python examples/11_conv_autoencoder.py``
"""

import backprop as bp
from backprop import (
    SGD,
    Conv2D,
    ConvTranspose2D,
    MaxPool2D,
    MSELoss,
    ReLU,
    Reshape,
    Sequentiel,
    Sigmoid,
)


def main():
    bp.manual_seed(0)
    X_train, X_test, _, _ = bp.load_digits()
    encoder = Sequentiel(
        Reshape((8, 8, 1)),
        Conv2D(3, 1, 8, padding=1),
        ReLU(),
        MaxPool2D(2),
        Conv2D(3, 8, 4, padding=1),
        ReLU(),
    )
    decoder = Sequentiel(
        ConvTranspose2D(2, 4, 8, stride=2),
        ReLU(),
        Conv2D(3, 8, 1, padding=1),
        Sigmoid(),
        Reshape((64,)),
    )
    net = Sequentiel(encoder, decoder)
    SGD(net, MSELoss(), X_train, X_train, batch_size=32, epochs=30, eps=1e-2, optimizer="adam")
    xp = bp.get_backend().xp
    error = float(xp.mean((net.forward(X_test) - X_test) ** 2))
    baseline = float(xp.mean((xp.mean(X_train, axis=0) - X_test) ** 2))
    print("test reconstruction MSE per pixel:", round(error, 5))
    print("mean-image baseline MSE per pixel:", round(baseline, 5))


if __name__ == "__main__":
    main()
