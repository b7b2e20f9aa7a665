"""Part 3 of the assignment: ``Sequentiel``, ``Optim`` and ``SGD`` take over the chaining.

1. ``Sequentiel`` chains the forward and backward passes of any number of
   modules. One step by hand and one step through ``Optim`` on networks
   with the same initial weights land on the same parameters.
2. ``Optim(net, loss, eps).step(batch_x, batch_y)`` is one gradient step:
   forward, cost, backward, update.
3. ``SGD(net, loss, X, Y, batch_size, epochs, eps)`` cuts the data into
   mini-batches and loops over the epochs; it returns the mean cost of every
   epoch.

The task: tell even digits from odd ones on the bundled 8x8 handwritten
digits, with a sigmoid output and the squared error.

Run: ``python examples/03_sequential_optim_sgd.py``
"""

import numpy as np

import backprop as bp
from backprop import SGD, Linear, MSELoss, Optim, Sequentiel, Sigmoid, TanH

X_train, X_test, y_train, y_test = bp.load_digits()  # (1347, 64), (450, 64), labels (n,)
odd_train = bp.asarray((bp.to_numpy(y_train) % 2)[:, None].astype(float))  # targets (1347, 1)
odd_test = bp.to_numpy(y_test) % 2


def network():
    bp.manual_seed(0)  # the same initial weights every time
    return Sequentiel(Linear(64, 32), TanH(), Linear(32, 1), Sigmoid())


# 1. one step by hand, module by module, against one step through Optim
by_hand, encapsulated = network(), network()
x, y = X_train[:32, ...], odd_train[:32, ...]
loss = MSELoss()
by_hand.zero_grad()
inputs = []  # the input of every module, for the backward pass
out = x
for module in by_hand:
    inputs.append(out)
    out = module.forward(out)
delta = loss.backward(y, out)
for module, module_input in zip(reversed(list(by_hand)), reversed(inputs)):
    module.backward_update_gradient(module_input, delta)
    delta = module.backward_delta(module_input, delta)
by_hand.update_parameters(gradient_step=0.5)

Optim(encapsulated, loss, eps=0.5).step(x, y)
difference = max(
    float(np.abs(bp.to_numpy(a) - bp.to_numpy(b)).max())
    for a, b in zip(by_hand.parameters(), encapsulated.parameters())
)
print(f"largest difference between the hand-chained and the Optim step: {difference:.2e}")

# 2. a few epochs of Optim.step over mini-batches of 32 rows
net = network()
optim = Optim(net, MSELoss(), eps=0.5)
for epoch in range(3):
    costs = []
    for start in range(0, 1347, 32):
        stop = min(start + 32, 1347)  # the Array API leaves out-of-bounds slices undefined
        costs.append(float(optim.step(X_train[start:stop, ...], odd_train[start:stop, ...])))
    print(f"Optim.step, epoch {epoch}: mean batch cost {np.mean(costs):.4f}")

# 3. the same network trained by SGD, which shuffles and batches for us
net = network()
history = SGD(net, MSELoss(), X_train, odd_train, batch_size=32, epochs=40, eps=0.5, seed=0)
print(f"SGD: cost after epoch 1 {history[0]:.4f}, after epoch {len(history)} {history[-1]:.4f}")
predicted_odd = bp.to_numpy(net.forward(X_test))[:, 0] > 0.5
print(f"test accuracy: {(predicted_odd == odd_test).mean():.4f}")
