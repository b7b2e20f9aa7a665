"""scikit-learn estimators built on backprop networks.

:class:`NeuralNetClassifier`, :class:`NeuralNetRegressor` and
:class:`AutoencoderTransformer` follow scikit-learn's conventions (the
constructor stores its parameters, ``fit`` learns attributes ending in ``_``,
``get_params``/``set_params``, ``clone``), so they sit in a ``Pipeline``, a
``GridSearchCV`` or ``cross_val_score``. The network is an MLP described by
``hidden_layer_sizes`` and ``activation``; it is trained with
:func:`backprop.SGD` on the backend chosen by ``backend`` (the current one by
default), in float64 by default like the rest of scikit-learn.

>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> model = make_pipeline(StandardScaler(), NeuralNetClassifier(hidden_layer_sizes=(100,)))
"""

from __future__ import annotations

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .activations import ReLU, Sigmoid, Softmax, TanH
from .autoencoder import build_autoencoder
from .backends import asarray, host_rng, to_numpy, use_backend
from .containers import Sequentiel
from .dropout import Dropout
from .linear import Linear
from .losses import BCELoss, CELogSoftmax, MSELoss
from .optim import SGD

__all__ = ["AutoencoderTransformer", "NeuralNetClassifier", "NeuralNetRegressor"]

ACTIVATIONS = {"tanh": TanH, "relu": ReLU, "sigmoid": Sigmoid}


class _NeuralNetBase(BaseEstimator):
    """Parameters and training shared by the estimators."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="tanh",
        *,
        dropout=0.0,
        optimizer="adam",
        learning_rate=1e-3,
        epochs=200,
        batch_size=32,
        weight_decay=0.0,
        random_state=None,
        backend=None,
        device=None,
        dtype="float64",
        verbose=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.verbose = verbose

    # ------------------------------------------------------------ internals

    def _context(self):
        return use_backend(self.backend, device=self.device, dtype=self.dtype)

    def _check_params(self):
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, int) else tuple(sizes)
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive ints, got {self.hidden_layer_sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        import numbers

        dropout = self.dropout
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise ValueError(
                f"{type(self).__name__}: dropout must be a number in [0, 1), "
                f"got {dropout!r} ({type(dropout).__name__})"
            )
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {self.epochs!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        return sizes

    def _rng(self):
        seed = self.random_state
        if seed is None:
            return host_rng(None)
        if hasattr(seed, "randint"):  # a numpy RandomState
            seed = int(seed.randint(2**31 - 1))
        return host_rng(int(seed))

    def _mlp(self, n_in, n_out, rng):
        sizes = self._check_params()
        net = Sequentiel()
        for a, b in zip((n_in, *sizes), sizes):
            net.add(Linear(a, b, rng=rng)).add(ACTIVATIONS[self.activation]())
            if self.dropout:
                net.add(Dropout(self.dropout, rng=rng))
        return net.add(Linear(sizes[-1] if sizes else n_in, n_out, rng=rng))

    def _optimizer(self):
        from .optimizers import Adam, GradientDescent, Momentum

        rules = {"adam": Adam, "sgd": GradientDescent, "momentum": Momentum}
        if self.optimizer not in rules:
            raise ValueError(f"optimizer must be one of {sorted(rules)}, got {self.optimizer!r}")
        return rules[self.optimizer](self.learning_rate, weight_decay=self.weight_decay)

    def _train(self, net, loss, X, Y, rng):
        history = SGD(
            net,
            loss,
            X,
            Y,
            batch_size=min(self.batch_size, X.shape[0]),
            epochs=self.epochs,
            eps=self.learning_rate,
            seed=rng,
            optimizer=self._optimizer(),
            verbose=bool(self.verbose),
        )
        self.loss_curve_ = list(history)
        self.n_iter_ = len(history)
        net.eval()
        return net

    def _forward(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=("float64", "float32"))
        with self._context():
            return self.network_.forward(asarray(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


class NeuralNetClassifier(ClassifierMixin, _NeuralNetBase):
    """An MLP classifier: ``hidden_layer_sizes`` layers with ``activation``, trained with CELogSoftmax.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
    activation : {'tanh', 'relu', 'sigmoid'}, default 'tanh'
    dropout : float, default 0
        Dropout after each hidden activation (training only).
    optimizer : {'adam', 'sgd', 'momentum'}, default 'adam'
    learning_rate : float, default 1e-3
    epochs : int, default 200
    batch_size : int, default 32
    weight_decay : float, default 0
    random_state : None or int
        Seed of the weights and shuffles (fixed: every fit gives the same network).
    backend, device, dtype
        Where to compute (see :func:`backprop.use_backend`); float64 by default.
    verbose : bool

    Attributes
    ----------
    classes_, n_features_in_, network_, loss_curve_, n_iter_
    """

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=("float64", "float32"))
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        codes = encoder.transform(y)
        rng = self._rng()
        with self._context():
            net = self._mlp(X.shape[1], max(len(self.classes_), 2), rng)
            self.network_ = self._train(net, CELogSoftmax(), X, codes, rng)
        return self

    def predict_proba(self, X):
        """Class probabilities, one column per entry of ``classes_``."""
        scores = self._forward(X)
        with self._context():
            proba = to_numpy(Softmax().forward(scores))
        if len(self.classes_) == 1:  # fitted on a single class: it is certain
            return proba[:, :1] ** 0
        return proba

    def predict(self, X):
        proba = self.predict_proba(X)  # checks that the estimator is fitted
        return self.classes_[proba.argmax(axis=1)]


class NeuralNetRegressor(RegressorMixin, _NeuralNetBase):
    """An MLP regressor trained with MSELoss (same parameters as :class:`NeuralNetClassifier`).

    ``y`` may be 1-D (predictions are 1-D) or 2-D (several targets).
    """

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=("float64", "float32"), y_numeric=True, multi_output=True)
        self._single_target = y.ndim == 1
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        rng = self._rng()
        with self._context():
            net = self._mlp(X.shape[1], Y.shape[1], rng)
            self.network_ = self._train(net, MSELoss(), X, Y.astype(X.dtype), rng)
        return self

    def predict(self, X):
        out = to_numpy(self._forward(X))
        return out[:, 0] if self._single_target else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


class AutoencoderTransformer(TransformerMixin, _NeuralNetBase):
    """An autoencoder as a transformer: ``transform`` gives the codes, ``inverse_transform`` the reconstructions.

    Parameters
    ----------
    n_components : int, default 2
        Size of the code.
    hidden_layer_sizes : tuple of int, default (64,)
        Encoder hidden sizes (the decoder mirrors them).
    output_activation : {None, 'sigmoid'}, default None
        None with ``loss='mse'`` for any real data; 'sigmoid' with
        ``loss='bce'`` for data in [0, 1] such as pixels.
    loss : {'mse', 'bce'}, default 'mse'
    tied : bool, default False
        Decoder uses the transposed encoder weights.
    Other parameters as for :class:`NeuralNetClassifier`.
    """

    def __init__(
        self,
        n_components=2,
        hidden_layer_sizes=(64,),
        activation="tanh",
        *,
        output_activation=None,
        loss="mse",
        tied=False,
        optimizer="adam",
        learning_rate=1e-3,
        epochs=200,
        batch_size=32,
        weight_decay=0.0,
        random_state=None,
        backend=None,
        device=None,
        dtype="float64",
        verbose=False,
    ):
        super().__init__(
            hidden_layer_sizes,
            activation,
            optimizer=optimizer,
            learning_rate=learning_rate,
            epochs=epochs,
            batch_size=batch_size,
            weight_decay=weight_decay,
            random_state=random_state,
            backend=backend,
            device=device,
            dtype=dtype,
            verbose=verbose,
        )
        self.n_components = n_components
        self.output_activation = output_activation
        self.loss = loss
        self.tied = tied

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=("float64", "float32"))
        sizes = self._check_params()
        if isinstance(self.n_components, bool) or not isinstance(self.n_components, int) or self.n_components < 1:
            raise ValueError(f"n_components must be a positive int, got {self.n_components!r}")
        if self.loss not in ("mse", "bce") or self.output_activation not in (None, "sigmoid"):
            raise ValueError(
                f"loss must be 'mse' or 'bce' and output_activation None or 'sigmoid', "
                f"got {self.loss!r} and {self.output_activation!r}"
            )
        rng = self._rng()
        with self._context():
            ae = build_autoencoder(
                (X.shape[1], *sizes, self.n_components),
                activation=ACTIVATIONS[self.activation],
                output_activation=Sigmoid if self.output_activation == "sigmoid" else None,
                tied=self.tied,
                rng=rng,
            )
            self.network_ = self._train(ae.network, BCELoss() if self.loss == "bce" else MSELoss(), X, X, rng)
            self.encoder_, self.decoder_ = ae.encoder, ae.decoder
        return self

    def transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=("float64", "float32"))
        with self._context():
            return to_numpy(self.encoder_.forward(asarray(X))).astype(X.dtype, copy=False)

    def inverse_transform(self, Z):
        check_is_fitted(self)
        with self._context():
            return to_numpy(self.decoder_.forward(asarray(Z)))

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self)
        return [f"autoencoder{i}" for i in range(self.n_components)]
