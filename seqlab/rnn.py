r"""A vanilla recurrent network, written out step by step (Elman, 1990).

At every step the same weights update the hidden state:

.. math::

    h_t = \tanh(x_t W_{xh} + h_{t-1} W_{hh} + b_h)

with :math:`x_t` of shape (B, D), :math:`h_t` of shape (B, H), :math:`W_{xh}`
(D, H), :math:`W_{hh}` (H, H) and :math:`b_h` (H,). Tensors are batch first:
a sequence is (B, T, D). Backpropagation through time is left to autograd:
the loop below *is* the unrolled graph that gradients flow back through.
:class:`RNN` is one layer (optionally bidirectional); :class:`StackedRNN`
stacks several, each reading the states of the one below.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Nonlinearity = Callable[[torch.Tensor], torch.Tensor]


def _identity(z: torch.Tensor) -> torch.Tensor:
    return z


NONLINEARITIES: dict[str, Nonlinearity] = {"tanh": torch.tanh, "linear": _identity}


def check_dims(name: str, tensor: torch.Tensor, dims: int) -> None:
    """Raise a ValueError naming ``name`` unless ``tensor`` has ``dims`` dimensions."""
    if tensor.dim() != dims:
        raise ValueError(f"{name} should have {dims} dimensions, got shape {tuple(tensor.shape)}")


def rnn_step(
    x_t: torch.Tensor,
    h_prev: torch.Tensor,
    W_xh: torch.Tensor,
    W_hh: torch.Tensor,
    b_h: torch.Tensor,
    nonlinearity: str = "tanh",
) -> torch.Tensor:
    """One step of the recurrence.

    x_t: (B, D), h_prev: (B, H), W_xh: (D, H), W_hh: (H, H), b_h: (H,)
    -> h_t: (B, H) = tanh(x_t @ W_xh + h_prev @ W_hh + b_h).
    ``nonlinearity="linear"`` drops the tanh (a linear RNN).
    """
    check_dims("x_t", x_t, 2)
    check_dims("h_prev", h_prev, 2)
    return NONLINEARITIES[nonlinearity](x_t @ W_xh + h_prev @ W_hh + b_h)


def rnn_forward(
    xs: torch.Tensor,
    h0: torch.Tensor,
    W_xh: torch.Tensor,
    W_hh: torch.Tensor,
    b_h: torch.Tensor,
    nonlinearity: str = "tanh",
) -> torch.Tensor:
    """Run the recurrence over a whole sequence.

    xs: (B, T, D), h0: (B, H) -> hs: (B, T, H), the hidden state after each step.
    """
    check_dims("xs", xs, 3)
    h = h0
    hs = []
    for t in range(xs.shape[1]):
        h = rnn_step(xs[:, t], h, W_xh, W_hh, b_h, nonlinearity)
        hs.append(h)
    return torch.stack(hs, dim=1)  # (B, T, H)


class RNN(nn.Module):
    """A one-layer vanilla RNN, batch first, optionally bidirectional.

    Parameters are stored the way the equations read (``W_xh`` is (D, H)); the
    transposes of :class:`torch.nn.RNN`'s ``weight_ih_l0`` and ``weight_hh_l0``.
    :meth:`load_from_torch` copies a ``torch.nn.RNN``'s weights so the two can
    be compared (torch keeps two biases; their sum is ``b_h``).

    forward(xs: (B, T, D), h0: (B, H) or (dirs, B, H) or None)
    -> hs: (B, T, dirs * H); for a bidirectional RNN the backward direction's
    states are concatenated after the forward ones, as in torch.

    ``fast=True`` runs the same weights through PyTorch's fused recurrence
    (``torch.rnn_tanh``) instead of the loop of :func:`rnn_forward`; a linear
    RNN has no fused twin and always runs the loop.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "tanh",
        bidirectional: bool = False,
        *,
        fast: bool = False,
    ):
        super().__init__()
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"nonlinearity should be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.nonlinearity = nonlinearity
        self.directions = 2 if bidirectional else 1
        self.fast = fast
        bound = hidden_size**-0.5  # torch.nn.RNN's initialisation, U(-1/sqrt(H), 1/sqrt(H))
        self.W_xh = nn.ParameterList(
            [
                nn.Parameter(torch.empty(input_size, hidden_size).uniform_(-bound, bound))
                for _ in range(self.directions)
            ]
        )
        self.W_hh = nn.ParameterList(
            [
                nn.Parameter(torch.empty(hidden_size, hidden_size).uniform_(-bound, bound))
                for _ in range(self.directions)
            ]
        )
        self.b_h = nn.ParameterList(
            [
                nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))
                for _ in range(self.directions)
            ]
        )

    def forward(self, xs: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        check_dims("xs", xs, 3)
        B, _, D = xs.shape
        if D != self.input_size:
            raise ValueError(f"expected {self.input_size} input features, got {D}")
        if h0 is None:
            h0 = xs.new_zeros(self.directions, B, self.hidden_size)
        elif h0.dim() == 2:
            h0 = h0.unsqueeze(0).expand(self.directions, -1, -1)
        if self.fast and self.nonlinearity == "tanh":
            return self._fused(xs, h0)
        outs = []
        for d in range(self.directions):
            seq = xs if d == 0 else xs.flip(1)
            hs = rnn_forward(seq, h0[d], self.W_xh[d], self.W_hh[d], self.b_h[d], self.nonlinearity)
            outs.append(hs if d == 0 else hs.flip(1))
        return torch.cat(outs, dim=-1)  # (B, T, dirs * H)

    def _fused(self, xs: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """``torch.rnn_tanh`` on these weights, in torch's layout (transposed, two biases)."""
        params = []
        for d in range(self.directions):
            b = self.b_h[d]
            params += [self.W_xh[d].T, self.W_hh[d].T, b, torch.zeros_like(b)]
        hs, _ = torch.rnn_tanh(
            xs, h0.contiguous(), params, True, 1, 0.0, self.training, self.directions == 2, True
        )
        return hs  # (B, T, dirs * H)

    @torch.no_grad()
    def load_from_torch(self, module: nn.RNN, layer: int = 0) -> RNN:
        """Copy the weights of a ``torch.nn.RNN`` with the same sizes.

        ``layer`` picks one layer of a stacked ``nn.RNN`` (its input size is the
        module's for layer 0 and ``directions * hidden_size`` above).
        """
        if module.num_layers == 1 and module.input_size != self.input_size:
            raise ValueError("load_from_torch needs a one-layer nn.RNN of the same input size")
        if not 0 <= layer < module.num_layers:
            raise ValueError(f"layer should be in [0, {module.num_layers}), got {layer}")
        if module.hidden_size != self.hidden_size:
            raise ValueError(
                f"hidden sizes differ: {module.hidden_size} (torch) vs {self.hidden_size}"
            )
        directions = 2 if module.bidirectional else 1
        inputs = module.input_size if layer == 0 else directions * module.hidden_size
        if inputs != self.input_size or directions != self.directions:
            raise ValueError(
                f"layer {layer} of the nn.RNN reads {inputs} features in {directions} "
                f"direction(s); this RNN reads {self.input_size} in {self.directions}"
            )
        for d in range(self.directions):
            sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
            self.W_xh[d].copy_(getattr(module, "weight_ih" + sfx).T)
            self.W_hh[d].copy_(getattr(module, "weight_hh" + sfx).T)
            bias = getattr(module, "bias_ih" + sfx) + getattr(module, "bias_hh" + sfx)
            self.b_h[d].copy_(bias)
        return self


class StackedRNN(nn.Module):
    """A stack of ``n_layers`` vanilla RNNs: layer l reads the states of layer l - 1.

    Stacking recurrent layers (Graves et al., 2013; Pascanu et al., 2014) puts
    more than one nonlinearity between each step's input and its output:
    layer 0 reads xs: (B, T, D), layer l > 0 reads the (B, T, dirs * H) states
    of the layer below, as ``torch.nn.RNN(num_layers=L)`` does (without dropout
    between layers). Each layer is an :class:`RNN`;
    ``layers[l]`` holds its weights, and :meth:`load_from_torch` copies a
    stacked ``torch.nn.RNN``'s.

    forward(xs: (B, T, D), h0: (L * dirs, B, H) or None) -> hs: (B, T, dirs * H),
    the top layer's states; h0 is ordered as torch orders it (layer by layer,
    directions within a layer).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        n_layers: int = 2,
        nonlinearity: str = "tanh",
        bidirectional: bool = False,
        *,
        fast: bool = False,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers should be at least 1, got {n_layers}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.directions = 2 if bidirectional else 1
        sizes = [input_size] + [self.directions * hidden_size] * (n_layers - 1)
        self.layers = nn.ModuleList(
            [RNN(d, hidden_size, nonlinearity, bidirectional, fast=fast) for d in sizes]
        )

    def forward(self, xs: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        check_dims("xs", xs, 3)
        if h0 is not None:
            check_dims("h0", h0, 3)
            if h0.shape[0] != self.n_layers * self.directions:
                raise ValueError(
                    f"h0 should hold {self.n_layers * self.directions} states (layers x "
                    f"directions), got {h0.shape[0]}"
                )
        hs = xs
        for layer, rnn in enumerate(self.layers):
            dirs = slice(layer * self.directions, (layer + 1) * self.directions)
            hs = rnn(hs, None if h0 is None else h0[dirs])  # (B, T, dirs * H)
        return hs

    @torch.no_grad()
    def load_from_torch(self, module: nn.RNN) -> StackedRNN:
        """Copy the weights of a ``torch.nn.RNN`` with as many layers and the same sizes."""
        if module.num_layers != self.n_layers:
            raise ValueError(f"layer counts differ: {module.num_layers} (torch) vs {self.n_layers}")
        for layer, rnn in enumerate(self.layers):
            rnn.load_from_torch(module, layer)
        return self
