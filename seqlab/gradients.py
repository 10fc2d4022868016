r"""How gradients travel back through a recurrent network, and how to keep them sane.

The gradient that reaches step :math:`t` from step :math:`T` is a product of
Jacobians, one per step in between (Bengio et al., 1994; Pascanu et al., 2013):

.. math::

    \frac{\partial h_T}{\partial h_t}
        = \prod_{k=t+1}^{T} \operatorname{diag}(1 - h_k^2)\, W_{hh}^\top

For a linear RNN this is :math:`(W_{hh}^\top)^{T-t}`, whose size is governed
by the spectral radius of :math:`W_{hh}`: below 1 it vanishes, above 1 it
explodes. The tanh factors are at most 1, so they can only shrink it further.

The cure for explosion is to clip the *gradient* by its global norm before
the update (Pascanu et al., 2013), :func:`clip_grad_norm`; the weights are
left alone. The cure for vanishing is a different architecture (chapter 2).
"""

from __future__ import annotations

import torch

from .base.train import clip_grad_norm, clip_grad_norm_, global_norm
from .rnn import RNN, rnn_step

# clipping lives beside the training loop that uses it; chapter 1 teaches it from here
__all__ = [
    "clip_grad_norm",
    "clip_grad_norm_",
    "global_norm",
    "hidden_gradient_norms",
    "input_sensitivity",
    "matrix_power_norms",
    "scale_spectral_radius",
    "spectral_radius",
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
