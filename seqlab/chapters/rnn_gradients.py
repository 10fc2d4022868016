"""Chapter 1's experiments: vanishing and exploding gradients in a vanilla RNN.

Each function runs one experiment of the book chapter and returns numbers,
so that the page, the exercise and the tests all compute the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..base.env import seed
from ..base.train import History, train
from ..gradients import hidden_gradient_norms, input_sensitivity, scale_spectral_radius
from ..rnn import RNN


def gradient_norm_curves(
    rhos: list[float],
    hidden_size: int = 32,
    steps: int = 60,
    nonlinearity: str = "tanh",
    orthogonal_at_one: bool = True,
    random_seed: int = 0,
    input_scale: float = 1.0,
) -> dict[float, torch.Tensor]:
    """Gradient norm against distance for recurrent matrices of several spectral radii.

    For each rho, W_hh is one fixed random Gaussian matrix rescaled to spectral
    radius rho (a random orthogonal matrix for rho == 1 when
    ``orthogonal_at_one``: all its eigenvalues have modulus 1, so a linear RNN
    carries the gradient unchanged). ``input_scale`` is the standard deviation
    of the random inputs: small inputs keep a tanh RNN out of saturation, so
    its gradients can explode; large ones saturate it and make them vanish.
    Returns {rho: (steps,)} from :func:`seqlab.gradients.hidden_gradient_norms`.
    """
    g = seed(random_seed)
    base = torch.randn(hidden_size, hidden_size, generator=g, dtype=torch.float64)
    gaussian = torch.randn(hidden_size, hidden_size, generator=g, dtype=torch.float64)
    ortho, _ = torch.linalg.qr(gaussian)
    curves = {}
    for rho in rhos:
        W = ortho if (orthogonal_at_one and rho == 1.0) else scale_spectral_radius(base, rho)
        curves[rho] = hidden_gradient_norms(
            W,
            steps,
            nonlinearity,
            input_scale=input_scale,
            generator=torch.Generator().manual_seed(random_seed),
        )
    return curves


@dataclass
class ClippingSetup:
    """The regression task and model of the clipping experiment."""

    seq_len: int = 40  # T: long enough for W_hh^T to explode
    hidden_size: int = 32  # H
    rho: float = 1.5  # initial spectral radius of W_hh: past the edge, so W_hh^T explodes
    lr: float = 0.1  # plain SGD, so that the step is exactly lr * gradient
    steps: int = 400
    batch_size: int = 64
    target_scale: float = 3.0  # target = target_scale * mean of the inputs


def _mean_task_batches(cfg: ClippingSetup, g: torch.Generator):
    while True:
        x = torch.rand(cfg.batch_size, cfg.seq_len, 1, generator=g) * 2 - 1  # (B, T, 1)
        yield x, cfg.target_scale * x.mean(dim=1)  # (B, 1)


def baseline_mse(cfg: ClippingSetup | None = None) -> float:
    """The loss of always predicting 0 (the target's variance), computed exactly.

    A mean of T uniforms on [-1, 1] has variance 1 / (3T).
    """
    cfg = cfg or ClippingSetup()
    return cfg.target_scale**2 / (3 * cfg.seq_len)


def clipping_experiment(
    mode: str,
    threshold: float = 1.0,
    cfg: ClippingSetup | None = None,
    random_seed: int = 0,
) -> tuple[History, torch.nn.ModuleDict]:
    """Train an RNN to output 3 x the mean of its inputs, starting at spectral radius rho.

    mode: "none" (plain SGD), "gradient" (clip the gradient's global norm to
    ``threshold`` before each step: the right fix) or "weights" (clamp every
    weight into [-threshold, threshold] after each step: the common
    misstatement). Returns (history, model).
    """
    if mode not in ("none", "gradient", "weights"):
        raise ValueError(f"mode should be 'none', 'gradient' or 'weights', got {mode!r}")
    cfg = cfg or ClippingSetup()
    g = seed(random_seed)
    rnn = RNN(1, cfg.hidden_size)
    with torch.no_grad():
        W = torch.randn(cfg.hidden_size, cfg.hidden_size, generator=g)
        rnn.W_hh[0].copy_(scale_spectral_radius(W, cfg.rho))
    model = torch.nn.ModuleDict({"rnn": rnn, "head": torch.nn.Linear(cfg.hidden_size, 1)})

    def loss_fn(m, batch):
        x, y = batch
        return ((m["head"](m["rnn"](x)[:, -1]) - y) ** 2).mean()

    params = list(model.parameters())

    def clamp_weights(_step, _model):
        with torch.no_grad():
            for p in params:
                p.clamp_(-threshold, threshold)

    history = train(
        model,
        _mean_task_batches(cfg, g),
        loss_fn,
        torch.optim.SGD(params, lr=cfg.lr),
        cfg.steps,
        clip_norm=threshold if mode == "gradient" else None,
        after_step=clamp_weights if mode == "weights" else None,
    )
    return history, model


def sensitivity_experiment(
    seq_len: int = 50,
    input_size: int = 8,
    hidden_size: int = 32,
    batch_size: int = 64,
    random_seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Per-position input sensitivity of a unidirectional and a bidirectional RNN.

    Both RNNs have torch's default initialisation and read the same random
    sequences. Returns {"unidirectional": (T,), "bidirectional": (T,)}, each
    normalised to sum to 1: the share of the summary's sensitivity that each
    input position gets.
    """
    g = seed(random_seed)
    xs = torch.randn(batch_size, seq_len, input_size, generator=g)
    out = {}
    for name, bidirectional in (("unidirectional", False), ("bidirectional", True)):
        rnn = RNN(input_size, hidden_size, bidirectional=bidirectional)
        s = input_sensitivity(rnn, xs, generator=g)
        out[name] = s / s.sum()
    return out
