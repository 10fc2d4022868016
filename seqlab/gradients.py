r"""How gradients travel back through a recurrent network, and how to keep them sane.

The gradient that reaches step :math:`t` from step :math:`T` is a product of
Jacobians, one per step in between (Bengio et al., 1994; Pascanu et al., 2013):

.. math::

    \frac{\partial h_T}{\partial h_t}
        = \prod_{k=t+1}^{T} \operatorname{diag}(1 - h_k^2)\, W_{hh}^\top

For a linear RNN this is :math:`(W_{hh}^\top)^{T-t}`, whose size is governed
by the spectral radius of :math:`W_{hh}`: below 1 it vanishes, above 1 it
explodes. Each tanh factor has entries in [0, 1], so on its own it shrinks a
vector; for a normal :math:`W_{hh}` the product is then at most
:math:`\rho^{T-t}`, but for a non-normal one a tanh factor between two
:math:`W_{hh}^\top` can turn a vector toward a direction they stretch.

The gradient of the weights adds one term per step, because the one
:math:`W_{hh}` is used at every step (:func:`w_hh_gradient_terms` builds the
terms by hand); truncated backpropagation through time (Williams & Peng, 1990)
detaches the state every k steps and so drops the terms that reach further
back than a chunk: :func:`rnn_forward_truncated`, :func:`truncated_bptt`.

The cure for explosion is to clip the *gradient* by its global norm before
the update (Pascanu et al., 2013), :func:`clip_grad_norm`; the weights are
left alone. The cure for vanishing is a different architecture (chapter 2).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .base.train import clip_grad_norm, clip_grad_norm_, global_norm
from .rnn import RNN, check_dims, rnn_step

# clipping lives beside the training loop that uses it; chapter 1 teaches it from here
__all__ = [
    "clip_grad_norm",
    "clip_grad_norm_",
    "global_norm",
    "hidden_gradient_norms",
    "input_sensitivity",
    "matrix_power_norms",
    "rnn_forward_truncated",
    "scale_spectral_radius",
    "spectral_radius",
    "truncated_bptt",
    "w_hh_gradient_terms",
]


def spectral_radius(W: torch.Tensor) -> torch.Tensor:
    """W: (H, H) -> 0-dim tensor: the largest absolute value of W's eigenvalues."""
    if W.dim() != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"W should be a square matrix, got shape {tuple(W.shape)}")
    return torch.linalg.eigvals(W).abs().max()


def scale_spectral_radius(W: torch.Tensor, rho: float) -> torch.Tensor:
    """W: (H, H) -> W * (rho / spectral radius of W), a new tensor with spectral radius rho."""
    return W * (rho / spectral_radius(W))


def matrix_power_norms(W: torch.Tensor, steps: int) -> torch.Tensor:
    """W: (H, H) -> (steps,): entry k-1 is the spectral norm of W^k, for k = 1..steps.

    By Gelfand's formula ``norms[k-1] ** (1/k)`` tends to the spectral radius, but
    for a non-normal W the first powers can grow even when the radius is below 1.
    """
    if W.dim() != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"W should be a square matrix, got shape {tuple(W.shape)}")
    norms = []
    power = W
    for _ in range(steps):
        norms.append(torch.linalg.matrix_norm(power, ord=2))
        power = power @ W
    return torch.stack(norms) if norms else W.new_zeros(0)


def hidden_gradient_norms(
    W_hh: torch.Tensor,
    steps: int,
    nonlinearity: str = "tanh",
    probes: int = 32,
    input_scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """How much of a gradient at the last step reaches each earlier hidden state.

    Runs an RNN with recurrent matrix W_hh: (H, H) (inputs of size H, identity
    input weights, zero bias) for ``steps`` steps on ``probes`` random sequences,
    takes a random unit direction u of the last state, and backpropagates
    <u, h_T>. Returns (steps,): entry k is the mean over probes of
    ||d<u, h_T>/d h_{T-k}||, so entry 0 is 1 and entry k is k steps back.
    """
    H = W_hh.shape[0]
    opts = {"dtype": W_hh.dtype, "device": "cpu"}
    xs = input_scale * torch.randn(probes, steps, H, generator=generator, **opts).to(W_hh.device)
    u = torch.randn(probes, H, generator=generator, **opts).to(W_hh.device)
    u = u / u.norm(dim=1, keepdim=True)
    W_xh = torch.eye(H, dtype=W_hh.dtype, device=W_hh.device)
    b_h = W_hh.new_zeros(H)
    W = W_hh.detach()
    h = W_hh.new_zeros(probes, H, requires_grad=True)  # a leaf, so every h_t joins the graph
    hs = []
    for t in range(steps):
        h = rnn_step(xs[:, t], h, W_xh, W, b_h, nonlinearity)
        h.retain_grad()
        hs.append(h)
    (u * hs[-1]).sum().backward()
    norms = torch.stack([hs[t].grad.norm(dim=1).mean() for t in range(steps)])  # (steps,)
    return norms.flip(0)


def input_sensitivity(rnn: RNN, xs: torch.Tensor, generator: torch.Generator | None = None):
    """How much an RNN's summary of a sequence depends on each input position.

    The summary is the final hidden state of each direction (what a sequence
    classifier reads): h_T for the forward direction, and h_1 of the backward
    one for a bidirectional RNN. xs: (B, T, D) -> (T,): the mean over the batch
    of ||d<u, summary>/d x_t|| for a random unit direction u, per position t.
    """
    xs = xs.detach().clone().requires_grad_(True)
    hs = rnn(xs)  # (B, T, dirs * H)
    H = rnn.hidden_size
    summary = hs[:, -1, :H]
    if rnn.directions == 2:
        summary = torch.cat([summary, hs[:, 0, H:]], dim=-1)
    u = torch.randn(summary.shape, generator=generator, dtype=xs.dtype).to(xs.device)
    u = u / u.norm(dim=1, keepdim=True)
    (u * summary).sum().backward()
    return xs.grad.norm(dim=2).mean(dim=0)  # (T,)


# ------------------------------------------------------------------ the weights' gradient over time


def rnn_forward_truncated(
    xs: torch.Tensor,
    h0: torch.Tensor,
    W_xh: torch.Tensor,
    W_hh: torch.Tensor,
    b_h: torch.Tensor,
    k: int,
    nonlinearity: str = "tanh",
) -> torch.Tensor:
    """:func:`seqlab.rnn.rnn_forward` with the state detached every ``k`` steps.

    xs: (B, T, D), h0: (B, H) -> hs: (B, T, H), the same values as
    ``rnn_forward``. The state that enters step t (counted from 0) is detached
    when t is a positive multiple of k, so a gradient flows back at most to the
    start of its chunk of k steps: backpropagating a loss of these states is
    truncated backpropagation through time (Williams & Peng, 1990). With k >= T
    nothing is detached (full BPTT); with k = 1 every step sees a constant state.
    """
    if k < 1:
        raise ValueError(f"k should be a positive number of steps, got {k}")
    check_dims("xs", xs, 3)
    h, states = h0, []
    for t, x_t in enumerate(xs.unbind(1)):
        if t > 0 and t % k == 0:
            h = h.detach()  # the gradient stops here: this chunk starts from a constant
        h = rnn_step(x_t, h, W_xh, W_hh, b_h, nonlinearity)
        states.append(h)
    return torch.stack(states, 1)  # (B, T, H)


def w_hh_gradient_terms(
    hs: torch.Tensor,
    h0: torch.Tensor,
    W_hh: torch.Tensor,
    dl_dhs: torch.Tensor,
    k: int | None = None,
    nonlinearity: str = "tanh",
) -> torch.Tensor:
    r"""The per-step terms of :math:`\partial L / \partial W_{hh}`, by hand (Werbos, 1990).

    For a loss :math:`L = \sum_t \ell_t(h_t)` whose direct gradients
    :math:`\partial \ell_t / \partial h_t` are ``dl_dhs``: (B, T, H), given the
    forward states hs: (B, T, H) and h0: (B, H), runs the backward recursion

    .. math::

        \delta_t = \Big(\frac{\partial \ell_t}{\partial h_t}
            + \delta_{t+1} W_{hh}^\top\Big) \odot (1 - h_t^2)

    (without the factor :math:`1 - h_t^2` for a linear RNN) and returns
    (T, H, H): term t is :math:`h_{t-1}^\top \delta_t`, summed over the batch.
    Their sum is the gradient of W_hh. With ``k``, the recursion is cut where
    :func:`rnn_forward_truncated` detaches the state: :math:`\delta_{t+1}` does
    not reach step t when t + 1 is a positive multiple of k (steps from 0).
    """
    check_dims("hs", hs, 3)
    T = hs.shape[1]
    previous = torch.cat([h0.unsqueeze(1), hs[:, :-1]], dim=1)  # h_{t-1}: (B, T, H)
    terms = []
    delta_next = torch.zeros_like(hs[:, 0])  # (B, H)
    for t in range(T - 1, -1, -1):
        carried = t + 1 < T and not (k is not None and (t + 1) % k == 0)
        g = dl_dhs[:, t] + (delta_next @ W_hh.T if carried else 0)  # dL/dh_t, (B, H)
        delta = g * (1 - hs[:, t] ** 2) if nonlinearity == "tanh" else g  # dL/da_t
        terms.append(previous[:, t].T @ delta)  # (H, H): h_{t-1}^T delta_t
        delta_next = delta
    return torch.stack(terms[::-1])  # (T, H, H)


def truncated_bptt(
    rnn: RNN,
    xs: torch.Tensor,
    k: int,
    chunk_loss: Callable[[torch.Tensor, int], torch.Tensor | None],
    h0: torch.Tensor | None = None,
) -> float:
    """Truncated backpropagation through time, chunk by chunk (Williams & Peng, 1990).

    Runs the unidirectional ``rnn`` over xs: (B, T, D) in chunks of ``k`` steps,
    each from the detached state the previous one ended in. After each chunk it
    calls ``chunk_loss(hs, start)`` with that chunk's states hs: (B, k', H)
    (k' = k except maybe the last) and the step where it starts, and
    backpropagates the loss it returns (None: this chunk has no loss), which
    *adds* to the parameters' ``.grad``. Only one chunk's graph is alive at a
    time, so memory grows with k, not with T. The gradient left in ``.grad`` is
    that of the summed chunk losses computed on the states of
    :func:`rnn_forward_truncated`. Returns the total loss, as a float.
    """
    if k < 1:
        raise ValueError(f"k should be a positive number of steps, got {k}")
    if rnn.directions != 1:
        raise ValueError("truncated_bptt needs a unidirectional RNN: it runs forward in time")
    check_dims("xs", xs, 3)
    h = h0  # the first chunk starts from h0 itself, as rnn_forward_truncated does
    total = 0.0
    for start in range(0, xs.shape[1], k):
        hs = rnn(xs[:, start : start + k], h)  # (B, k', H)
        loss = chunk_loss(hs, start)
        if loss is not None:
            loss.backward()
            total += loss.item()
        # the next chunk starts from a constant; a copy, not a view that would keep
        # this chunk's stacked states alive
        h = hs[:, -1].detach().clone()
        del hs, loss  # free this chunk's graph before the next one is built
    return total
