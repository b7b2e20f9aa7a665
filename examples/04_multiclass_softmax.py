"""Part 4 of the assignment: ten classes with ``Softmax``, cross-entropy and ``CELogSoftmax``.

The network ends with one score per class. Three ways to train it on the
bundled 8x8 digits, each from the same initial weights:

* ``Softmax`` then ``MSELoss`` against one-hot rows: it gets there, but the
  squared error pulls the probabilities towards 0 and 1 gently, so it is
  well behind the cross-entropy after the first epochs;
* ``LogSoftmax`` then ``CrossEntropyLoss`` (the cost ``-yhat[y]`` on
  log-probabilities, Torch7's ClassNLLCriterion);
* ``CELogSoftmax`` on the raw scores: the same cost as the previous one,
  fused into one numerically stable loss.

Run: ``python examples/04_multiclass_softmax.py``
"""

import numpy as np

import backprop as bp
from backprop import (
    SGD,
    CELogSoftmax,
    CrossEntropyLoss,
    Linear,
    LogSoftmax,
    MSELoss,
    Sequentiel,
    Softmax,
    TanH,
)

X_train, X_test, y_train, y_test = bp.load_digits()


def mlp(*head):
    bp.manual_seed(0)
    return Sequentiel(Linear(64, 100), TanH(), Linear(100, 10), *head)


# Softmax turns a row of scores into a probability distribution
probabilities = bp.to_numpy(Softmax().forward(bp.asarray([[1.0, 2.0, 3.0], [0.0, 0.0, 1000.0]])))
print("softmax of [1, 2, 3] and [0, 0, 1000]:", np.round(probabilities.astype(float), 4).tolist())

runs = {
    "Softmax + MSELoss (one-hot targets)": (mlp(Softmax()), MSELoss(), bp.one_hot),
    "LogSoftmax + CrossEntropyLoss": (mlp(LogSoftmax()), CrossEntropyLoss(), None),
    "CELogSoftmax on raw scores": (mlp(), CELogSoftmax(), None),
}
for name, (net, loss, encode) in runs.items():
    targets, test_targets = (y_train, y_test)
    if encode is not None:
        targets, test_targets = encode(y_train, 10), encode(y_test, 10)
    # the test set is only watched here (restore_best=False): nothing is chosen on it
    history = SGD(
        net,
        loss,
        X_train,
        targets,
        batch_size=32,
        epochs=20,
        eps=0.2,
        seed=0,
        validation=(X_test, test_targets),
        metric=bp.accuracy,
        restore_best=False,
    )
    # the largest score, probability or log-probability is the predicted class
    final = bp.accuracy(net.forward(X_test), y_test)
    print(
        f"{name:<36s} accuracy after 2 epochs {history.metric[1]:.4f}, "
        f"after {len(history)}: test accuracy: {final:.4f}"
    )
