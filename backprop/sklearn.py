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

Incremental training
--------------------
``partial_fit`` trains one epoch on the data it is given, continuing the
network, the optimizer's state (Adam's moments) and the shuffles of the
earlier calls; the first call builds the network (a classifier needs
``classes`` then). With ``warm_start=True``, ``fit`` continues from the
fitted network the same way instead of starting anew. ``dask-ml``'s
``Incremental`` wrapper and the searches built on it use ``partial_fit``
to train on data larger than memory, one block at a time.

Array API dispatch
------------------
The estimators declare scikit-learn's array API support. With
``SCIPY_ARRAY_API=1`` in the environment and
``sklearn.set_config(array_api_dispatch=True)``, an ``X`` from another
library than NumPy (PyTorch tensors on the CPU or a GPU, CuPy arrays,
array-api-strict) is not converted: the network is built and trained on X's
library and device (``backend`` and ``device`` are then ignored, ``dtype``
still applies), ``y`` is moved next to X, and ``predict``, ``predict_proba``,
``transform`` and ``inverse_transform`` return arrays of that library on that
device. Later calls must pass data of the same library and device (as
scikit-learn's own estimators require). Class labels that are not numbers
(strings) stay a NumPy ``classes_``. Without dispatch, nothing changes: inputs
are converted to NumPy and outputs are NumPy arrays.
"""

from __future__ import annotations

import contextlib
import copy
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING

import array_api_compat
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._array_api import get_namespace, get_namespace_and_device, move_to
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._checks import positive_int
from .activations import ReLU, Sigmoid, Softmax, TanH
from .autoencoder import build_autoencoder
from .backends import asarray, backend_of, host_rng, kind_of, namespace_of, to_numpy, use_backend
from .containers import Sequentiel
from .dropout import Dropout
from .linear import Linear
from .losses import BCELoss, CELogSoftmax, MSELoss
from .optim import SGD

if TYPE_CHECKING:
    from ._typing import Array, ArrayLike, Device, DType

__all__ = ["AutoencoderTransformer", "NeuralNetClassifier", "NeuralNetRegressor"]

ACTIVATIONS = {"tanh": TanH, "relu": ReLU, "sigmoid": Sigmoid}
_NO_Y = "no_validation"  # validate_data's marker for "X only"


def _follows(X) -> bool:
    """Whether the estimator computes on X's own library: dispatch is on and X is not NumPy."""
    return (
        bool(get_config()["array_api_dispatch"])
        and array_api_compat.is_array_api_obj(X)
        and not array_api_compat.is_numpy_array(X)
    )


def _numeric(y) -> bool:
    # only NumPy has non-numeric dtypes (strings, objects) among the libraries met here
    return not array_api_compat.is_numpy_array(y) or y.dtype.kind in "biuf"


class _NeuralNetBase(BaseEstimator):
    """Parameters and training shared by the estimators."""

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        *,
        dropout: float = 0.0,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        epochs: int = 200,
        batch_size: int = 32,
        weight_decay: float = 0.0,
        random_state: int | None = None,
        backend: str | None = None,
        device: Device | None = None,
        dtype: DType = "float64",
        verbose: bool = False,
        warm_start: bool = False,
    ) -> None:
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
        self.warm_start = warm_start

    # ------------------------------------------------------------ internals

    def _owner(self, method: str) -> str:
        return f"{type(self).__name__}.{method}"

    def _library(self, X, method: str):
        """``(backend name, device)`` of an array X that the estimator follows."""
        try:
            name = kind_of(X).name
        except TypeError:
            t = type(X)
            raise TypeError(
                f"{self._owner(method)}: array API dispatch is on and X is a "
                f"{t.__module__}.{t.__name__}, but backprop computes on numpy, cupy, torch and "
                "array_api_strict arrays; convert X to one of them, or turn dispatch off to have "
                "it converted to NumPy"
            ) from None
        return name, array_api_compat.device(X)

    def _fit_context(self, X):
        """Where to build and train: X's library and device when following X, else the settings."""
        if _follows(X):
            name, device = self._library(X, "fit")
            return use_backend(name, device=device, dtype=self.dtype)
        return use_backend(self.backend, device=self.device, dtype=self.dtype)

    def _validate(self, X, y=_NO_Y, *, reset: bool = True, **kwargs):
        """scikit-learn's validation, keeping X in its namespace under dispatch; y follows X.

        Returns X, or ``(X, y)`` when y is given (None included: it is then an error).
        """
        xp, _ = get_namespace(X)
        dtype = [xp.float64, xp.float32]
        no_y = isinstance(y, str) and y == _NO_Y
        if no_y:
            X = validate_data(self, X, reset=reset, dtype=dtype)
        else:
            y = self._y_next_to(X, y)  # before validation, which may reject mixed namespaces
            X, y = validate_data(self, X, y, reset=reset, dtype=dtype, **kwargs)
            y = self._y_next_to(X, y)  # y given as a list became NumPy
        if reset:
            # the library and device of the training data, which later inputs must share
            self._fit_library = self._library_key(X, "fit")
        return X if no_y else (X, y)

    @staticmethod
    def _y_next_to(X, y):
        """Numeric ``y`` moved to X's namespace and device under dispatch (scikit-learn's rule)."""
        dispatch = get_config()["array_api_dispatch"]
        if not dispatch or not array_api_compat.is_array_api_obj(y) or not _numeric(y):
            return y
        xp, _, device = get_namespace_and_device(X)
        return move_to(y, xp=xp, device=device)

    def _library_key(self, X, method: str):
        """``(library, device)`` as text when the estimator follows X, else None (NumPy)."""
        if not _follows(X):
            return None
        name, device = self._library(X, method)
        return name, str(device)

    def _check_namespace(self, X, method: str) -> None:
        """Under dispatch, X must come from the library and device the estimator was fitted on."""
        if not get_config()["array_api_dispatch"]:
            return
        fitted = getattr(self, "_fit_library", None)
        current = self._library_key(X, method)

        def describe(library) -> str:
            return "NumPy (or array-like)" if library is None else f"{library[0]} on {library[1]}"

        if fitted != current:
            raise ValueError(
                f"Inputs passed to {self._owner(method)}() must use the same namespace and the "
                f"same device as those passed to fit(): fit saw {describe(fitted)}, {method} got "
                f"{describe(current)}. Move X there (for example with backprop.asarray inside "
                "backprop.use_backend), or fit the estimator on data like X"
            )

    def _network_context(self):
        """The backend the fitted network lives on."""
        return use_backend(backend_of(self.network_.parameters()[0]))

    @staticmethod
    def _output(Y, X):
        """``Y`` in X's library when the estimator follows X, else as a NumPy array."""
        return Y if _follows(X) else to_numpy(Y)

    def __sklearn_array_api_convert__(self, converter):
        """A copy of the fitted estimator, network and arrays moved where ``converter`` puts arrays.

        scikit-learn's ``move_estimator_to(estimator, xp, device)`` calls it, so
        a network trained on a GPU can serve NumPy (or another device) inputs.
        """
        new = copy.deepcopy(self)  # one copy keeps the modules that network_ and encoder_ share
        network = getattr(new, "network_", None)
        if network is None:  # not fitted: nothing lives anywhere yet
            return new
        target = converter(network.parameters()[0])
        network.to(backend_of(target))
        for key, value in vars(new).items():
            if key != "network_" and array_api_compat.is_array_api_obj(value) and _numeric(value):
                setattr(new, key, converter(value))
        if array_api_compat.is_numpy_array(target):
            new._fit_library = None
        else:
            new._fit_library = (kind_of(target).name, str(array_api_compat.device(target)))
        return new

    def _check_params(self):
        sizes = self.hidden_layer_sizes
        with contextlib.suppress(TypeError):  # NumPy integers (grids built with np.arange)
            sizes = (operator.index(sizes),)
        try:
            sizes = tuple(positive_int(type(self).__name__, "hidden_layer_sizes", s) for s in sizes)
        except (TypeError, ValueError):
            raise ValueError(
                f"{type(self).__name__}: hidden_layer_sizes must be positive ints, "
                f"got {self.hidden_layer_sizes!r}"
            ) from None
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )
        import numbers

        dropout = self.dropout
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, numbers.Real)
            or not 0 <= dropout < 1
        ):
            raise ValueError(
                f"{type(self).__name__}: dropout must be a number in [0, 1), "
                f"got {dropout!r} ({type(dropout).__name__})"
            )
        positive_int(type(self).__name__, "epochs", self.epochs)
        positive_int(type(self).__name__, "batch_size", self.batch_size)
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
        from .optim import Adam, GradientDescent, Momentum

        rules = {"adam": Adam, "sgd": GradientDescent, "momentum": Momentum}
        if self.optimizer not in rules:
            raise ValueError(f"optimizer must be one of {sorted(rules)}, got {self.optimizer!r}")
        return rules[self.optimizer](self.learning_rate, weight_decay=self.weight_decay)

    def _train(self, net, loss, X, Y, rng, *, epochs=None, more=False):
        """Train ``net``; with ``more``, go on with the optimizer and curve of the earlier calls."""
        # a copied or unpickled optimizer_ keys its state again by its modules (__setstate__)
        optimizer = self._optimizer_going_on() if more else self._optimizer()
        history = SGD(
            net,
            loss,
            X,
            Y,
            batch_size=min(self.batch_size, X.shape[0]),
            epochs=self.epochs if epochs is None else epochs,
            seed=rng,
            optimizer=optimizer,
            verbose=bool(self.verbose),
        )
        self.optimizer_, self._shuffles = optimizer, rng
        self.loss_curve_ = (self.loss_curve_ if more else []) + list(history)
        self.n_iter_ = len(self.loss_curve_)
        net.eval()
        return net

    def _optimizer_going_on(self):
        """``optimizer_`` for a call that trains further, with the parameters as set now.

        ``learning_rate`` and ``weight_decay`` changed by ``set_params`` since the
        last call apply from this call on (the optimizer's state is kept); another
        ``optimizer`` starts a new one (the old state belongs to another rule).
        """
        fresh = self._optimizer()  # checks the current parameters
        current = self.optimizer_
        if type(current) is not type(fresh):
            return fresh
        current.lr, current.weight_decay = fresh.lr, fresh.weight_decay
        return current

    def _continues(self, partial: bool) -> bool:
        """Whether this call trains the fitted network further (partial_fit, warm_start)."""
        return (partial or bool(self.warm_start)) and getattr(self, "network_", None) is not None

    def _shape_params(self) -> dict:
        """The parameters that fix the network (they may not change while it is trained further)."""
        return {
            "hidden_layer_sizes": self._check_params(),
            "activation": self.activation,
            "dropout": self.dropout,
        }

    def _check_params_unchanged(self, method: str) -> None:
        now, then = self._shape_params(), self._fitted_params
        changed = [name for name in now if now[name] != then.get(name)]
        if changed:
            name = changed[0]
            raise ValueError(
                f"{self._owner(method)}: {name} changed from {then.get(name)!r} to {now[name]!r} "
                "since the network was built, so it cannot be trained further; fit a new estimator "
                "(warm_start=False) to change it"
            )

    def _forward(self, X, method: str):
        """``(X validated, network output)``: the output is in the network's library."""
        check_is_fitted(self)
        self._check_namespace(X, method)
        X = self._validate(X, reset=False)
        with self._network_context():
            return X, self.network_.forward(asarray(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.array_api_support = True
        return tags


class NeuralNetClassifier(ClassifierMixin, _NeuralNetBase):
    """An MLP classifier: ``hidden_layer_sizes`` layers with ``activation``, trained with
    CELogSoftmax.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
    activation : {'relu', 'tanh', 'sigmoid'}, default 'relu'
        The defaults (relu, Adam at 1e-3, 200 epochs, batches of 32) are
        scikit-learn's ``MLPClassifier``/``MLPRegressor``'s.
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
    warm_start : bool, default False
        ``fit`` trains a fitted network further instead of building a new one.

    Attributes
    ----------
    classes_, n_features_in_, network_, loss_curve_, n_iter_
    optimizer_ : Optimizer
        The update rule with its state, which ``partial_fit`` and warm starts continue.
    """

    def fit(self, X: ArrayLike, y: ArrayLike) -> NeuralNetClassifier:
        """Train a new network on ``X`` ``(n_samples, n_features)`` and labels ``y``
        ``(n_samples,)``.

        The labels may be of any type scikit-learn accepts for classes; returns self.
        With ``warm_start=True`` a fitted network is trained ``epochs`` more
        epochs instead (the labels must be among ``classes_``).
        """
        return self._fit(X, y, partial=False, classes=None)

    def partial_fit(
        self, X: ArrayLike, y: ArrayLike, classes: ArrayLike | None = None
    ) -> NeuralNetClassifier:
        """One epoch on ``X``, ``y``, continuing the network of the earlier calls; returns self.

        Parameters
        ----------
        X : array (n_samples, n_features)
        y : array (n_samples,)
        classes : array of all the labels, required on the first call
            The labels of every call must be among them.
        """
        return self._fit(X, y, partial=True, classes=classes)

    def _fit(self, X, y, *, partial: bool, classes):
        method = "partial_fit" if partial else "fit"
        more = self._continues(partial)
        if more:
            self._check_namespace(X, method)
        X, y = self._validate(X, y, reset=not more)
        check_classification_targets(y)
        epochs = 1 if partial else None
        if more:
            given = None if classes is None else LabelEncoder().fit(classes).classes_
            if given is not None and list(given) != list(self.classes_):
                raise ValueError(
                    f"{self._owner(method)}: classes={list(classes)} differs from the classes of "
                    f"the first call, {list(self.classes_)}"
                )
            self._check_params_unchanged(method)
            codes = self._codes(y, method)
            with self._network_context():
                net = self.network_
                self._train(net, CELogSoftmax(), X, codes, self._shuffles, epochs=epochs, more=True)
            return self
        if partial:
            if classes is None:
                raise ValueError(
                    f"{self._owner(method)}: classes must be given on the first call (every label "
                    "the later calls may use)"
                )
            encoder = LabelEncoder().fit(classes)
        else:
            encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        codes = self._codes(y, method)
        rng = self._rng()
        n_classes = self.classes_.shape[0]
        with self._fit_context(X):
            net = self._mlp(X.shape[1], max(n_classes, 2), rng)
            self._fitted_params = self._shape_params()
            self.network_ = self._train(net, CELogSoftmax(), X, codes, rng, epochs=epochs)
        return self

    def _codes(self, y, method: str):
        """The index in ``classes_`` of each label of ``y`` (ValueError for a label not there)."""
        encoder = LabelEncoder()
        encoder.classes_ = self.classes_
        try:
            return encoder.transform(y)
        except ValueError as exc:
            raise ValueError(
                f"{self._owner(method)}: {exc}; the labels must be among "
                f"classes_ {list(self.classes_)}"
            ) from None

    def _proba(self, X, method: str):
        X, scores = self._forward(X, method)
        with self._network_context():
            proba = Softmax().forward(scores)
        if self.classes_.shape[0] == 1:  # fitted on a single class: it is certain
            proba = proba[:, :1] ** 0
        return self._output(proba, X)

    def predict_proba(self, X: ArrayLike) -> Array:
        """Class probabilities ``(n_samples, n_classes)``, one column per entry of ``classes_``."""
        return self._proba(X, "predict_proba")

    def predict(self, X: ArrayLike) -> Array:
        """The most probable class of each row of ``X``: ``(n_samples,)``, values from
        ``classes_``."""
        proba = self._proba(X, "predict")
        index = namespace_of(proba).argmax(proba, axis=1)
        classes = self.classes_
        if array_api_compat.is_numpy_array(proba) or array_api_compat.is_numpy_array(classes):
            return to_numpy(classes)[to_numpy(index)]  # labels of any kind (strings) on the host
        return namespace_of(classes).take(classes, index, axis=0)


class NeuralNetRegressor(RegressorMixin, _NeuralNetBase):
    """An MLP regressor trained with MSELoss (same parameters as :class:`NeuralNetClassifier`).

    ``y`` may be 1-D (predictions are 1-D) or 2-D (several targets).
    """

    def fit(self, X: ArrayLike, y: ArrayLike) -> NeuralNetRegressor:
        """Train a new network on ``X`` ``(n_samples, n_features)`` and ``y`` ``(n_samples,)`` or
        ``(n_samples, n_targets)``; returns self. With ``warm_start=True`` a fitted network is
        trained ``epochs`` more epochs instead."""
        return self._fit(X, y, partial=False)

    def partial_fit(self, X: ArrayLike, y: ArrayLike) -> NeuralNetRegressor:
        """One epoch on ``X``, ``y``, continuing the network of the earlier calls; returns self."""
        return self._fit(X, y, partial=True)

    def _fit(self, X, y, *, partial: bool):
        method = "partial_fit" if partial else "fit"
        more = self._continues(partial)
        if more:
            self._check_namespace(X, method)
        X, y = self._validate(X, y, reset=not more, y_numeric=True, multi_output=True)
        xp = namespace_of(y)
        Y = xp.astype(xp.reshape(y, (-1, 1)) if y.ndim == 1 else y, X.dtype)
        epochs = 1 if partial else None
        if more:
            if (y.ndim == 1) != self._single_target or Y.shape[1] != self._n_targets:
                raise ValueError(
                    f"{self._owner(method)}: y has {Y.shape[1]} target(s) "
                    f"({'1-D' if y.ndim == 1 else '2-D'}), but the network was built for "
                    f"{self._n_targets} ({'1-D' if self._single_target else '2-D'})"
                )
            self._check_params_unchanged(method)
            with self._network_context():
                net = self.network_
                self._train(net, MSELoss(), X, Y, self._shuffles, epochs=epochs, more=True)
            return self
        self._single_target, self._n_targets = y.ndim == 1, Y.shape[1]
        rng = self._rng()
        with self._fit_context(X):
            net = self._mlp(X.shape[1], Y.shape[1], rng)
            self._fitted_params = self._shape_params()
            self.network_ = self._train(net, MSELoss(), X, Y, rng, epochs=epochs)
        return self

    def predict(self, X: ArrayLike) -> Array:
        """Predictions for ``X``: ``(n_samples,)`` or ``(n_samples, n_targets)``, like the ``y``
        given to fit."""
        X, out = self._forward(X, "predict")
        return self._output(out[:, 0] if self._single_target else out, X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


class AutoencoderTransformer(TransformerMixin, _NeuralNetBase):
    """An autoencoder as a transformer: ``transform`` gives the codes, ``inverse_transform`` the
    reconstructions.

    The parameters not listed here are those of :class:`NeuralNetClassifier`.

    Parameters
    ----------
    n_components : int, default 10
        Size of the code (10, the assignment's code size for the 8x8 digits: enough to
        cluster and classify them from the codes; pick it for your data).
    hidden_layer_sizes : tuple of int, default (64,)
        Encoder hidden sizes (the decoder mirrors them).
    output_activation : {None, 'sigmoid'}, default None
        None with ``loss='mse'`` for any real data; 'sigmoid' with
        ``loss='bce'`` for data in [0, 1] such as pixels.
    loss : {'mse', 'bce'}, default 'mse'
    tied : bool, default False
        Decoder uses the transposed encoder weights.
    """

    def __init__(
        self,
        n_components: int = 10,
        hidden_layer_sizes: int | Sequence[int] = (64,),
        activation: str = "tanh",
        *,
        output_activation: str | None = None,
        loss: str = "mse",
        tied: bool = False,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        epochs: int = 200,
        batch_size: int = 32,
        weight_decay: float = 0.0,
        random_state: int | None = None,
        backend: str | None = None,
        device: Device | None = None,
        dtype: DType = "float64",
        verbose: bool = False,
        warm_start: bool = False,
    ) -> None:
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
            warm_start=warm_start,
        )
        self.n_components = n_components
        self.output_activation = output_activation
        self.loss = loss
        self.tied = tied

    def fit(self, X: ArrayLike, y: object = None) -> AutoencoderTransformer:
        """Train a new autoencoder to reconstruct ``X`` ``(n_samples, n_features)``; ``y`` is
        ignored.

        Returns self. With ``warm_start=True`` a fitted autoencoder is
        trained ``epochs`` more epochs instead.
        """
        return self._fit(X, partial=False)

    def partial_fit(self, X: ArrayLike, y: object = None) -> AutoencoderTransformer:
        """One epoch on ``X``, continuing the autoencoder of the earlier calls; returns self."""
        return self._fit(X, partial=True)

    def _shape_params(self) -> dict:
        shape = super()._shape_params()
        shape.update(
            n_components=self.n_components,
            output_activation=self.output_activation,
            loss=self.loss,
            tied=self.tied,
        )
        return shape

    def _fit(self, X, *, partial: bool):
        method = "partial_fit" if partial else "fit"
        more = self._continues(partial)
        if more:
            self._check_namespace(X, method)
        X = self._validate(X, reset=not more)
        sizes = self._check_params()
        positive_int(type(self).__name__, "n_components", self.n_components)
        if self.loss not in ("mse", "bce") or self.output_activation not in (None, "sigmoid"):
            raise ValueError(
                f"loss must be 'mse' or 'bce' and output_activation None or 'sigmoid', "
                f"got {self.loss!r} and {self.output_activation!r}"
            )
        loss = BCELoss() if self.loss == "bce" else MSELoss()
        epochs = 1 if partial else None
        if more:
            self._check_params_unchanged(method)
            with self._network_context():
                self._train(self.network_, loss, X, X, self._shuffles, epochs=epochs, more=True)
            return self
        rng = self._rng()
        with self._fit_context(X):
            ae = build_autoencoder(
                (X.shape[1], *sizes, self.n_components),
                activation=ACTIVATIONS[self.activation],
                output_activation=Sigmoid if self.output_activation == "sigmoid" else None,
                tied=self.tied,
                rng=rng,
            )
            self._fitted_params = self._shape_params()
            self.network_ = self._train(ae.network, loss, X, X, rng, epochs=epochs)
            self.encoder_, self.decoder_ = ae.encoder, ae.decoder
        return self

    def transform(self, X: ArrayLike) -> Array:
        """The codes of ``X``: ``(n_samples, n_features)`` -> ``(n_samples, n_components)``."""
        check_is_fitted(self)
        self._check_namespace(X, "transform")
        X = self._validate(X, reset=False)
        with self._network_context():
            codes = self._output(self.encoder_.forward(asarray(X)), X)
        return namespace_of(codes).astype(codes, X.dtype, copy=False)

    def inverse_transform(self, Z: ArrayLike) -> Array:
        """Reconstructions from codes: ``(n_samples, n_components)`` -> ``(n_samples,
        n_features)``."""
        check_is_fitted(self)
        self._check_namespace(Z, "inverse_transform")
        with self._network_context():
            return self._output(self.decoder_.forward(asarray(Z)), Z)

    def get_feature_names_out(self, input_features: object = None) -> list[str]:
        """Names of the code columns: ``autoencoder0``, ``autoencoder1``, ..."""
        check_is_fitted(self)
        return [f"autoencoder{i}" for i in range(self.n_components)]
