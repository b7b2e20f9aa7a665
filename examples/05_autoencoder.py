"""Part 5 of the assignment: an autoencoder trained with the binary cross-entropy ``BCELoss``.

The assignment's architecture, scaled to the 8x8 digits (64 pixels instead
of 256): the encoder ``Linear(64,32) TanH Linear(32,10) TanH`` squeezes an
image into a code of 10 numbers, the decoder ``Linear(10,32) TanH
Linear(32,64) Sigmoid`` rebuilds the image from it. The sigmoid keeps the
output in [0, 1] like the pixels, which is what the BCE needs. Training is
unsupervised: the target is the input itself.

Two checks on the 450 test images, which training never sees: the
reconstruction beats the best constant guess (the mean training image) by
far, and the codes keep what tells the digits apart (a nearest-neighbour
classifier in the 10-D code space).

``build_autoencoder((64, 32, 10))`` builds the same network in one call; the
study in docs/autoencoder.md goes much further.

Run: ``python examples/05_autoencoder.py``
"""

import backprop as bp
from backprop import SGD, BCELoss, Linear, Sequentiel, Sigmoid, TanH

bp.manual_seed(0)
X_train, X_test, y_train, y_test = bp.load_digits()  # pixels in [0, 1]

encoder = Sequentiel(Linear(64, 32), TanH(), Linear(32, 10), TanH())
decoder = Sequentiel(Linear(10, 32), TanH(), Linear(32, 64), Sigmoid())
autoencoder = Sequentiel(encoder, decoder)  # containers nest: the two halves share their modules

history = SGD(
    autoencoder,
    BCELoss(),
    X_train,
    X_train,
    batch_size=32,
    epochs=60,
    eps=0.01,
    optimizer="adam",
    seed=0,
)
print(f"BCE per image: epoch 1 {history[0]:.2f}, epoch {len(history)} {history[-1]:.2f}")

pixels_train, pixels_test = bp.to_numpy(X_train), bp.to_numpy(X_test)
reconstruction = bp.to_numpy(autoencoder.forward(X_test))
mse = float(((reconstruction - pixels_test) ** 2).mean())
baseline = float(((pixels_train.mean(axis=0) - pixels_test) ** 2).mean())
print(f"test MSE per pixel: {mse:.4f} (mean training image: {baseline:.4f})")
print(f"reconstruction error ratio: {mse / baseline:.3f}")


def nearest_neighbour_accuracy(train, test):
    """Label of the closest training row, compared with the true test label."""
    d2 = (test**2).sum(1)[:, None] - 2 * test @ train.T + (train**2).sum(1)[None, :]
    predicted = bp.to_numpy(y_train)[d2.argmin(axis=1)]
    return float((predicted == bp.to_numpy(y_test)).mean())


codes_train = bp.to_numpy(encoder.forward(X_train)).astype(float)
codes_test = bp.to_numpy(encoder.forward(X_test)).astype(float)
on_pixels = nearest_neighbour_accuracy(pixels_train, pixels_test)
on_codes = nearest_neighbour_accuracy(codes_train, codes_test)
print(f"1-nearest-neighbour accuracy on the 64 pixels: {on_pixels:.4f}")
print(f"1-nearest-neighbour accuracy on the 10-D codes: {on_codes:.4f}")
