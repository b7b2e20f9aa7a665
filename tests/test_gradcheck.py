import numpy as np
import pytest

import backprop as bp


class WrongTanH(bp.TanH):
    def backward_delta(self, input, delta):
        return delta * (1 - bp.TanH()(input))  # forgot the square


class WrongLinear(bp.Linear):
    def backward_update_gradient(self, input, delta):
        self.accumulate_gradient("weight", 2 * (input.T @ delta))
        self.accumulate_gradient("bias", bp.get_backend().xp.sum(delta, axis=0))


def test_catches_wrong_input_gradient(f64, rng):
    with pytest.raises(bp.GradcheckError, match=r"WrongTanH\(\)\.backward_delta: analytic"):
        bp.gradcheck(WrongTanH(), bp.asarray(rng.normal(size=(3, 2))))


def test_catches_wrong_parameter_gradient(f64, rng):
    with pytest.raises(bp.GradcheckError, match=r"gradient of WrongLinear\(2 -> 2\)\.weight"):
        bp.gradcheck(WrongLinear(2, 2), bp.asarray(rng.normal(size=(3, 2))))


def test_catches_wrong_loss_gradient(f64, rng):
    class HalfMSE(bp.MSELoss):
        def backward(self, y, yhat):
            return super().backward(y, yhat) / 2

    with pytest.raises(bp.GradcheckError, match="HalfMSE"):
        bp.gradcheck(
            HalfMSE(), bp.asarray(rng.normal(size=(3, 2))), bp.asarray(rng.normal(size=(3, 2)))
        )


def test_requires_float64(rng):
    with bp.use_backend("numpy", dtype="float32"), pytest.raises(ValueError, match="needs float64"):
        bp.gradcheck(bp.Linear(2, 2), bp.asarray(rng.normal(size=(3, 2))))


def test_restores_parameters(f64, rng):
    lin = bp.Linear(3, 2)
    before = [bp.to_numpy(p).copy() for p in lin.parameters()]
    bp.gradcheck(lin, bp.asarray(rng.normal(size=(2, 3))))
    for p, b in zip(lin.parameters(), before):
        np.testing.assert_array_equal(bp.to_numpy(p), b)


def test_rejects_non_modules():
    with pytest.raises(TypeError, match="expected a Module or a Loss"):
        bp.gradcheck(lambda x: x, None)


def test_the_float32_refusal_says_what_to_do_and_that_works(rng):
    """The README's advice: build the module and X under use_backend(dtype='float64')."""
    x = rng.normal(size=(3, 2))
    with bp.use_backend("numpy", dtype="float32"):
        with pytest.raises(ValueError, match=r"build the module under backprop\.use_backend"):
            bp.gradcheck(bp.Linear(2, 2), bp.asarray(x))
        with bp.use_backend(dtype="float64"):  # the advice, followed
            assert bp.gradcheck(bp.Linear(2, 2), bp.asarray(x)) is True
