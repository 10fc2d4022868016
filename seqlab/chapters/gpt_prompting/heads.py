"""Chapter 6's in-context learning, seen inside: training the attention-only transformer
of :mod:`seqlab.induction` on repeated random tokens, and the figures of its phase change.

:func:`train_induction` records, at every step, the loss on predictions made
from a first-time token and from a repeated one, and every ``eval_every``
steps the heads' induction and previous-token scores (Olsson et al., 2022).
:func:`phase_change_step` finds where the repeated tokens' loss falls; the
``plot_*`` functions draw the run and one head's attention. Shapes: B batch,
T sequence length, V vocabulary, h heads per layer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ...base.env import seed as seed_everything
from ...base.plots import INK, MUTED, PALETTE, course_style, new_axes, plot_attention
from ...base.train import train
from ...induction import (
    AttentionOnlyTransformer,
    InductionConfig,
    head_name,
    head_scores,
    induction_targets,
    repeated_tokens,
    token_losses,
)

# ---------------------------------------------------------------------------
# Training


@dataclass
class InductionHistory:
    """What a training run recorded; the plots below draw it."""

    loss: list[float] = field(default_factory=list)  # mean loss over all predicted tokens, per step
    loss_first: list[float] = field(default_factory=list)  # predicting from a first-time token
    loss_second: list[float] = field(default_factory=list)  # predicting from a repeated token
    eval_step: list[int] = field(default_factory=list)  # steps after which the heads were scored
    induction: list[list[list[float]]] = field(default_factory=list)  # (n_layers, h) per eval
    previous_token: list[list[list[float]]] = field(default_factory=list)  # (n_layers, h) per eval
    seconds: float = 0.0  # wall-clock time of the training loop, scoring included


def induction_batches(cfg: InductionConfig, generator: torch.Generator):
    """Endless training batches (ids (B, T + 1), seen (B, T + 1)) of :func:`repeated_tokens`."""
    while True:
        yield repeated_tokens(cfg.batch_size, cfg.vocab, cfg.min_period, cfg.max_period,
                              generator, length=cfg.seq_len + 1)  # fmt: skip


def train_induction(
    cfg: InductionConfig | None = None, device=None, progress: bool = False
) -> tuple[AttentionOnlyTransformer, InductionHistory]:
    """Train an :class:`AttentionOnlyTransformer` as a language model on :func:`repeated_tokens`.

    Seeds everything with ``cfg.seed`` (:func:`seqlab.seed`); the data come
    from their own generator. Each step's loss is also split into the loss on
    predictions made at a token read the first time (``seen`` False) and at a
    token read again (``seen`` True, where an induction head can copy). After
    the first step, every ``cfg.eval_every`` steps and the last one the heads
    are scored (:func:`head_scores`) on a fixed batch of ``[s, s]`` rows.
    device: where to train (default: the CPU).
    -> (the trained model in eval mode, its :class:`InductionHistory`).
    """
    cfg = cfg or InductionConfig()
    data_gen = seed_everything(cfg.seed)
    model = AttentionOnlyTransformer(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    eval_ids, _ = repeated_tokens(cfg.eval_batch, cfg.vocab, cfg.max_period, cfg.max_period,
                                  torch.Generator().manual_seed(cfg.seed + 1), device)  # fmt: skip
    history = InductionHistory()

    def loss_fn(m, batch):
        ids, seen = batch
        losses = token_losses(m, ids)  # (B, T)
        seen = seen[:, :-1]  # (B, T): is the token we predict *from* a repeated one?
        history.loss_first.append(losses[~seen].mean().item())
        history.loss_second.append(losses[seen].mean().item())
        return losses.mean()

    def after_step(step: int, m) -> None:
        if step % cfg.eval_every == 0 or step == 1 or step == cfg.steps:
            m.eval()
            scores = head_scores(m, eval_ids)
            m.train()
            history.eval_step.append(step)
            history.induction.append(scores["induction"].tolist())
            history.previous_token.append(scores["previous_token"].tolist())

    start = time.perf_counter()
    run = train(model, induction_batches(cfg, data_gen), loss_fn, optimizer, cfg.steps,
                progress=progress, desc="induction", after_step=after_step)  # fmt: skip
    history.loss = run.loss
    history.seconds = time.perf_counter() - start
    return model.eval(), history


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """The mean of each value and the ``window - 1`` before it (fewer at the start)."""
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) < window:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    out = np.empty_like(v)
    out[window - 1 :] = (c[window:] - c[:-window]) / window
    out[: window - 1] = c[1:window] / np.arange(1, window)  # shorter windows at the start
    return out


def phase_change_step(
    history: InductionHistory, window: int = 20, ratio: float = 0.5
) -> int | None:
    """The step at which the repeated tokens' loss falls below ``ratio`` times the first ones'.

    Both losses are averaged over the last ``window`` steps first. -> the
    step (counting from 1), or None if it never happens.
    """
    first = moving_average(history.loss_first, window)
    second = moving_average(history.loss_second, window)
    below = np.flatnonzero(second < ratio * first)
    return int(below[0]) + 1 if len(below) else None


def head_score_rows(scores: dict[str, torch.Tensor]) -> list[tuple[str, str, str]]:
    """:func:`head_scores` as table rows: (head name, induction score, previous-token score)."""
    n_layers, h = scores["induction"].shape
    return [(head_name(layer, i), f"{scores['induction'][layer, i]:.2f}",
             f"{scores['previous_token'][layer, i]:.2f}")
            for layer in range(n_layers) for i in range(h)]  # fmt: skip


# ---------------------------------------------------------------------------
# Figures


def plot_training(history: InductionHistory, ax=None, window: int = 10, vocab: int | None = None,
                  title: str | None = "training loss"):  # fmt: skip
    """Loss per step on first-time tokens, on repeated tokens and overall.

    Each curve is a moving average over ``window`` steps; a dashed vertical
    line marks :func:`phase_change_step`; vocab: when given, a dotted line at
    log V, the loss of a uniform guess. -> the Axes.
    """
    with course_style():
        ax = new_axes(ax)
        steps = np.arange(1, len(history.loss) + 1)
        curves = (("first time", history.loss_first, PALETTE[0]),
                  ("repeated", history.loss_second, PALETTE[1]),
                  ("all tokens", history.loss, MUTED))  # fmt: skip
        for label, values, color in curves:
            ax.plot(steps, moving_average(values, window), color=color, label=label, linewidth=1.4)
        if vocab is not None:
            ax.axhline(math.log(vocab), color=MUTED, linestyle=":", linewidth=1.2,
                       label=f"log V = {math.log(vocab):.2f}")  # fmt: skip
        step = phase_change_step(history)
        if step is not None:
            ax.axvline(step, color=INK, linestyle="--", linewidth=1.0,
                       label=f"phase change (step {step})")  # fmt: skip
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats)")
        ax.set_ylim(bottom=0)
        if title:
            ax.set_title(title)
        ax.legend(loc="best")
    return ax


def plot_head_scores_during_training(history: InductionHistory, ax=None,
                                     title: str | None = "the heads during training"):  # fmt: skip
    """Each head's score over training: the induction score of the last layer's heads
    (solid) and the previous-token score of the first layer's (dashed). -> the Axes.
    """
    induction = np.asarray(history.induction)  # (evals, n_layers, h)
    previous = np.asarray(history.previous_token)
    with course_style():
        ax = new_axes(ax)
        n_layers, h = induction.shape[1:]
        for i in range(h):
            ax.plot(history.eval_step, induction[:, -1, i], color=PALETTE[i % len(PALETTE)],
                    label=f"{head_name(n_layers - 1, i)} induction")  # fmt: skip
        for i in range(h):
            ax.plot(history.eval_step, previous[:, 0, i], linestyle="--",
                    color=PALETTE[(h + i) % len(PALETTE)],
                    label=f"{head_name(0, i)} previous token")  # fmt: skip
        step = phase_change_step(history)
        if step is not None:
            ax.axvline(step, color=INK, linestyle="--", linewidth=1.0)
        ax.set_xlabel("step")
        ax.set_ylabel("score")
        ax.set_ylim(0, 1)
        if title:
            ax.set_title(title)
        ax.legend(loc="best")
    return ax


def plot_position_losses(losses: torch.Tensor, vocab: int | None = None, ax=None,
                         title: str | None = "loss at each position"):  # fmt: skip
    """The per-position loss of :func:`seqlab.induction.position_losses`, (2L,), as bars.

    Bars before the repetition in one colour, after it in another; a dotted
    line at log V when ``vocab`` is given. -> the Axes.
    """
    y = losses.detach().double().cpu().numpy()
    L = len(y) // 2
    t = np.arange(len(y))
    with course_style():
        ax = new_axes(ax)
        ax.bar(t[:L], y[:L], color=PALETTE[0], width=0.8, label="first time")
        ax.bar(t[L:], y[L:], color=PALETTE[1], width=0.8, label="repeated")
        if vocab is not None:
            ax.axhline(math.log(vocab), color=MUTED, linestyle=":", linewidth=1.2,
                       label=f"log V = {math.log(vocab):.2f}")  # fmt: skip
        ax.set_xlabel("position t (predicting token t + 1)")
        ax.set_ylabel("loss (nats)")
        if title:
            ax.set_title(title)
        ax.legend(loc="best")
    return ax


def plot_head_attention(weights: torch.Tensor, ids: torch.Tensor, ax=None, title: str | None = None,
                        targets: bool = True, colorbar: bool = True):  # fmt: skip
    """One head's attention on one sequence, as a heat map.

    weights: (T, T), row t the query position; ids: (T,) the tokens that
    label rows and columns. targets: outline each query's induction target
    (:func:`seqlab.induction.induction_targets`), the offset diagonal an
    induction head follows. -> the Axes.
    """
    if weights.dim() != 2 or weights.shape != (len(ids), len(ids)):
        raise ValueError(
            f"weights should be (T, T) for ids of length T, got {tuple(weights.shape)} and "
            f"{len(ids)} ids"
        )
    tokens = [str(int(i)) for i in ids]
    pairs = None
    if targets:
        target = induction_targets(ids[None])[0].tolist()
        pairs = [(t, s) for t, s in enumerate(target) if s >= 0]
    ax = new_axes(ax, figsize=(6.4, 5.6))  # plot_attention's own size grows with T
    ax = plot_attention(weights, tokens, tokens, pairs, ax=ax, title=title, colorbar=colorbar)
    ax.tick_params(labelsize=6 if len(ids) > 24 else 8)
    ax.set_xlabel("key: token attended to")
    ax.set_ylabel("query: current token")
    return ax
