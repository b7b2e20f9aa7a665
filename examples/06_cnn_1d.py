"""Part 6 of the assignment: a 1-D convolutional network, ``(batch, length, chan_in)`` throughout.

Each 8x8 digit is read as a sequence of 64 pixels with one channel, so a
batch has shape ``(batch, 64, 1)``. The assignment's network:

* ``Conv1D(3, 1, 32)``: 32 filters of size ``(k_size=3, chan_in=1)``, weight
  ``(3, 1, 32)``; output ``(batch, (64 - 3) // 1 + 1, 32) = (batch, 62, 32)``;
* ``MaxPool1D(2, 2)``: the largest value of each window of 2, moved by 2:
  ``(batch, (62 - 2) // 2 + 1, 32) = (batch, 31, 32)``;
* ``Flatten()``: ``(batch, 31 * 32) = (batch, 992)``;
* ``Linear(992, 100)``, ``ReLU()``, ``Linear(100, 10)``, trained with
  ``CELogSoftmax``.

(On the assignment's 16x16 images the first Linear has 4064 inputs instead
of 992.)

Run: ``python examples/06_cnn_1d.py``
"""

import backprop as bp
from backprop import (
    SGD,
    CELogSoftmax,
    Conv1D,
    Flatten,
    Linear,
    MaxPool1D,
    ReLU,
    Reshape,
    Sequentiel,
)

bp.manual_seed(0)
X_train, X_test, y_train, y_test = bp.load_digits()  # (n, 64)

cnn = Sequentiel(
    Reshape((64, 1)),  # (batch, 64) -> (batch, length=64, chan_in=1)
    Conv1D(3, 1, 32),
    MaxPool1D(2, 2),
    Flatten(),
    Linear(992, 100),
    ReLU(),
    Linear(100, 10),
)

# follow one batch of 5 images through the network
x = X_train[:5, ...]
print(f"input {tuple(x.shape)}")
for module in cnn:
    x = module.forward(x)
    print(f"  {type(module).__name__:<10s} -> {tuple(x.shape)}")
conv_weight = cnn[1].state_dict()["weight"]
print(f"Conv1D weight {tuple(conv_weight.shape)}, {cnn.n_parameters()} parameters in all")

history = SGD(cnn, CELogSoftmax(), X_train, y_train, batch_size=32, epochs=12, eps=0.1, seed=0)
print(f"cost: epoch 1 {history[0]:.4f}, epoch {len(history)} {history[-1]:.4f}")
print(f"test accuracy: {bp.accuracy(cnn.forward(X_test), y_test):.4f}")
