r"""In-context learning, seen inside: induction heads (Olsson et al., 2022).

A language model learns *in context* when its loss on a token falls because
of what came earlier in the same sequence. The cleanest case is a sequence
that repeats: the first time through, random tokens cannot be predicted (the
loss is about :math:`\log V`); the second time, a model that looks back can
copy. Olsson et al. (2022) found the circuit that does it, the *induction
head*, and saw it form in a sudden *phase change* during training, at the
same moment as the in-context loss drops. The circuit needs two layers
(Elhage et al., 2021):

- a **previous-token head** in layer 0 writes into position :math:`j` which
  token stood at :math:`j - 1`;
- an **induction head** in layer 1, at position :math:`t` with token
  :math:`A`, looks for a position whose *previous* token was :math:`A` (that
  is, the token right after an earlier :math:`A`) and copies the token it
  finds there: ``[A][B] ... [A] -> [B]``. Its attention pattern is the
  "offset diagonal": query :math:`t` attends to key :math:`t - L + 1` in a
  sequence with period :math:`L`.

This module trains a small attention-only transformer (no MLPs, built from
chapter 5's :class:`~seqlab.transformer.MultiHeadAttention`,
:func:`~seqlab.transformer.causal_mask` and positions) on repeated random
tokens, records the loss on first and repeated tokens and the heads' scores
during training, and draws what it finds. The whole experiment takes about
20 s on one CPU core, so the book trains it when it is built.

What a run of the defaults shows (every seed tried, 0-3): both heads of
layer 1 become induction heads and one head of layer 0 a previous-token head,
within a few dozen steps of each other, around step 400, where the loss on
repeated tokens falls from about log V to near 0. Two details to expect:
the previous-token head attends to the previous token only in the first
period (the keys an induction head reads), and diffusely after it; and the
loss on first-time tokens ends a little *above* log V, because where no
earlier copy exists the induction head still copies something (it attends to
the current token itself), which is never the next token.

Shapes: B batch, T sequence length, V vocabulary, h heads per layer.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .base.env import seed as seed_everything
from .transformer import POSITIONS, MultiHeadAttention, causal_mask

# ---------------------------------------------------------------------------
# The data: random tokens that repeat


@dataclass
class InductionConfig:
    """The experiment: data, model and training. The defaults train in about 20 s on one core."""

    vocab: int = 50  # V: tokens are drawn from 0..V-1
    min_period: int = 8  # shortest repeated segment L
    max_period: int = 24  # longest segment; every sequence has T = 2 * max_period tokens
    d_model: int = 32  # width of the residual stream
    n_heads: int = 2  # heads per layer
    n_layers: int = 2  # attention layers: two is the fewest an induction head needs
    positions: str = "learned"  # "learned" or "sinusoidal" (slower to form induction heads)
    steps: int = 1500  # optimiser steps; the phase change comes after about 400
    batch_size: int = 32  # sequences per step
    lr: float = 3e-3  # Adam's learning rate
    seed: int = 0  # seeds the initial weights and the data
    eval_every: int = 25  # steps between two measurements of the heads' scores
    eval_batch: int = 64  # sequences of period max_period (exactly [s, s]) they are measured on

    def __post_init__(self):
        if not 2 <= self.min_period <= self.max_period <= self.vocab:
            raise ValueError(
                "need 2 <= min_period <= max_period <= vocab (a segment has distinct tokens), "
                f"got min_period={self.min_period}, max_period={self.max_period}, "
                f"vocab={self.vocab}"
            )
        if self.positions not in ("learned", "sinusoidal"):
            raise ValueError(
                f"positions should be 'learned' or 'sinusoidal', got {self.positions!r}"
            )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) should be divisible by n_heads ({self.n_heads})"
            )

    @property
    def seq_len(self) -> int:
        """T = 2 * max_period, the model's input length: a training row has T + 1 tokens,
        the last one only a target."""
        return 2 * self.max_period


def repeated_tokens(
    batch_size: int,
    vocab: int,
    min_period: int,
    max_period: int,
    generator: torch.Generator | None = None,
    device=None,
    length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of random tokens that repeat: row b is a segment s of L_b tokens, repeated.

    L_b is drawn uniformly from min_period..max_period, and the L_b tokens of a
    segment are distinct (drawn without replacement from 0..vocab-1), so that
    the token after each earlier occurrence is unambiguous. Every row has
    T = ``length`` tokens (default 2 * max_period): ``ids[b, t] = s_b[t mod L_b]``;
    with ``min_period == max_period = L`` and the default length each row is
    exactly ``[s, s]``. The period varies so that no head can find the earlier
    copy from positions alone. The numbers are drawn on the CPU (from
    ``generator``) and then moved to ``device``, so a seed gives the same data
    everywhere.

    -> (ids (B, T) long, seen (B, T) bool: True where ids[b, t] occurred
    earlier in the row, that is from position L_b on, the repetition).
    """
    if not 1 <= min_period <= max_period <= vocab:
        raise ValueError(
            f"need 1 <= min_period <= max_period <= vocab, got {min_period}, {max_period}, {vocab}"
        )
    T = 2 * max_period if length is None else length
    period = torch.randint(min_period, max_period + 1, (batch_size, 1), generator=generator)
    segment = torch.rand(batch_size, vocab, generator=generator).argsort(dim=1)  # (B, V) shuffles
    t = torch.arange(T)[None, :]  # (1, T)
    ids = segment.gather(1, t % period)  # (B, T): period is (B, 1)
    seen = t >= period  # (B, T)
    return ids.to(device), seen.to(device)


# ---------------------------------------------------------------------------
# The model


class AttentionOnlyTransformer(nn.Module):
    """A decoder-only transformer without MLPs or layer norms (Elhage et al., 2021).

    Token embedding plus positions, then ``n_layers`` causal
    :class:`~seqlab.transformer.MultiHeadAttention` layers, each added to the
    residual stream (``x = x + attn(x)``), then a linear unembedding. With
    nothing but attention, every path from a token to a logit goes through
    heads, which is what makes the heads readable.

    forward(ids (B, T) long) -> logits (B, T, V): logits[:, t] predict token t + 1.
    """

    def __init__(self, cfg: InductionConfig):
        super().__init__()
        self.config = cfg
        self.tokens = nn.Embedding(cfg.vocab, cfg.d_model)
        self.positions = POSITIONS[cfg.positions](cfg.d_model, cfg.seq_len)
        self.layers = nn.ModuleList(
            MultiHeadAttention(cfg.d_model, cfg.n_heads) for _ in range(cfg.n_layers)
        )
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"ids should be (B, T), got {tuple(ids.shape)}")
        x = self.positions(self.tokens(ids))  # (B, T, d_model)
        mask = causal_mask(ids.shape[1], device=ids.device)  # (T, T)
        for attn in self.layers:
            x = x + attn(x, x, x, mask)
        return self.unembed(x)  # (B, T, V)

    @torch.no_grad()
    def attention(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """-> (logits (B, T, V), [attention weights (B, h, T, T) of each layer])."""
        for attn in self.layers:
            attn.keep_weights = True
        try:
            logits = self(ids)
        finally:
            for attn in self.layers:
                attn.keep_weights = False
        return logits, [attn.weights for attn in self.layers]


def token_losses(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """ids (B, T + 1) -> (B, T): entry [b, t] is -log p(ids[b, t + 1] | ids[b, :t + 1])."""
    logits = model(ids[:, :-1])  # (B, T, V)
    return F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")


# ---------------------------------------------------------------------------
# Reading the heads


def induction_targets(ids: torch.Tensor) -> torch.Tensor:
    """Where an induction head at each position should look.

    ids (B, T) -> (B, T) long: for position t, j + 1 where j < t is the most
    recent earlier position holding the same token (ids[b, j] == ids[b, t]);
    -1 where the token has not occurred before. In a row ``[s, s]`` of period
    L the target of t >= L is t - L + 1, the offset diagonal.
    """
    if ids.dim() != 2:
        raise ValueError(f"ids should be (B, T), got {tuple(ids.shape)}")
    T = ids.shape[1]
    same = ids[:, :, None] == ids[:, None, :]  # (B, T, T): [b, t, j]
    earlier = torch.ones(T, T, dtype=torch.bool, device=ids.device).tril(-1)  # j < t
    j = torch.arange(T, device=ids.device)
    last = torch.where(same & earlier, j, -1).amax(dim=-1)  # (B, T), -1 if none
    return torch.where(last >= 0, last + 1, -1)


def induction_score(weights: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean attention that each head pays to the induction target (Olsson et al., 2022).

    weights (B, h, T, T) from a causal layer, ids (B, T) -> (h,): for every
    head, the attention from position t to :func:`induction_targets`\\[t],
    averaged over the positions whose token occurred before (and over the
    batch). 1 for a perfect induction head, about 1/t for a uniform one.
    """
    square = weights.dim() == 4 and weights.shape[-1] == weights.shape[-2]
    if not square or ids.dim() != 2 or weights.shape[0] != ids.shape[0] \
            or weights.shape[-1] != ids.shape[1]:  # fmt: skip
        raise ValueError(
            f"weights should be (B, h, T, T) and ids (B, T), got {tuple(weights.shape)} and "
            f"{tuple(ids.shape)}"
        )
    target = induction_targets(ids)  # (B, T)
    has = target >= 0  # (B, T)
    if not has.any():
        raise ValueError("no token of ids occurs twice, so there is nothing to induce")
    B, h, T, _ = weights.shape
    index = target.clamp(min=0)[:, None, :, None].expand(B, h, T, 1)
    paid = weights.gather(-1, index).squeeze(-1)  # (B, h, T): weight on the target
    paid = paid.transpose(0, 1)[:, has]  # (h, positions with a target)
    return paid.mean(dim=-1)


def previous_token_score(weights: torch.Tensor) -> torch.Tensor:
    """Mean attention that each head pays to the previous position.

    weights (B, h, T, T) -> (h,): the mean over b and t >= 1 of
    weights[b, :, t, t - 1]. 1 for a perfect previous-token head.
    """
    if weights.dim() != 4 or weights.shape[-1] != weights.shape[-2] or weights.shape[-1] < 2:
        raise ValueError(f"weights should be (B, h, T, T) with T >= 2, got {tuple(weights.shape)}")
    return weights.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))  # (h,)


def head_scores(model: AttentionOnlyTransformer, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Both scores for every head of the model on ids (B, T).

    -> {"induction": (n_layers, h), "previous_token": (n_layers, h)}, on the CPU.
    """
    _, weights = model.attention(ids)
    return {
        "induction": torch.stack([induction_score(w, ids) for w in weights]).cpu(),
        "previous_token": torch.stack([previous_token_score(w) for w in weights]).cpu(),
    }


def head_name(layer: int, head: int) -> str:
    """The name the chapter gives a head: "1.0" is head 0 of layer 1 (layers from 0)."""
    return f"{layer}.{head}"


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


def train_induction(
    cfg: InductionConfig | None = None, device=None, progress: bool = False
) -> tuple[AttentionOnlyTransformer, InductionHistory]:
    """Train an :class:`AttentionOnlyTransformer` as a language model on :func:`repeated_tokens`.

    Seeds everything with ``cfg.seed`` (:func:`seqlab.seed`); the data come
    from their own generator. Each step's loss is also split into the loss on
    predictions made at a token read the first time (``seen`` False) and at a
    token read again (``seen`` True, where an induction head can copy). Every
    ``cfg.eval_every`` steps the heads are scored (:func:`head_scores`) on a
    fixed batch of ``[s, s]`` rows. device: where to train (default: the CPU).
    -> (the trained model in eval mode, its :class:`InductionHistory`).
    """
    cfg = cfg or InductionConfig()
    data_gen = seed_everything(cfg.seed)
    model = AttentionOnlyTransformer(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    eval_ids, _ = repeated_tokens(cfg.eval_batch, cfg.vocab, cfg.max_period, cfg.max_period,
                                  torch.Generator().manual_seed(cfg.seed + 1), device)  # fmt: skip
    history = InductionHistory()
    start = time.perf_counter()
    for step in tqdm(range(cfg.steps), desc="induction", disable=not progress, leave=False):
        model.train()
        ids, seen = repeated_tokens(cfg.batch_size, cfg.vocab, cfg.min_period, cfg.max_period,
                                    data_gen, device, length=cfg.seq_len + 1)  # fmt: skip
        losses = token_losses(model, ids)  # (B, T)
        loss = losses.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen = seen[:, :-1]  # (B, T): is the token we predict *from* a repeated one?
        history.loss.append(loss.item())
        history.loss_first.append(losses[~seen].mean().item())
        history.loss_second.append(losses[seen].mean().item())
        if (step + 1) % cfg.eval_every == 0 or step == 0 or step + 1 == cfg.steps:
            model.eval()
            scores = head_scores(model, eval_ids)
            history.eval_step.append(step + 1)
            history.induction.append(scores["induction"].tolist())
            history.previous_token.append(scores["previous_token"].tolist())
    history.seconds = time.perf_counter() - start
    return model.eval(), history


def _moving_average(values: Sequence[float], window: int) -> np.ndarray:
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
    first = _moving_average(history.loss_first, window)
    second = _moving_average(history.loss_second, window)
    below = np.flatnonzero(second < ratio * first)
    return int(below[0]) + 1 if len(below) else None


@torch.no_grad()
def position_losses(
    model: AttentionOnlyTransformer, period: int | None = None, batch_size: int = 256, seed: int = 1
) -> torch.Tensor:
    """The trained model's loss at each position of rows ``[s, s]``.

    period: L (default: the config's max_period, so that the rows fill the
    model's T = 2L positions). -> (2L,) on the CPU: entry t is the mean over
    ``batch_size`` rows of the loss of predicting token t + 1 from tokens
    0..t. Entries 0..L-2 predict new tokens (about log V), entry L-1 predicts
    the start of the repetition (which nothing announces), entries L..2L-1
    predict repeated tokens.
    """
    cfg = model.config
    period = period or cfg.max_period
    if not 1 <= period <= cfg.max_period:
        raise ValueError(f"period should be in 1..{cfg.max_period}, got {period}")
    device = next(model.parameters()).device
    ids, _ = repeated_tokens(batch_size, cfg.vocab, period, period,
                             torch.Generator().manual_seed(seed), device,
                             length=2 * period + 1)  # fmt: skip
    return token_losses(model, ids).mean(dim=0).cpu()


def example(
    model: AttentionOnlyTransformer, seed: int = 2
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One row ``[s, s]`` of period max_period and the model's attention on it.

    -> (ids (T,) on the CPU, [weights (h, T, T) of each layer, on the CPU]).
    """
    cfg = model.config
    device = next(model.parameters()).device
    ids, _ = repeated_tokens(1, cfg.vocab, cfg.max_period, cfg.max_period,
                             torch.Generator().manual_seed(seed), device)  # fmt: skip
    _, weights = model.attention(ids)
    return ids[0].cpu(), [w[0].cpu() for w in weights]


# ---------------------------------------------------------------------------
# Figures


def plot_training(history: InductionHistory, ax=None, window: int = 10, vocab: int | None = None,
                  title: str | None = "training loss"):  # fmt: skip
    """Loss per step on first-time tokens, on repeated tokens and overall.

    Each curve is a moving average over ``window`` steps; a dashed vertical
    line marks :func:`phase_change_step`; vocab: when given, a dotted line at
    log V, the loss of a uniform guess. -> the Axes.
    """
    from .base.plots import INK, MUTED, PALETTE, new_axes, course_style

    with course_style():
        ax = new_axes(ax)
        steps = np.arange(1, len(history.loss) + 1)
        curves = (("first time", history.loss_first, PALETTE[0]),
                  ("repeated", history.loss_second, PALETTE[1]),
                  ("all tokens", history.loss, MUTED))  # fmt: skip
        for label, values, color in curves:
            ax.plot(steps, _moving_average(values, window), color=color, label=label, linewidth=1.4)
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
    from .base.plots import INK, PALETTE, new_axes, course_style

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
    """The per-position loss of :func:`position_losses`, (2L,), as bars.

    Bars before the repetition in one colour, after it in another; a dotted
    line at log V when ``vocab`` is given. -> the Axes.
    """
    from .base.plots import MUTED, PALETTE, new_axes, course_style

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
    (:func:`induction_targets`), the offset diagonal an induction head follows.
    -> the Axes.
    """
    from .attention import plot_attention
    from .base.plots import new_axes

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


# ---------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    """Train once and print what the chapter measures: ``python -m seqlab.induction``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=InductionConfig.steps)
    parser.add_argument("--seed", type=int, default=InductionConfig.seed)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = InductionConfig(steps=args.steps, seed=args.seed)
    model, history = train_induction(cfg, progress=True)
    print(f"config: {asdict(cfg)}")
    print(f"trained {cfg.steps} steps in {history.seconds:.1f} s ({args.threads} thread(s))")
    tail = max(1, cfg.steps // 10)
    first, second = np.mean(history.loss_first[-tail:]), np.mean(history.loss_second[-tail:])
    print(f"loss over the last {tail} steps: first time {first:.3f}, repeated {second:.3f} "
          f"(log V = {math.log(cfg.vocab):.3f})")  # fmt: skip
    print(f"phase change at step {phase_change_step(history)}")
    losses = position_losses(model)
    L = cfg.max_period
    print(f"per-position loss: new tokens {losses[: L - 1].mean():.3f}, "
          f"repeated tokens {losses[L:].mean():.3f}")  # fmt: skip
    scores = head_scores(model, repeated_tokens(256, cfg.vocab, L, L,
                                                torch.Generator().manual_seed(1))[0])  # fmt: skip
    for name in ("induction", "previous_token"):
        for layer, row in enumerate(scores[name].tolist()):
            heads = ", ".join(f"{head_name(layer, i)}: {s:.2f}" for i, s in enumerate(row))
            print(f"{name} score, layer {layer}: {heads}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
