"""Writing your own layer and your own container, with the same public hooks as the library's.

A layer: ``add_parameter`` / ``add_buffer`` in the constructor, ``forward``, the two backward
rules, ``get_config`` (what ``save`` writes), and optionally ``export_onnx``. A container:
children added with ``add_module``, its ``chain_forward`` / ``chain_backward`` written with
``child_forward`` / ``child_backward``. The script checks both with finite differences, trains
them, saves and reloads the network, and runs on every backend (``BACKPROP_BACKEND``).
"""

import os
import tempfile

import numpy as np

import backprop as bp
from backprop import CELogSoftmax, Linear, ReLU, Sequentiel


class PReLU(bp.Module):
    """``max(x, 0) + a * min(x, 0)`` with one learned slope ``a`` per feature; counts the
    training forwards in a buffer (saved and moved with the parameters, never optimised)."""

    def __init__(self, features, init=0.25):
        super().__init__()
        self.features, self.init = features, init
        self.add_parameter("a", np.full(features, init))  # host data: cast to the backend
        self.add_buffer("seen", np.zeros(1))

    def get_config(self):
        return {"features": self.features, "init": self.init}

    @classmethod
    def state_shapes(cls, config):
        return {"a": (config["features"],), "seen": (1,)}

    def forward(self, X):
        X = self.check_array(X)  # a clear error for another library, device or a non-float
        self.check_shape(X, (None, self.features))
        if self.training:
            self.set_buffer("seen", self.get_buffer("seen") + 1)
        xp = self.backend.xp
        return xp.maximum(X, 0) + self.get_parameter("a") * xp.minimum(X, 0)

    def backward_update_gradient(self, input, delta):
        xp = self.backend.xp
        self.accumulate_gradient("a", xp.sum(delta * xp.minimum(input, 0), axis=0))

    def backward_delta(self, input, delta):
        xp = self.backend.xp
        slope = xp.where(
            input > 0, xp.ones_like(input), self.get_parameter("a") * xp.ones_like(input)
        )
        return delta * slope

    def export_onnx(self, graph, value):
        out = graph.node("PRelu", [value.name, graph.param(self, "a")])
        return type(value)(out, value.shape)


class Gated(bp.Container):
    """``g(x) * h(x)``: two branches on the same input, multiplied element-wise."""

    def __init__(self, g, h):
        super().__init__()
        self.add_module(g)
        self.add_module(h)

    @classmethod
    def from_config(cls, config, children):
        return cls(*children)

    def chain_forward(self, X):
        G, H = self.child_forward(0, X), self.child_forward(1, X)
        self.remember(X, (G, H))  # what backward needs, kept for this call
        return G * H

    def chain_backward(self, input, delta, input_grad=True, param_grad=True):
        G, H = self.check_fresh(input, "backward")
        dx_g = self.child_backward(0, input, delta * H, input_grad, param_grad)
        dx_h = self.child_backward(1, input, delta * G, input_grad, param_grad)
        return dx_g + dx_h if input_grad else None


def main():
    bp.manual_seed(0)
    X_train, X_test, y_train, y_test = bp.load_digits()
    with bp.use_backend(bp.get_backend().name, dtype="float64"):
        probe = Sequentiel(
            Linear(6, 5), PReLU(5), Gated(Linear(5, 4), Sequentiel(Linear(5, 4), ReLU()))
        )
        x = bp.asarray(np.random.default_rng(0).normal(size=(7, 6)))
        print("gradcheck:", bp.gradcheck(probe, x))
    net = Sequentiel(
        Linear(64, 64),
        PReLU(64),
        Gated(Linear(64, 32), Sequentiel(Linear(64, 32), ReLU())),
        Linear(32, 10),
    )
    bp.SGD(
        net,
        CELogSoftmax(),
        X_train,
        y_train,
        batch_size=32,
        epochs=15,
        eps=0.05,
        optimizer="momentum",
    )
    print("test accuracy:", round(float(bp.accuracy(net.forward(X_test), y_test)), 4))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "custom.npz")
        bp.save(net, path)
        again = bp.load(path)
    same = np.array_equal(bp.to_numpy(again.forward(X_test)), bp.to_numpy(net.forward(X_test)))
    print("reloaded network gives the same scores:", same)
    print(
        "training forwards counted by the buffer:", int(bp.to_numpy(again[1].get_buffer("seen"))[0])
    )


if __name__ == "__main__":
    main()
