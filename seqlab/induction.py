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

This module holds a small attention-only transformer (no MLPs, built from
chapter 5's :class:`~seqlab.transformer.MultiHeadAttention`,
:func:`~seqlab.transformer.causal_mask` and positions), its data (repeated
random tokens) and the scores that read its heads. The chapter
(:mod:`seqlab.chapters.gpt_prompting`) trains it, recording the loss on
first and repeated tokens and the heads' scores during training, and draws
what it finds. The whole experiment takes about 20 s on one CPU core, so the
book trains it when it is built.

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

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

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
# What the trained model does


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
