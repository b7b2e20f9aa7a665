"""Part 2 of the assignment: a non-linear binary classifier with ``TanH`` and ``Sigmoid``.

Two linear layers with a tanh between them and a sigmoid at the output,
trained with ``MSELoss`` on labels 1 (positive) and 0 (negative). The data
are two interleaved half-moons that no straight line separates, so the
hidden tanh layer is what makes the problem solvable. Forward and backward
passes are chained by hand, module by module, in reverse for the backward
pass: each module first adds its parameter gradient
(``backward_update_gradient``), then hands the delta to the module before it
(``backward_delta``).

Run: ``python examples/02_binary_classification.py``
"""

import numpy as np

import backprop as bp
from backprop import Linear, MSELoss, Sigmoid, TanH

bp.manual_seed(0)
rng = np.random.default_rng(0)


def two_moons(n):
    """``n`` points in 2-D on two interleaved half-circles, with labels 0 and 1."""
    t = rng.uniform(0, np.pi, size=n)
    label = rng.integers(0, 2, size=n)
    x = np.where(label == 0, np.cos(t), 1 - np.cos(t))
    y = np.where(label == 0, np.sin(t), 0.5 - np.sin(t))
    points = np.stack([x, y], axis=1) + 0.1 * rng.normal(size=(n, 2))
    return points, label[:, None].astype(float)  # targets as a column: (n, 1)


x_train, y_train = two_moons(800)
x_test, y_test = two_moons(400)
X, Y = bp.asarray(x_train), bp.asarray(y_train)

lin1, tanh, lin2, sigmoid = Linear(2, 16), TanH(), Linear(16, 1), Sigmoid()
loss = MSELoss()
step = 0.5
for epoch in range(100):
    for start in range(0, 800, 40):  # mini-batches of 40 rows
        x, y = X[start : start + 40, ...], Y[start : start + 40, ...]
        for m in (lin1, lin2):
            m.zero_grad()
        # forward: keep every module's input, the backward rules need them
        z1 = lin1.forward(x)
        h1 = tanh.forward(z1)
        z2 = lin2.forward(h1)
        yhat = sigmoid.forward(z2)
        # backward, last module first
        delta = loss.backward(y, yhat)
        delta = sigmoid.backward_delta(z2, delta)
        lin2.backward_update_gradient(h1, delta)
        delta = lin2.backward_delta(h1, delta)
        delta = tanh.backward_delta(z1, delta)
        lin1.backward_update_gradient(x, delta)
        for m in (lin1, lin2):
            m.update_parameters(gradient_step=step)
    if epoch % 25 == 0:
        cost = loss.forward(Y, sigmoid.forward(lin2.forward(tanh.forward(lin1.forward(X)))))
        print(f"epoch {epoch:2d}  mean cost {float(bp.to_numpy(cost).mean()):.4f}")


def predict(x_host):
    proba = sigmoid.forward(lin2.forward(tanh.forward(lin1.forward(bp.asarray(x_host)))))
    return (bp.to_numpy(proba) > 0.5).astype(float)


print(f"train accuracy: {(predict(x_train) == y_train).mean():.4f}")
print(f"test accuracy: {(predict(x_test) == y_test).mean():.4f}")
