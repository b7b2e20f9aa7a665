"""backprop: a Torch7-style neural-network library on the Python Array API.

Every layer is a :class:`Module` with its own forward pass and its two
backward rules; one implementation runs on NumPy, CuPy, PyTorch tensors and
JAX and array-api-strict, chosen with ``BACKPROP_BACKEND`` or :func:`set_backend`.
"""

from . import models
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
from .containers import Concat, Container, Residual, Sequential, Sequentiel, Sum
from .conv import Conv1D, Conv2D
from .data import accuracy, load_digits, one_hot
from .dropout import Dropout
from .embedding import Embedding
from .gradcheck import GradcheckError, gradcheck
from .interop import from_torch, to_torch
from .linear import Linear, TiedLinear
from .losses import BCELoss, CELogSoftmax, CrossEntropyLoss, MSELoss, NLLLoss
from .module import Loss, Module
from .normalization import BatchNorm1D, BatchNorm2D, LayerNorm
from .onnx import export_onnx
from .optim import (
    SGD,
    Adam,
    AdamW,
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
    RMSprop,
    StepLR,
    Trainer,
    Validation,
    evaluate,
)
from .pooling import AvgPool1D, AvgPool2D, MaxPool1D, MaxPool2D
from .recurrent import GRU, LSTM, RNN
from .serialization import load, save
from .shape import Flatten, Identity, Reshape, Select, Transpose
from .summary import summary
from .transposed import ConvTranspose1D, ConvTranspose2D, Upsample

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "SGD",
    "Adam",
    "AdamW",
    "Autoencoder",
    "AvgPool1D",
    "AvgPool2D",
    "BCELoss",
    "Backend",
    "BackendUnavailableError",
    "BatchNorm1D",
    "BatchNorm2D",
    "CELogSoftmax",
    "Callback",
    "Checkpoint",
    "Concat",
    "Container",
    "Conv1D",
    "Conv2D",
    "ConvTranspose1D",
    "ConvTranspose2D",
    "CosineLR",
    "CrossEntropyLoss",
    "DivergenceError",
    "Dropout",
    "EarlyStopping",
    "Embedding",
    "Flatten",
    "GradcheckError",
    "GradientDescent",
    "History",
    "Identity",
    "LayerNorm",
    "Linear",
    "LogSoftmax",
    "Loss",
    "MSELoss",
    "MaxPool1D",
    "MaxPool2D",
    "Module",
    "Momentum",
    "NLLLoss",
    "Optim",
    "Optimizer",
    "RMSprop",
    "ReLU",
    "Reshape",
    "Residual",
    "Select",
    "Sequential",
    "Sequentiel",
    "Sigmoid",
    "Softmax",
    "StepLR",
    "Sum",
    "TanH",
    "TiedLinear",
    "Trainer",
    "Transpose",
    "Upsample",
    "Validation",
    "accuracy",
    "asarray",
    "available_backends",
    "build_autoencoder",
    "evaluate",
    "export_onnx",
    "from_torch",
    "gaussian_noise",
    "get_backend",
    "gradcheck",
    "load",
    "load_digits",
    "manual_seed",
    "masking_noise",
    "one_hot",
    "save",
    "set_backend",
    "summary",
    "to_numpy",
    "to_torch",
    "use_backend",
]
