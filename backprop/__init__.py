"""backprop: a Torch7-style neural-network library on the Python Array API.

Every layer is a :class:`Module` with its own forward pass and its two
backward rules; one implementation runs on NumPy, CuPy, PyTorch tensors and
JAX and array-api-strict, chosen with ``BACKPROP_BACKEND`` or :func:`set_backend`.
"""

from .activations import LogSoftmax, ReLU, Sigmoid, Softmax, TanH
from .autoencoder import Autoencoder, build_autoencoder, gaussian_noise, masking_noise
from .backends import (
    Backend,
    BackendUnavailableError,
    asarray,
    available_backends,
    get_backend,
    manual_seed,
    set_backend,
    to_numpy,
    use_backend,
)
from .containers import Concat, Sequential, Sequentiel
from .conv import Conv1D, Conv2D
from .data import accuracy, load_digits, one_hot
from .dropout import Dropout
from .gradcheck import GradcheckError, gradcheck
from . import models
from .linear import Linear, TiedLinear
from .losses import BCELoss, CELogSoftmax, CrossEntropyLoss, MSELoss, NLLLoss
from .module import Loss, Module
from .onnx import export_onnx
from .optim import (
    SGD,
    Adam,
    Callback,
    Checkpoint,
    CosineLR,
    DivergenceError,
    EarlyStopping,
    GradientDescent,
    History,
    Momentum,
    Optim,
    Optimizer,
    StepLR,
    Trainer,
    Validation,
    evaluate,
)
from .pooling import AvgPool1D, AvgPool2D, MaxPool1D, MaxPool2D
from .serialization import load, save
from .shape import Flatten, Reshape, Transpose
from .summary import summary

__version__ = "0.1.0"

__all__ = [
    "Autoencoder",
    "TiedLinear",
    "build_autoencoder",
    "gaussian_noise",
    "masking_noise",
    "Adam",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "Trainer",
    "Validation",
    "CosineLR",
    "Dropout",
    "GradientDescent",
    "History",
    "Momentum",
    "Optimizer",
    "StepLR",
    "evaluate",
    "export_onnx",
    "load",
    "save",
    "summary",
    "AvgPool1D",
    "AvgPool2D",
    "Concat",
    "Conv1D",
    "Conv2D",
    "Flatten",
    "MaxPool1D",
    "MaxPool2D",
    "Reshape",
    "Transpose",
    "BCELoss",
    "Backend",
    "BackendUnavailableError",
    "CELogSoftmax",
    "CrossEntropyLoss",
    "DivergenceError",
    "GradcheckError",
    "Linear",
    "LogSoftmax",
    "Loss",
    "MSELoss",
    "NLLLoss",
    "Module",
    "Optim",
    "ReLU",
    "SGD",
    "Sequential",
    "Sequentiel",
    "Sigmoid",
    "Softmax",
    "TanH",
    "accuracy",
    "asarray",
    "available_backends",
    "get_backend",
    "gradcheck",
    "load_digits",
    "manual_seed",
    "one_hot",
    "set_backend",
    "to_numpy",
    "use_backend",
]
