r"""Gated recurrent cells, written out gate by gate: the LSTM and the GRU.

The long short-term memory (Hochreiter & Schmidhuber, 1997), with the forget
gate of Gers et al. (2000), keeps a second state, the cell :math:`c_t`, that
is updated by *adding* to a gated copy of itself:

.. math::

    \begin{aligned}
    i_t &= \sigma(x_t W_{ii}^\top + b_{ii} + h_{t-1} W_{hi}^\top + b_{hi}) \\
    f_t &= \sigma(x_t W_{if}^\top + b_{if} + h_{t-1} W_{hf}^\top + b_{hf}) \\
    g_t &= \tanh(x_t W_{ig}^\top + b_{ig} + h_{t-1} W_{hg}^\top + b_{hg}) \\
    o_t &= \sigma(x_t W_{io}^\top + b_{io} + h_{t-1} W_{ho}^\top + b_{ho}) \\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
    h_t &= o_t \odot \tanh(c_t)
    \end{aligned}

The gated recurrent unit (Cho et al., 2014) merges the cell into the hidden
state and uses two gates, reset :math:`r_t` and update :math:`z_t`:

.. math::

    \begin{aligned}
    r_t &= \sigma(x_t W_{ir}^\top + b_{ir} + h_{t-1} W_{hr}^\top + b_{hr}) \\
    z_t &= \sigma(x_t W_{iz}^\top + b_{iz} + h_{t-1} W_{hz}^\top + b_{hz}) \\
    n_t &= \tanh(x_t W_{in}^\top + b_{in} + r_t \odot (h_{t-1} W_{hn}^\top + b_{hn})) \\
    h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
    \end{aligned}

Weights use PyTorch's layout, so that every function here can be checked
against ``torch.nn.LSTM`` / ``torch.nn.GRU`` with the same weights: ``W_ih``
is (G * H, D) and ``W_hh`` (G * H, H) with the gates' rows stacked (G = 4 in
the order i, f, g, o for the LSTM; G = 3 in the order r, z, n for the GRU),
``b_ih`` and ``b_hh`` are (G * H,). Tensors are batch first: x (B, D),
h and c (B, H), a sequence xs (B, T, D).

The layers :class:`LSTM` and :class:`GRU` run the loop below by default.
With ``fast=True`` they run the same weights through PyTorch's fused
recurrence instead (``torch.lstm`` / ``torch.gru``: oneDNN on the CPU, cuDNN
on CUDA), for training where speed matters; the tests prove the two paths
equal. A Python loop pays the interpreter at every gate of every step, which
the fused kernels do not: at B=32, T=50, H=64 the loop is several times slower
(``make bench`` measures both).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .rnn import check_dims


class LSTMGates(NamedTuple):
    """The LSTM's gate activations at one step, each (B, H)."""

    i: torch.Tensor  # input gate: how much of the candidate enters the cell
    f: torch.Tensor  # forget gate: how much of the old cell is kept
    g: torch.Tensor  # cell candidate, in (-1, 1)
    o: torch.Tensor  # output gate: how much of tanh(c) is shown as h


def lstm_gates(
    x: torch.Tensor,
    h: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> LSTMGates:
    """The four gates of one LSTM step (Hochreiter & Schmidhuber, 1997; Gers et al., 2000).

    x: (B, D), h: (B, H), W_ih: (4H, D), W_hh: (4H, H), b_ih, b_hh: (4H,)
    -> LSTMGates(i, f, g, o), each (B, H).
    """
    check_dims("x", x, 2)
    check_dims("h", h, 2)
    pre = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (B, 4H): the four gates side by side
    i, f, g, o = pre.chunk(4, dim=1)  # each (B, H)
    return LSTMGates(torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o))


def lstm_cell(
    x: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step. x: (B, D), h, c: (B, H) -> (h_new, c_new), each (B, H).

    Equal to ``torch.nn.LSTMCell`` with weight_ih = W_ih (4H, D), weight_hh = W_hh
    (4H, H), bias_ih = b_ih and bias_hh = b_hh (4H,), gate rows in the order i, f, g, o.
    """
    i, f, g, o = lstm_gates(x, h, W_ih, W_hh, b_ih, b_hh)
    c_new = f * c + i * g  # the additive path: dc_new/dc = diag(f)
    h_new = o * torch.tanh(c_new)
    return h_new, c_new


def lstm_forward(
    xs: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Run the LSTM over a sequence. xs: (B, T, D), h0, c0: (B, H)
    -> (hs (B, T, H), (h_T, c_T)), equal to a one-layer, batch-first ``torch.nn.LSTM``.
    """
    check_dims("xs", xs, 3)
    h, c = h0, c0
    hs = []
    for t in range(xs.shape[1]):
        h, c = lstm_cell(xs[:, t], h, c, W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
    return torch.stack(hs, dim=1), (h, c)  # (B, T, H)


def gru_cell(
    x: torch.Tensor,
    h: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    """One GRU step (Cho et al., 2014). x: (B, D), h: (B, H) -> h_new (B, H).

    Equal to ``torch.nn.GRUCell`` with W_ih (3H, D), W_hh (3H, H), b_ih, b_hh (3H,),
    rows in the order r, z, n. As in PyTorch (and cuDNN), the reset gate scales
    ``h @ W_hn.T + b_hn`` *after* the product, not h before it.
    """
    check_dims("x", x, 2)
    check_dims("h", h, 2)
    x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=1)  # each (B, H)
    h_r, h_z, h_n = (h @ W_hh.T + b_hh).chunk(3, dim=1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h  # z = 1 keeps the old state: an additive path, like the LSTM's


def gru_forward(
    xs: torch.Tensor,
    h0: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the GRU over a sequence. xs: (B, T, D), h0: (B, H)
    -> (hs (B, T, H), h_T), equal to a one-layer, batch-first ``torch.nn.GRU``.
    """
    check_dims("xs", xs, 3)
    h = h0
    hs = []
    for t in range(xs.shape[1]):
        h = gru_cell(xs[:, t], h, W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
    return torch.stack(hs, dim=1), h  # (B, T, H)


class _GatedLayer(nn.Module):
    """Parameters of a one-layer gated RNN with ``gates`` gates, in PyTorch's layout."""

    gates = 0  # rows of weight_ih per hidden unit: 4 for the LSTM, 3 for the GRU
    torch_class: type[nn.Module] = nn.Module  # the fused layer with the same weights
    torch_cell_class: type[nn.Module] = nn.Module  # and the fused cell

    def __init__(self, input_size: int, hidden_size: int, *, fast: bool = False):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.fast = fast  # run PyTorch's fused recurrence instead of the explicit loop
        G, H = self.gates, hidden_size
        bound = H**-0.5  # torch's initialisation, U(-1/sqrt(H), 1/sqrt(H))
        self.weight_ih = nn.Parameter(torch.empty(G * H, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(G * H, H).uniform_(-bound, bound))
        self.bias_ih = nn.Parameter(torch.empty(G * H).uniform_(-bound, bound))
        self.bias_hh = nn.Parameter(torch.empty(G * H).uniform_(-bound, bound))

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_ih, W_hh, b_ih, b_hh), the order every function of this module takes them in."""
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def _check_input(self, xs: torch.Tensor) -> tuple[int, int]:
        check_dims("xs", xs, 3)
        B, T, D = xs.shape
        if D != self.input_size:
            raise ValueError(f"expected {self.input_size} input features, got {D}")
        return B, T

    @torch.no_grad()
    def load_from_torch(self, module: nn.Module):
        """Copy the weights of a one-layer, unidirectional torch layer or cell of this kind."""
        if not isinstance(module, (self.torch_class, self.torch_cell_class)):
            names = f"{self.torch_class.__name__} or {self.torch_cell_class.__name__}"
            raise TypeError(f"expected a {names}, got {type(module).__name__}")
        layers = getattr(module, "num_layers", 1)
        if layers != 1 or getattr(module, "bidirectional", False):
            raise ValueError("load_from_torch needs a one-layer, unidirectional module")
        if (module.input_size, module.hidden_size) != (self.input_size, self.hidden_size):
            raise ValueError(
                f"sizes differ: (D, H) = {(module.input_size, module.hidden_size)} (torch) "
                f"vs {(self.input_size, self.hidden_size)}"
            )
        sfx = "_l0" if hasattr(module, "weight_ih_l0") else ""
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(self, name).copy_(getattr(module, name + sfx))
        return self

    @torch.no_grad()
    def to_torch(self) -> nn.Module:
        """A one-layer, batch-first torch module (the fused kernel) with these weights."""
        p = self.weight_ih
        module = self.torch_class(self.input_size, self.hidden_size, batch_first=True)
        module = module.to(device=p.device, dtype=p.dtype)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(module, name + "_l0").copy_(getattr(self, name))
        return module


class LSTM(_GatedLayer):
    """A one-layer LSTM, batch first, with ``torch.nn.LSTM``'s parameter names and layout.

    forward(xs: (B, T, D), state: (h0, c0), each (B, H), or None for zeros)
    -> (hs (B, T, H), (h_T, c_T)). :meth:`load_from_torch` copies a
    ``torch.nn.LSTM`` or ``torch.nn.LSTMCell``; :meth:`to_torch` builds the
    fused ``torch.nn.LSTM`` with the same weights.
    fast: run ``torch.lstm``, the fused recurrence, on these weights (same result).
    forget_bias: added to the forget gate's entries of ``bias_ih`` at
    initialisation, so that an untrained cell keeps its memory (Gers et al.,
    2000; Jozefowicz et al., 2015).
    """

    gates = 4
    torch_class = nn.LSTM
    torch_cell_class = nn.LSTMCell

    def __init__(
        self, input_size: int, hidden_size: int, forget_bias: float = 0.0, *, fast: bool = False
    ):
        super().__init__(input_size, hidden_size, fast=fast)
        with torch.no_grad():
            self.bias_ih[hidden_size : 2 * hidden_size] += forget_bias

    def forward(
        self, xs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        B, _ = self._check_input(xs)
        if state is None:
            zeros = xs.new_zeros(B, self.hidden_size)
            state = (zeros, zeros)
        if self.fast:
            hx = (state[0].unsqueeze(0), state[1].unsqueeze(0))  # (layers = 1, B, H)
            hs, h, c = torch.lstm(xs, hx, self.weights(), True, 1, 0.0, self.training, False, True)
            return hs, (h[0], c[0])
        return lstm_forward(xs, *state, *self.weights())

    @torch.no_grad()
    def trace(self, xs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every gate and state along a sequence, from zero states.

        xs: (B, T, D) -> {"i", "f", "g", "o", "c", "h"}: each (B, T, H).
        """
        B, T = self._check_input(xs)
        h = c = xs.new_zeros(B, self.hidden_size)
        out: dict[str, list[torch.Tensor]] = {k: [] for k in ("i", "f", "g", "o", "c", "h")}
        for t in range(T):
            gates = lstm_gates(xs[:, t], h, *self.weights())  # computed from h_{t-1}
            h, c = lstm_cell(xs[:, t], h, c, *self.weights())
            for name, value in zip("ifgoch", (*gates, c, h), strict=True):
                out[name].append(value)
        return {k: torch.stack(v, dim=1) for k, v in out.items()}


class GRU(_GatedLayer):
    """A one-layer GRU, batch first, with ``torch.nn.GRU``'s parameter names and layout.

    forward(xs: (B, T, D), h0: (B, H) or None for zeros) -> (hs (B, T, H), h_T).
    :meth:`load_from_torch` copies a ``torch.nn.GRU`` or ``torch.nn.GRUCell``;
    :meth:`to_torch` builds the fused ``torch.nn.GRU`` with the same weights.
    fast: run ``torch.gru``, the fused recurrence, on these weights (same result).
    """

    gates = 3
    torch_class = nn.GRU
    torch_cell_class = nn.GRUCell

    def forward(
        self, xs: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, _ = self._check_input(xs)
        if h0 is None:
            h0 = xs.new_zeros(B, self.hidden_size)
        if self.fast:
            hs, h = torch.gru(
                xs, h0.unsqueeze(0), self.weights(), True, 1, 0.0, self.training, False, True
            )
            return hs, h[0]
        return gru_forward(xs, h0, *self.weights())
