r"""Luong et al.'s (2015) attention decoder: the general score and input feeding.

Chapter 4's models (:mod:`seqlab.attention`) put either score inside Bahdanau
et al.'s (2015) decoder: the query is the *previous* decoder state, and the
context enters the recurrent step. Luong et al. (2015, sec. 3) attend after
the recurrent step instead. At step t, with the encoder states
:math:`\bar h_s` (B, S, H):

.. math::

    h_t &= \mathrm{RNN}([e(y_{t-1}); \tilde h_{t-1}],\ h_{t-1})
        \quad\text{(input feeding, sec. 3.3; without it the input is } e(y_{t-1})) \\
    \operatorname{score}(h_t, \bar h_s) &= h_t^\top W_a \bar h_s
        \quad\text{(the "general" score, sec. 3.1; "dot": } W_a = I) \\
    \alpha_{ts} &= \operatorname{softmax}_s \operatorname{score}(h_t, \bar h_s), \qquad
    c_t = \textstyle\sum_s \alpha_{ts} \bar h_s \\
    \tilde h_t &= \tanh(W_c [c_t; h_t]) \quad\text{(the attentional vector, eq. 5)} \\
    p(y_t \mid y_{<t}, x) &= \operatorname{softmax}(W_s \tilde h_t + b)
        \quad\text{(eq. 6, with a bias)}

and :math:`\tilde h_0 = 0`. In row-vector code the general score is the dot
score of the projected query :math:`h_t W_a`, so :func:`general_attention`
calls :func:`seqlab.attention.dot_product_attention` on it.

Luong et al. used a stacked LSTM read left to right; here the encoder is
chapter 4's :class:`seqlab.attention.BidirectionalEncoder`, so that the
chapter's models differ only in their decoder. The third score of Luong et
al., "concat", is a form of Bahdanau et al.'s additive score
(:func:`seqlab.attention.additive_attention`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import (
    BidirectionalEncoder,
    DotProductAttention,
    dot_product_attention,
    search_step,
)
from .seq2seq import CELLS, Seq2SeqConfig, cell_step, make_rnn

SCORES = ("general", "dot")


def general_scores(query: torch.Tensor, keys: torch.Tensor, W_a: torch.Tensor) -> torch.Tensor:
    """The general (bilinear) score of Luong et al. (2015, eq. 8).

    query: (B, Hq), keys: (B, S, Hk), W_a: (Hq, Hk)
    -> scores (B, S): scores[b, s] = query[b] @ W_a @ keys[b, s].
    """
    projected = query @ W_a  # (B, Hk): the query, moved into the keys' space
    return (keys @ projected.unsqueeze(-1)).squeeze(-1)  # (B, S, Hk) @ (B, Hk, 1) -> (B, S)


def general_attention(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    W_a: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with the general score h^T W_a k_s (Luong et al., 2015, sec. 3.1).

    query: (B, Hq), keys: (B, S, Hk), values: (B, S, Dv), W_a: (Hq, Hk), mask: bool
    (B, S), True = real. The dot score of the projected query ``query @ W_a``, so
    W_a = I gives :func:`seqlab.attention.dot_product_attention` exactly.
    -> (context (B, Dv), weights (B, S)).
    """
    if W_a.dim() != 2 or W_a.shape[0] != query.shape[-1]:
        raise ValueError(
            f"W_a should be (Hq, Hk) = ({query.shape[-1]}, Hk), got shape {tuple(W_a.shape)}"
        )
    return dot_product_attention(query @ W_a, keys, values, mask)


class GeneralAttention(nn.Module):
    """The general score of Luong et al. (2015) as a module: W_a (Hq, Hk), initialised
    uniformly in +-1/sqrt(Hq) like torch.nn.Linear's weights.

    forward(query (B, Hq), keys (B, S, Hk), values (B, S, Dv), mask (B, S) or None)
    -> (context (B, Dv), weights (B, S)); see :func:`general_attention`.
    """

    def __init__(self, query_size: int, key_size: int):
        super().__init__()
        self.W_a = nn.Parameter(torch.empty(query_size, key_size))
        nn.init.uniform_(self.W_a, -(query_size**-0.5), query_size**-0.5)

    def forward(self, query, keys, values, mask=None):
        return general_attention(query, keys, values, self.W_a, mask)


@dataclass
class LuongConfig:
    """Sizes of a Luong attention encoder-decoder; the first five as in chapter 3's
    Seq2SeqConfig."""

    src_vocab: int  # source vocabulary size
    tgt_vocab: int  # target vocabulary size, V
    emb: int = 32  # token embedding size
    hidden: int = 64  # H, the same for encoder and decoder
    cell: str = "gru"  # "gru" or "lstm"
    score: str = "general"  # "general" (h_t^T W_a h_s) or "dot" (W_a = I)
    input_feeding: bool = True  # feed the attentional vector to the next step's input

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell should be one of {CELLS}, got {self.cell!r}")
        if self.score not in SCORES:
            raise ValueError(f"score should be one of {SCORES}, got {self.score!r}")

    def seq2seq(self) -> Seq2SeqConfig:
        """Chapter 3's config of the same sizes (its encoder is shared)."""
        return Seq2SeqConfig(self.src_vocab, self.tgt_vocab, self.emb, self.hidden, self.cell)


class LuongDecoder(nn.Module):
    r"""A decoder that attends after its recurrent step (Luong et al., 2015, sec. 3).

    The state it carries is the recurrent state, h (N, H) for a GRU or [h, c]
    (N, 2H) for an LSTM, followed with input feeding by the attentional vector
    :math:`\tilde h_{t-1}` (N, H): one packed tensor, so that chapter 3's beam
    search can reorder it by rows.

    step(tokens (N,), state, keys (N, S, H), mask (N, S))
    -> (log_probs (N, V), new state, weights (N, S)); see the module's equations.
    """

    def __init__(self, cfg: LuongConfig):
        super().__init__()
        self.hidden = cfg.hidden
        self.input_feeding = cfg.input_feeding
        self.embed = nn.Embedding(cfg.tgt_vocab, cfg.emb)
        feed = cfg.hidden if cfg.input_feeding else 0
        self.rnn = make_rnn(cfg.cell, cfg.emb + feed, cfg.hidden)
        if cfg.score == "general":
            self.attention = GeneralAttention(cfg.hidden, cfg.hidden)
        else:
            self.attention = DotProductAttention()
        self.combine = nn.Linear(2 * cfg.hidden, cfg.hidden, bias=False)  # W_c of eq. 5
        self.out = nn.Linear(cfg.hidden, cfg.tgt_vocab)  # W_s of eq. 6

    def initial_state(self, final: torch.Tensor) -> torch.Tensor:
        """The encoder's final state (N, H or 2H) -> the decoder's first state, with
        input feeding followed by the attentional vector of step 0, zeros (N, H)."""
        if not self.input_feeding:
            return final
        return torch.cat([final, final.new_zeros(final.shape[0], self.hidden)], dim=-1)

    def step(self, tokens, state, keys, mask):
        x = self.embed(tokens)  # (N, E)
        if self.input_feeding:
            state, fed = state[:, : -self.hidden], state[:, -self.hidden :]
            x = torch.cat([x, fed], dim=-1)  # (N, E + H): the last attentional vector
        state = cell_step(self.rnn, x, state)  # h_t first: attention comes after the step
        h = state[:, : self.hidden]  # (N, H)
        context, weights = self.attention(h, keys, keys, mask)  # scores the current h_t
        attentional = torch.tanh(self.combine(torch.cat([context, h], dim=-1)))  # (N, H)
        log_probs = torch.log_softmax(self.out(attentional), dim=-1)  # (N, V)
        if self.input_feeding:
            state = torch.cat([state, attentional], dim=-1)
        return log_probs, state, weights

    def forward(self, tgt_in, state, keys, mask):
        """Teacher forcing: tgt_in (B, T), state from :meth:`initial_state`
        -> (log_probs (B, T, V), weights (B, T, S))."""
        out, weights = [], []
        for t in range(tgt_in.shape[1]):
            log_probs, state, w = self.step(tgt_in[:, t], state, keys, mask)
            out.append(log_probs)
            weights.append(w)
        return torch.stack(out, dim=1), torch.stack(weights, dim=1)


class LuongSeq2Seq(nn.Module):
    """Chapter 4's bidirectional encoder with a :class:`LuongDecoder`.

    The interface of :class:`seqlab.attention.AttentionSeq2Seq` (and so of
    chapter 3's :class:`seqlab.seq2seq.Seq2Seq`): chapter 3's training, greedy
    and beam search and evaluation, and chapter 4's alignment scores, run on it
    unchanged. forward(src (B, S), src_mask (B, S), tgt_in (B, T)) ->
    log-probabilities (B, T, V); :meth:`forward_with_weights` also returns the
    attention weights (B, T, S); decoder_start(src, src_mask) -> (step, state).
    """

    def __init__(self, cfg: LuongConfig):
        super().__init__()
        self.config = cfg
        self.encoder = BidirectionalEncoder(cfg.seq2seq())
        self.decoder = LuongDecoder(cfg)

    def forward_with_weights(self, src, src_mask, tgt_in):
        """-> (log_probs (B, T, V), weights (B, T, S)), with teacher forcing."""
        keys, final = self.encoder.run(src, src_mask)  # (B, S, H), (B, H or 2H)
        return self.decoder(tgt_in, self.decoder.initial_state(final), keys, src_mask)

    def forward(self, src, src_mask, tgt_in):
        return self.forward_with_weights(src, src_mask, tgt_in)[0]

    @torch.no_grad()
    def decoder_start(self, src: torch.Tensor, src_mask: torch.Tensor):
        """Encode the source and return the decoder as ``(step, state)``, as
        :meth:`seqlab.attention.AttentionSeq2Seq.decoder_start` does (rows of N =
        B * K hypotheses sentence-major; weights of every call in ``step.weights``)."""
        keys, final = self.encoder.run(src, src_mask)  # (B, S, H), (B, ...)
        return search_step(self.decoder, keys, src_mask), self.decoder.initial_state(final)
