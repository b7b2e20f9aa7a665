"""Recurrent layers on batch-first sequences: :class:`RNN`, :class:`LSTM`, :class:`GRU`.

Every layer reads ``X`` ``(N, L, C)`` and returns the hidden state of every
time step, ``(N, L, H)``, with PyTorch's gate equations and parameter names
and shapes (``weight_ih`` ``(G*H, C)``, ``weight_hh`` ``(G*H, H)``,
``bias_ih`` and ``bias_hh`` ``(G*H,)``, the ``G`` gates stacked in PyTorch's
order), so converting a single-layer, unidirectional ``batch_first=True``
``torch.nn`` module is a copy of its four arrays.

The input's contribution to every gate of every step is one matmul before the
loop over time steps; inside the loop, each step multiplies the previous
state by ``weight_hh``. Backpropagation through time runs the steps in
reverse, collecting the gradients of the gates' pre-activations; the weight
gradients and the input gradient are then one matmul each over all steps.
There is a Python loop over the time steps, never over the batch.

State between passes: inside a container (``chain_forward`` /
``chain_backward``) the gates and states of the last forward are kept, keyed
by the input object and the place of the call in the network; the public
backward rules recompute them from their input.

The initial state is zero for :meth:`~_Recurrent.forward`;
:meth:`~_Recurrent.forward_with_state` takes one, and
:meth:`~_Recurrent.backward_with_state` returns the gradient with respect to
it (for truncated backpropagation through time, or an encoder's state handed
to a decoder).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._checks import flag, parameter_shape, positive_int
from .backends import get_backend, uniform
from .module import Module

if TYPE_CHECKING:
    from ._typing import Array
    from .backends.random import RNG

__all__ = ["GRU", "LSTM", "RNN"]


def _sigmoid(xp, a):
    # from e = exp(-|a|) <= 1, which never overflows: 1 / (1 + e) for a >= 0, e / (1 + e) below
    e = xp.exp(-xp.abs(a))
    return xp.maximum(e, xp.astype(a >= 0, a.dtype)) / (1.0 + e)


class _Recurrent(Module):
    """One recurrent layer with ``G`` gates of ``H`` units each (see the module's docstring).

    A subclass gives ``_gates``, the number ``_n_states`` of state arrays it
    carries from step to step (the hidden state first), ``_cell`` (one step
    forward) and ``_cell_backward`` (its adjoint).
    """

    _gates = 1
    _n_states = 1
    #: the order of PyTorch's gate blocks in ONNX's order for this operator (None: the same)
    _onnx_gate_order: tuple[int, ...] | None = None
    _onnx_op = "RNN"
    #: the torch.nn class names this layer converts from
    torch_names: tuple[str, ...] = ()

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, *, rng: RNG = None
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.input_size = positive_int(name, "input_size", input_size)
        self.hidden_size = positive_int(name, "hidden_size", hidden_size)
        rows = self._gates * self.hidden_size
        parameter_shape(name, (rows, self.input_size))
        parameter_shape(name, (rows, self.hidden_size))
        # PyTorch's initialisation: every array U(-k, k) with k = 1/sqrt(hidden_size)
        k = 1.0 / self.hidden_size**0.5
        backend = get_backend()
        for key, shape in self._shapes(self.input_size, self.hidden_size, flag(name, "bias", bias)):
            self.add_parameter(key, uniform(-k, k, shape, rng=rng, backend=backend))
        # per call (Module._call_path): (input, what forward computed) of the last chain_forward
        self._saved: dict = {}

    # -------------------------------------------------------------- config

    @classmethod
    def _shapes(cls, c: int, h: int, bias: bool) -> list:
        rows = cls._gates * h
        shapes = [("weight_ih", (rows, c)), ("weight_hh", (rows, h))]
        if bias:
            shapes += [("bias_ih", (rows,)), ("bias_hh", (rows,))]
        return shapes

    @property
    def bias(self) -> bool:
        return "bias_ih" in self._parameters

    def get_config(self) -> dict:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "bias": self.bias}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        name = cls.__name__
        c = positive_int(name, "input_size", config["input_size"])
        h = positive_int(name, "hidden_size", config["hidden_size"])
        return dict(cls._shapes(c, h, bool(config.get("bias", True))))

    def extra_repr(self) -> str:
        return f"{self.input_size} -> {self.hidden_size}" + ("" if self.bias else ", bias=False")

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(N, L, hidden_size)`` for an input of shape ``(N, L, input_size)``."""
        return (input_shape[0], input_shape[1], self.hidden_size)

    def clear_cache(self) -> None:
        self._saved = {}

    # -------------------------------------------------------------- checks

    def _input(self, X, method: str):
        X = self.check_array(X, method)
        if X.ndim != 3 or X.shape[2] != self.input_size:
            raise ValueError(
                self._error(
                    method,
                    f"expected input of shape (N, L, {self.input_size}) (batch, time steps, "
                    f"features), got {tuple(X.shape)}",
                )
            )
        return X

    def _state_names(self) -> tuple[str, ...]:
        return ("h0",)

    def _states(self, X, state, method: str, what: str = "state") -> tuple:
        """``state`` (one array, or a tuple for several) as a tuple of ``(N, H)`` arrays; zeros
        for None (a None entry too, where the state is a tuple)."""
        names = self._state_names()
        if what != "state":
            names = tuple(f"d{n}" for n in names)
        if self._n_states == 1:
            parts = (state,)
        elif state is None:
            parts = (None,) * self._n_states
        elif isinstance(state, (tuple, list)) and len(state) == self._n_states:
            parts = tuple(state)
        else:
            raise TypeError(
                self._error(
                    method,
                    f"expected the {what} as a tuple ({', '.join(names)}) of arrays (or None), "
                    f"got {type(state).__name__}"
                    + (f" of length {len(state)}" if isinstance(state, (tuple, list)) else ""),
                )
            )
        b = self._backend
        shape = (X.shape[0], self.hidden_size)
        out = []
        for name, s in zip(names, parts):
            if s is None:
                out.append(b.xp.zeros(shape, dtype=b.dtype, device=b.device))
                continue
            s = self.check_array(s, method, name)
            if tuple(s.shape) != shape:
                raise ValueError(
                    self._error(
                        method,
                        f"expected {name} of shape (N, {self.hidden_size}) = {shape} for an input "
                        f"of {X.shape[0]} sequences, got {tuple(s.shape)}",
                    )
                )
            out.append(s)
        return tuple(out)

    def _packed(self, states: tuple):
        """The user-facing form of a tuple of states: one array, or the tuple."""
        return states[0] if self._n_states == 1 else tuple(states)

    # ------------------------------------------------------------- forward

    def _cell(self, xp, xi, hh, states):
        """One step: ``xi`` and ``hh`` are the input's and the previous hidden state's
        contributions to the gates ``(N, G*H)``; returns ``(new states, kept for backward)``."""
        raise NotImplementedError

    def _cell_backward(self, xp, dh, dstates, states, kept):
        """The adjoint of :meth:`_cell`: from ``dh`` (the new hidden state's gradient) and the
        other new states' gradients ``dstates``, returns ``(dxi, dhh, dprev)``: the gradients of
        ``xi`` and ``hh`` and those of the previous states through paths other than ``hh``
        (None for none)."""
        raise NotImplementedError

    def _run(self, X, states: tuple):
        """Forward through every time step: ``(Y, final states, what backward needs)``."""
        b = self._backend
        xp = b.xp
        p = self._parameters
        n, length = X.shape[0], X.shape[1]
        W_hh_T = p["weight_hh"].T
        XI = X @ p["weight_ih"].T  # every step's input contribution at once: (N, L, G*H)
        if "bias_ih" in p:
            XI = XI + p["bias_ih"]
        bias_hh = p.get("bias_hh")
        outputs, steps = [], []
        for t in range(length):
            hh = states[0] @ W_hh_T
            if bias_hh is not None:
                hh = hh + bias_hh
            new, kept = self._cell(xp, XI[:, t, :], hh, states)
            steps.append((states, kept))
            outputs.append(new[0])
            states = new
        if length:
            Y = xp.stack(outputs, axis=1)
        else:
            Y = xp.zeros((n, 0, self.hidden_size), dtype=b.dtype, device=b.device)
        return Y, states, steps

    def forward(self, X: Array) -> Array:
        """The hidden state of every step, from a zero initial state: ``(N, L, hidden_size)``."""
        X = self._input(X, "forward")
        return self._run(X, self._states(X, None, "forward"))[0]

    def forward_with_state(self, X: Array, state: Any = None) -> tuple[Array, Any]:
        """Forward from the initial state ``state``; returns ``(Y, final state)``.

        ``state`` is ``h0`` ``(N, hidden_size)`` (a tuple ``(h0, c0)`` for
        :class:`LSTM`); None, or a None entry, means zeros. The final state
        has the same form (``h_L`` is also ``Y[:, -1]``), so a long sequence
        may be fed in pieces. For a sequence of length 0, ``Y`` is
        ``(N, 0, hidden_size)`` and the final state is a copy of the initial
        one. Nothing is kept: :meth:`backward_with_state` recomputes.
        """
        X = self._input(X, "forward_with_state")
        Y, final, _ = self._run(X, self._states(X, state, "forward_with_state"))
        if X.shape[1] == 0:
            final = tuple(self._backend.copy(s) for s in final)  # never the caller's own array
        return Y, self._packed(final)

    def chain_forward(self, X):
        X = self._input(X, "forward")
        Y, _, steps = self._run(X, self._states(X, None, "forward"))
        self._saved[self._call_path] = (X, steps)
        return Y

    # ------------------------------------------------------------ backward

    def _delta(self, X, delta, method: str):
        return self.check_delta(delta, self.output_shape(tuple(X.shape)), method)

    def _bptt(self, X, steps, delta, dfinal: tuple | None, input_grad: bool, param_grad: bool):
        """Backpropagation through time: accumulates the parameter gradients when
        ``param_grad``; returns ``(dX or None, gradients of the initial states)``."""
        b = self._backend
        xp = b.xp
        p = self._parameters
        n, length = X.shape[0], X.shape[1]
        W_hh = p["weight_hh"]
        if dfinal is None:
            zeros = xp.zeros((n, self.hidden_size), dtype=b.dtype, device=b.device)
            dstates = (zeros,) * self._n_states
        else:
            dstates = dfinal
        if length == 0:  # nothing to accumulate; the state's gradient goes straight through
            dX = xp.zeros(tuple(X.shape), dtype=b.dtype, device=b.device) if input_grad else None
            return dX, tuple(b.copy(d) for d in dstates)
        dXI, dHH = [None] * length, [None] * length
        for t in range(length - 1, -1, -1):
            states, kept = steps[t]
            dh = delta[:, t, :] + dstates[0]
            dxi, dhh, dprev = self._cell_backward(xp, dh, dstates[1:], states, kept)
            dXI[t], dHH[t] = dxi, dhh
            dh_prev = dhh @ W_hh
            if dprev[0] is not None:
                dh_prev = dh_prev + dprev[0]
            dstates = (dh_prev, *dprev[1:])
        DXI = xp.stack(dXI, axis=1)  # (N, L, G*H): the gradient of X @ W_ih^T + b_ih
        DHH = DXI if dHH[0] is dXI[0] else xp.stack(dHH, axis=1)
        if param_grad:
            rows = self._gates * self.hidden_size
            # the hidden state each step read: h0, then the outputs of steps 0 .. L-2
            H_prev = xp.stack([s[0] for s, _ in steps], axis=1)
            dxi2 = xp.reshape(DXI, (n * length, rows))
            dhh2 = dxi2 if DHH is DXI else xp.reshape(DHH, (n * length, rows))
            self.accumulate_gradient(
                "weight_ih", b.contract_rows(dxi2, xp.reshape(X, (n * length, self.input_size)))
            )
            self.accumulate_gradient(
                "weight_hh",
                b.contract_rows(dhh2, xp.reshape(H_prev, (n * length, self.hidden_size))),
            )
            if self.bias:
                self.accumulate_gradient("bias_ih", xp.sum(dxi2, axis=0))
                self.accumulate_gradient("bias_hh", xp.sum(dhh2, axis=0))
        dX = DXI @ p["weight_ih"] if input_grad else None
        return dX, dstates

    def _recompute(self, input, delta, method: str):
        X = self._input(input, method)
        delta = self._delta(X, delta, method)
        _, _, steps = self._run(X, self._states(X, None, method))
        return X, delta, steps

    def backward_update_gradient(self, input: Array, delta: Array) -> None:
        X, delta, steps = self._recompute(input, delta, "backward_update_gradient")
        self._bptt(X, steps, delta, None, False, True)

    def backward_delta(self, input: Array, delta: Array) -> Array:
        X, delta, steps = self._recompute(input, delta, "backward_delta")
        return self._bptt(X, steps, delta, None, True, False)[0]

    def backward(self, input: Array, delta: Array, *, input_grad: bool = True) -> Array | None:
        X, delta, steps = self._recompute(input, delta, "backward")
        return self._bptt(X, steps, delta, None, input_grad, True)[0]

    def backward_with_state(
        self,
        input: Array,
        state: Any,
        delta: Array,
        delta_final: Any = None,
        *,
        param_grad: bool = True,
    ) -> tuple[Array, Any]:
        """Both backward rules of :meth:`forward_with_state`; returns ``(dX, dstate)``.

        Accumulates the parameter gradients (unless ``param_grad=False``) of
        the cost whose gradient is ``delta`` ``(N, L, hidden_size)`` with
        respect to ``Y`` and ``delta_final`` with respect to the final state
        (None: the cost does not read it; for :class:`LSTM` a tuple whose
        entries may be None). Returns the input gradient and the gradient
        with respect to the initial ``state``, in the form of ``state``
        (``dh0``, or ``(dh0, dc0)``). Recomputes the forward pass from
        ``input`` and ``state``.
        """
        method = "backward_with_state"
        X = self._input(input, method)
        states = self._states(X, state, method)
        delta = self._delta(X, delta, method)
        dfinal = self._states(X, delta_final, method, "delta_final")
        _, _, steps = self._run(X, states)
        dX, dstates = self._bptt(X, steps, delta, dfinal, True, param_grad)
        return dX, self._packed(dstates)

    def chain_backward(self, input, delta, input_grad: bool = True, param_grad: bool = True):
        saved = self._saved.get(self._call_path)
        if saved is not None and saved[0] is input:
            X, steps = saved
            delta = self._delta(X, delta, "backward")
        else:
            X, delta, steps = self._recompute(input, delta, "backward")
        if not (input_grad or param_grad):
            return None
        return self._bptt(X, steps, delta, None, input_grad, param_grad)[0]

    # -------------------------------------------------------- interchange

    def _onnx_attributes(self) -> dict:
        return {}

    def export_onnx(self, graph, value):
        """ONNX's ``RNN``/``LSTM``/``GRU`` operator (time-major, so between two Transposes),
        with the gate blocks of the weights put in ONNX's order."""
        value = graph.channels_last(value)
        if len(value.shape) != 2 or value.shape[1] != self.input_size:
            raise ValueError(
                f"export_onnx: {self._label()} expects samples of shape (L, {self.input_size}), "
                f"but its input samples have shape {tuple(value.shape)}"
            )
        h = self.hidden_size
        order = self._onnx_gate_order
        index = (
            None
            if order is None
            else graph.int64s(tuple(g * h + j for g in order for j in range(h)))
        )

        def reordered(key):
            name = graph.param(self, key)
            return name if index is None else graph.node("Gather", [name, index], axis=0)

        first = graph.int64s((0,))
        inputs = [
            graph.node("Transpose", [value.name], perm=[1, 0, 2]),  # (L, N, C): time-major
            graph.node("Unsqueeze", [reordered("weight_ih"), first]),
            graph.node("Unsqueeze", [reordered("weight_hh"), first]),
        ]
        if self.bias:
            both = graph.node("Concat", [reordered("bias_ih"), reordered("bias_hh")], axis=0)
            inputs.append(graph.node("Unsqueeze", [both, first]))
        y = graph.node(self._onnx_op, inputs, hidden_size=h, **self._onnx_attributes())
        # Y is (L, num_directions = 1, N, H)
        y = graph.node("Squeeze", [y, graph.int64s((1,))])
        y = graph.node("Transpose", [y], perm=[1, 0, 2])
        return type(value)(y, (value.shape[0], h), False)

    def _torch_kwargs(self) -> dict:
        return {}

    @classmethod
    def _config_from_torch(cls, module) -> dict:
        return {}

    @classmethod
    def from_torch(cls, module, converter) -> _Recurrent:
        """The layer equal to a ``torch.nn`` module of :attr:`torch_names` with one layer, one
        direction and ``batch_first=True`` (anything else is a ValueError naming it).

        The module's ``dropout`` is accepted: PyTorch applies it between
        stacked layers only, so a one-layer module computes without it.
        """
        kind = type(module).__name__
        if kind not in cls.torch_names:
            raise TypeError(
                f"{cls.__name__}.from_torch: expected torch.nn.{' or '.join(cls.torch_names)}, "
                f"got {kind}"
            )
        unsupported = []
        if module.num_layers != 1:
            unsupported.append(
                f"num_layers={module.num_layers} (stack {cls.__name__} layers in a Sequential)"
            )
        if module.bidirectional:
            unsupported.append("bidirectional=True")
        if not module.batch_first:
            unsupported.append(
                "batch_first=False (the library's sequences are (N, L, C): use batch_first=True)"
            )
        if getattr(module, "proj_size", 0):
            unsupported.append(f"proj_size={module.proj_size}")
        if unsupported:
            raise ValueError(
                f"{cls.__name__}.from_torch: torch.nn.{kind} with {', '.join(unsupported)} is not "
                f"supported: only one layer, one direction and batch_first=True convert"
            )
        layer = cls(
            module.input_size,
            module.hidden_size,
            bias=bool(module.bias),
            **cls._config_from_torch(module),
        )
        # the converter's arrays are copies: the layer never follows later changes of the module
        layer.load_state_dict(
            {key: converter.array(getattr(module, f"{key}_l0")) for key in layer._parameters}
        )
        converter.sequence()
        return layer

    def to_torch(self, converter):
        """The ``torch.nn`` module (``batch_first=True``, one layer) with this layer's weights."""
        nn = converter.nn
        module = getattr(nn, self.torch_names[0])(
            self.input_size,
            self.hidden_size,
            num_layers=1,
            bias=self.bias,
            batch_first=True,
            **self._torch_kwargs(),
        )
        for key, value in self._parameters.items():
            converter.set(module, f"{key}_l0", converter.tensor(value))  # a copy
        converter.sequence()
        return module


class RNN(_Recurrent):
    """Elman recurrent layer: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    Parameters
    ----------
    input_size : int
        Features C of each time step.
    hidden_size : int
        Size H of the hidden state.
    nonlinearity : {'tanh', 'relu'}, default 'tanh'
    bias : bool, default True
    rng : None, int or numpy Generator, optional
        Where the initial weights come from (the library's seeded host
        generator by default).

    Shape
    -----
    ``(N, L, input_size)`` -> ``(N, L, hidden_size)``: the hidden state of
    every step, from ``h_0 = 0`` (see :meth:`forward_with_state` for another
    initial state). A sequence of length 0 gives ``(N, 0, hidden_size)``.

    Parameters (``_parameters``)
    ----------------------------
    weight_ih ``(H, C)``, weight_hh ``(H, H)``, bias_ih and bias_hh ``(H,)``,
    all U(-k, k) with k = 1/sqrt(H): PyTorch's ``nn.RNN`` names, shapes and
    initialisation.
    """

    torch_names = ("RNN",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "tanh",
        bias: bool = True,
        *,
        rng: RNG = None,
    ) -> None:
        if not isinstance(nonlinearity, str) or nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, rng=rng)

    def get_config(self) -> dict:
        return {**super().get_config(), "nonlinearity": self.nonlinearity}

    def extra_repr(self) -> str:
        text = f"{self.input_size} -> {self.hidden_size}"
        if self.nonlinearity != "tanh":
            text += f", nonlinearity={self.nonlinearity!r}"
        return text + ("" if self.bias else ", bias=False")

    def _cell(self, xp, xi, hh, states):
        a = xi + hh
        h = xp.tanh(a) if self.nonlinearity == "tanh" else xp.maximum(a, 0)
        return (h,), h

    def _cell_backward(self, xp, dh, dstates, states, h):
        # relu: the derivative at 0 is 0, as in PyTorch
        tanh = self.nonlinearity == "tanh"
        da = dh * (1 - h * h) if tanh else dh * xp.astype(h > 0, dh.dtype)
        return da, da, (None,)

    def _onnx_attributes(self) -> dict:
        return {"activations": ["Tanh" if self.nonlinearity == "tanh" else "Relu"]}

    def _torch_kwargs(self) -> dict:
        return {"nonlinearity": self.nonlinearity}

    @classmethod
    def _config_from_torch(cls, module) -> dict:
        return {"nonlinearity": module.nonlinearity}


class LSTM(_Recurrent):
    """Long short-term memory layer, PyTorch's equations (gates in the order i, f, g, o):

        i = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
        f = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        g = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        o = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    Parameters
    ----------
    input_size : int
        Features C of each time step.
    hidden_size : int
        Size H of the hidden and cell states.
    bias : bool, default True
    rng : None, int or numpy Generator, optional

    Shape
    -----
    ``(N, L, input_size)`` -> ``(N, L, hidden_size)``: the hidden state
    ``h_t`` of every step, from ``h_0 = c_0 = 0`` (see
    :meth:`forward_with_state`, whose state is the tuple ``(h0, c0)``).

    Parameters (``_parameters``)
    ----------------------------
    weight_ih ``(4H, C)``, weight_hh ``(4H, H)``, bias_ih and bias_hh
    ``(4H,)``, the blocks of the gates i, f, g, o stacked in that order, all
    U(-k, k) with k = 1/sqrt(H): PyTorch's ``nn.LSTM`` layout.
    """

    torch_names = ("LSTM",)
    _gates = 4
    _n_states = 2
    _onnx_op = "LSTM"
    _onnx_gate_order = (0, 3, 1, 2)  # ONNX stacks i, o, f, c

    def _state_names(self) -> tuple[str, ...]:
        return ("h0", "c0")

    def _cell(self, xp, xi, hh, states):
        H = self.hidden_size
        a = xi + hh
        s = _sigmoid(xp, a)
        i, f, o = s[:, :H], s[:, H : 2 * H], s[:, 3 * H :]
        g = xp.tanh(a[:, 2 * H : 3 * H])
        c = f * states[1] + i * g
        tc = xp.tanh(c)
        h = o * tc
        return (h, c), (i, f, g, o, tc)

    def _cell_backward(self, xp, dh, dstates, states, kept):
        i, f, g, o, tc = kept
        do = dh * tc
        dc = dstates[0] + dh * o * (1 - tc * tc)
        da = xp.concat(
            [
                dc * g * i * (1 - i),
                dc * states[1] * f * (1 - f),
                dc * i * (1 - g * g),
                do * o * (1 - o),
            ],
            axis=1,
        )
        return da, da, (None, dc * f)


class GRU(_Recurrent):
    """Gated recurrent unit, PyTorch's equations (gates in the order r, z, n)::

        r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    The reset gate multiplies the hidden state's contribution after its
    matrix product (ONNX's ``linear_before_reset=1``), as in PyTorch.

    Parameters
    ----------
    input_size : int
        Features C of each time step.
    hidden_size : int
        Size H of the hidden state.
    bias : bool, default True
    rng : None, int or numpy Generator, optional

    Shape
    -----
    ``(N, L, input_size)`` -> ``(N, L, hidden_size)``: the hidden state of
    every step, from ``h_0 = 0`` (see :meth:`forward_with_state`).

    Parameters (``_parameters``)
    ----------------------------
    weight_ih ``(3H, C)``, weight_hh ``(3H, H)``, bias_ih and bias_hh
    ``(3H,)``, the blocks of r, z, n stacked in that order, all U(-k, k)
    with k = 1/sqrt(H): PyTorch's ``nn.GRU`` layout.
    """

    torch_names = ("GRU",)
    _gates = 3
    _onnx_op = "GRU"
    _onnx_gate_order = (1, 0, 2)  # ONNX stacks z, r, h

    def _onnx_attributes(self) -> dict:
        return {"linear_before_reset": 1}

    def _cell(self, xp, xi, hh, states):
        H = self.hidden_size
        rz = _sigmoid(xp, xi[:, : 2 * H] + hh[:, : 2 * H])
        r, z = rz[:, :H], rz[:, H:]
        hn = hh[:, 2 * H :]
        n = xp.tanh(xi[:, 2 * H :] + r * hn)
        h = (1 - z) * n + z * states[0]
        return (h,), (r, z, n, hn)

    def _cell_backward(self, xp, dh, dstates, states, kept):
        r, z, n, hn = kept
        dan = dh * (1 - z) * (1 - n * n)
        dar = dan * hn * r * (1 - r)
        daz = dh * (states[0] - n) * z * (1 - z)
        # the input's part of n is not gated; the hidden state's part is, by r
        dxi = xp.concat([dar, daz, dan], axis=1)
        dhh = xp.concat([dar, daz, dan * r], axis=1)
        return dxi, dhh, (dh * z,)
