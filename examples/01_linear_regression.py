"""Part 1 of the assignment: linear regression with ``Linear`` and ``MSELoss``.

The training loop is written out by hand with the four calls every module
answers: ``zero_grad``, ``forward``, ``backward_update_gradient`` (adds
dL/dW to the module's gradient) and ``update_parameters``. The target is a
known affine map with two outputs plus a little noise, so the learned weights
can be compared with the true ones.

Run: ``python examples/01_linear_regression.py``
"""

import numpy as np

import backprop as bp
from backprop import Linear, MSELoss

bp.manual_seed(0)
rng = np.random.default_rng(0)

# y = x W + b + noise, with 3 input features and 2 outputs (the loss handles (N, d) targets)
true_W = np.array([[2.0, -1.0], [0.5, 3.0], [-1.5, 0.0]])
true_b = np.array([1.0, -2.0])
x_host = rng.normal(size=(500, 3))
y_host = x_host @ true_W + true_b + 0.05 * rng.normal(size=(500, 2))
X, Y = bp.asarray(x_host), bp.asarray(y_host)  # host data -> the current backend

linear, loss = Linear(3, 2), MSELoss()
for iteration in range(200):
    linear.zero_grad()
    yhat = linear.forward(X)  # (500, 3) -> (500, 2)
    cost = loss.forward(Y, yhat)  # one squared error per row: (500,)
    delta = loss.backward(Y, yhat)  # d(mean cost)/d yhat: (500, 2)
    linear.backward_update_gradient(X, delta)  # accumulate dL/dW and dL/db
    linear.update_parameters(gradient_step=0.1)  # W <- W - 0.1 dL/dW
    if iteration % 50 == 0:
        print(f"iteration {iteration:3d}  mean cost {float(bp.to_numpy(cost).mean()):.5f}")

params = {name: bp.to_numpy(p).astype(float) for name, p in linear.state_dict().items()}
yhat = bp.to_numpy(linear.forward(X))
r2 = 1 - ((y_host - yhat) ** 2).sum() / ((y_host - y_host.mean(axis=0)) ** 2).sum()
error = max(np.abs(params["weight"] - true_W).max(), np.abs(params["bias"] - true_b).max())
print("learned W:", np.round(params["weight"], 3).tolist(), " true W:", true_W.tolist())
print("learned b:", np.round(params["bias"], 3).tolist(), " true b:", true_b.tolist())
print(f"largest parameter error: {error:.4f}")
print(f"R^2: {r2:.4f}")
