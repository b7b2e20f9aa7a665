"""A GRU classifier: each 8x8 digit read as 8 time steps of 8 pixels (its rows, top to bottom).

``GRU(8, 32)`` returns every hidden state ``(N, 8, 32)``; ``Select(1, -1)``
keeps the last one, which has seen the whole image, for the classifier.
Backpropagation through time is written out in ``backprop/recurrent.py``.

Run: ``python examples/10_gru_digits.py``
"""

import backprop as bp
from backprop import GRU, SGD, CELogSoftmax, Linear, Reshape, Select, Sequentiel


def main():
    bp.manual_seed(0)
    X_train, X_test, y_train, y_test = bp.load_digits()
    net = Sequentiel(Reshape((8, 8)), GRU(8, 32), Select(1, -1), Linear(32, 10))
    SGD(net, CELogSoftmax(), X_train, y_train, batch_size=32, epochs=25, eps=1e-2, optimizer="adam")
    print("test accuracy:", round(float(bp.accuracy(net.forward(X_test), y_test)), 4))


if __name__ == "__main__":
    main()
