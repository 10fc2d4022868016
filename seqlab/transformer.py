r"""The transformer (Vaswani et al., 2017), built from its parts.

Attention without recurrence: every position of a sequence attends to every
other position at once, so a layer costs O(1) sequential steps instead of an
RNN's O(T). The parts, bottom up:

- :func:`scaled_dot_product_attention`:
  :math:`\operatorname{softmax}(Q K^\top / \sqrt{d})\, V`, with a bool mask
  (True = may attend), and :func:`causal_mask` for decoders;
- :func:`sinusoidal_positions` and :class:`LearnedPositions`: what tells the
  layers where each token sits (without them a layer is permutation-equivariant);
  :func:`apply_rope`, rotary positions (Su et al., 2021), rotates queries and
  keys instead, so that their dot product sees only the offset between them;
- :class:`MultiHeadAttention`: ``n_heads`` attentions of size ``d_model / n_heads``
  side by side, equal to ``torch.nn.MultiheadAttention(batch_first=True)``;
- :class:`FeedForward`: the position-wise two-layer network;
- :class:`EncoderLayer` and :class:`DecoderLayer`: attention and feed-forward
  sub-layers, each wrapped in a residual (skip) connection and a layer norm,
  after the sum (post-norm, as in the paper) or before the sub-layer
  (pre-norm, ``norm_first=True``; Xiong et al., 2020); equal to
  ``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer``;
- :class:`Transformer`: the encoder-decoder for chapter 3's tasks. It exposes
  chapter 3's interface (``forward``, ``decoder_start``), so chapter 3's
  training loop, greedy and beam search, and chapter 4's alignment scores run
  on it unchanged;
- :class:`Encoder` with a masked-token head (:class:`MaskedLM`) and a
  sentence classifier (:class:`Classifier`), for the chapter's pretraining
  and fine-tuning experiment (Devlin et al., 2019).

Shapes: B batch, S source length, T target length, ``d_model`` the width,
``n_heads`` the heads, V the vocabulary. Masks are bool and True where
attention is allowed, the opposite of ``torch.nn``'s ``key_padding_mask``.

The chapter's experiments, its trained models and its explorer are in
:mod:`seqlab.chapters.transformers`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------
# Scaled dot-product attention, masks and positions


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError(
            f"q, k and v should be (..., T, d), got {tuple(q.shape)}, {tuple(k.shape)}, "
            f"{tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k should have the same last size d, got {q.shape[-1]} and {k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v should have the same length Tk, got {k.shape[-2]} and {v.shape[-2]}"
        )


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Attention of every query over every key (Vaswani et al., 2017, eq. 1).

    .. math::

        \operatorname{Attention}(Q, K, V)
        = \operatorname{softmax}\left(\frac{Q K^\top}{\sqrt{d}}\right) V

    q: (..., Tq, d), k: (..., Tk, d), v: (..., Tk, dv); mask: bool,
    broadcastable to (..., Tq, Tk), True = may attend (a query that may attend
    to nothing gets NaN weights, as in PyTorch).
    -> (out (..., Tq, dv), weights (..., Tq, Tk)).
    """
    _check_qkv(q, k, v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask should be a bool tensor (True = may attend), got {mask.dtype}")
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def causal_mask(T: int, device=None) -> torch.Tensor:
    """-> bool (T, T), True where key position <= query position: position t sees 0..t."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def sinusoidal_positions(T: int, d: int, device=None, dtype=torch.float32) -> torch.Tensor:
    r"""The fixed positional encodings of Vaswani et al. (2017, section 3.5). d even.

    .. math:: P_{t, 2i} = \sin(t / 10000^{2i/d}), \qquad P_{t, 2i+1} = \cos(t / 10000^{2i/d})

    -> (T, d).
    """
    if d % 2:
        raise ValueError(f"d should be even, got {d}")
    t = torch.arange(T, dtype=torch.float64, device=device)[:, None]  # (T, 1)
    freq = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64, device=device) / d)  # (d/2,)
    P = torch.empty(T, d, dtype=torch.float64, device=device)
    P[:, 0::2] = torch.sin(t * freq)
    P[:, 1::2] = torch.cos(t * freq)
    return P.to(dtype)


class SinusoidalPositions(nn.Module):
    """x (B, T, d_model) -> x + P[:T]: fixed positions, nothing to learn."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        self.register_buffer("P", sinusoidal_positions(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.P.shape[0]:
            raise ValueError(f"sequence of length {x.shape[1]} > max_len {self.P.shape[0]}")
        return x + self.P[: x.shape[1]].to(x.dtype)


class LearnedPositions(nn.Module):
    """x (B, T, d_model) -> x + E[:T]: one learned vector per position (as in GPT-2)."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.embedding.num_embeddings:
            raise ValueError(
                f"sequence of length {x.shape[1]} > max_len {self.embedding.num_embeddings}"
            )
        return x + self.embedding.weight[: x.shape[1]]


class NoPositions(nn.Module):
    """x -> x: a transformer that cannot tell positions apart (see the chapter)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


POSITIONS = {"sinusoidal": SinusoidalPositions, "learned": LearnedPositions, "none": None}


def apply_rope(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    r"""Rotary position embedding (Su et al., 2021, RoFormer), "rotate half" layout.

    For i < d/2 the pair (x[..., t, i], x[..., t, i + d/2]) is rotated by the
    angle :math:`\theta_{t,i} = t \cdot \text{base}^{-2i/d}`, for positions
    t = 0..T-1:

    .. math::

        \begin{pmatrix} y_{t,i} \\ y_{t,i+d/2} \end{pmatrix}
        = \begin{pmatrix} \cos\theta_{t,i} & -\sin\theta_{t,i} \\
                           \sin\theta_{t,i} & \cos\theta_{t,i} \end{pmatrix}
          \begin{pmatrix} x_{t,i} \\ x_{t,i+d/2} \end{pmatrix}

    Applied to queries and keys (not to values), it makes
    :math:`q_m \cdot k_n` depend on the positions only through m - n, since
    :math:`R_m^\top R_n = R_{n-m}`. The paper pairs neighbouring features
    (2i, 2i + 1); GPT-NeoX and LLaMA pair feature i with i + d/2, the same
    rotation of permuted features, computed on two contiguous halves. Equal to
    ``transformers``' LLaMA ``apply_rotary_pos_emb`` with the matching cos
    and sin. The angles are computed in float64 whatever x's dtype.

    x (..., T, d), d even -> (..., T, d), x's dtype and device; x is not modified.
    """
    if x.dim() < 2:
        raise ValueError(f"x should be (..., T, d), got shape {tuple(x.shape)}")
    T, d = x.shape[-2:]
    if d % 2:
        raise ValueError(f"d should be even (features rotate in pairs), got {d}")
    half = d // 2
    t = torch.arange(T, dtype=torch.float64, device=x.device)[:, None]  # (T, 1)
    i = torch.arange(half, dtype=torch.float64, device=x.device)  # (d/2,)
    angle = t * float(base) ** (-2 * i / d)  # (T, d/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]  # the two halves of every pair
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


# ---------------------------------------------------------------------------
# Multi-head attention


class MultiHeadAttention(nn.Module):
    r"""``n_heads`` scaled dot-product attentions side by side (Vaswani et al., 2017, 3.2.2).

    .. math::

        \operatorname{head}_i = \operatorname{Attention}(Q W^Q_i, K W^K_i, V W^V_i), \qquad
        \operatorname{MultiHead}(Q, K, V)
        = [\operatorname{head}_1; \dots; \operatorname{head}_h] W^O

    The h projections of size d_model / h are computed by one ``nn.Linear``
    each for q, k and v (``q_proj``, ``k_proj``, ``v_proj``) and split into
    heads; ``out_proj`` mixes the concatenated heads.

    forward(query (B, Tq, d_model), key and value (B, Tk, d_model), mask bool
    broadcastable to (B, Tq, Tk) or (Tq, Tk), True = may attend)
    -> (B, Tq, d_model), equal to ``torch.nn.MultiheadAttention(batch_first=True)``
    with the same weights. With ``keep_weights = True`` the last call's
    attention weights stay in ``self.weights`` (B, n_heads, Tq, Tk).
    ``fast=True`` uses ``torch.nn.functional.scaled_dot_product_attention``
    (tests prove it agrees; it keeps no weights).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, fast: bool = False):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) should be divisible by n_heads ({n_heads})")
        self.d_model, self.n_heads, self.dropout, self.fast = d_model, n_heads, dropout, fast
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.keep_weights = False
        self.weights: torch.Tensor | None = None

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, -1).transpose(1, 2)  # (B, h, T, d_head)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if query.dim() != 3 or key.dim() != 3 or value.dim() != 3:
            raise ValueError(
                f"query, key and value should be (B, T, d_model), got {tuple(query.shape)}, "
                f"{tuple(key.shape)}, {tuple(value.shape)}"
            )
        B, Tq, _ = query.shape
        q = self._heads(self.q_proj(query))  # (B, h, Tq, d_head)
        k = self._heads(self.k_proj(key))  # (B, h, Tk, d_head)
        v = self._heads(self.v_proj(value))  # (B, h, Tk, d_head)
        if mask is not None:
            # (Tq, Tk) or (B, Tq, Tk) -> broadcast over the heads
            mask = mask.unsqueeze(-3) if mask.dim() == 3 else mask
        p = self.dropout if self.training else 0.0
        if self.fast and not self.keep_weights:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, Tq, d_head)
            if self.keep_weights:
                self.weights = weights.detach()
            if p:
                # dropout on the weights, as torch.nn.MultiheadAttention does
                out = F.dropout(weights, p) @ v
        out = out.transpose(1, 2).reshape(B, Tq, self.d_model)  # (B, Tq, d_model)
        return self.out_proj(out)


# ---------------------------------------------------------------------------
# Layers


class FeedForward(nn.Module):
    """Position-wise feed-forward (Vaswani et al., 2017, 3.3): linear2(act(linear1(x))).

    x (..., d_model) -> (..., d_model); d_ff the hidden width.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu"):
        super().__init__()
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation should be 'relu' or 'gelu', got {activation!r}")
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.act = nn.ReLU() if activation == "relu" else nn.GELU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.act(self.linear1(x))))


class Sublayer(nn.Module):
    """One sub-layer f with its skip connection and layer norm.

    post-norm (Vaswani et al., 2017): norm(x + f(x));
    pre-norm (``norm_first``; Xiong et al., 2020): x + f(norm(x));
    ``residual=False`` drops the ``x +``: norm(f(x)) or f(norm(x)), for the
    chapter's deep-stack experiment.
    """

    def __init__(self, d_model: int, dropout: float, norm_first: bool, residual: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first, self.residual = norm_first, residual

    def forward(self, x: torch.Tensor, f) -> torch.Tensor:
        skip = x if self.residual else 0
        if self.norm_first:
            return skip + self.dropout(f(self.norm(x)))
        return self.norm(skip + self.dropout(f(x)))


class EncoderLayer(nn.Module):
    """Self-attention, then feed-forward, each a :class:`Sublayer`.

    x (B, S, d_model), mask bool broadcastable to (B, S, S) (True = may
    attend) -> (B, S, d_model). Equal to ``torch.nn.TransformerEncoderLayer``
    (batch_first) given the same weights, for both values of ``norm_first``.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = False, activation: str = "relu", residual: bool = True,
                 fast: bool = False):  # fmt: skip
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout, fast)
        self.ff = FeedForward(d_model, d_ff, dropout, activation)
        self.sub1 = Sublayer(d_model, dropout, norm_first, residual)
        self.sub2 = Sublayer(d_model, dropout, norm_first, residual)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.sub1(x, lambda h: self.self_attn(h, h, h, mask))
        return self.sub2(x, self.ff)


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention over the encoder's output, feed-forward.

    x (B, T, d_model), memory (B, S, d_model); self_mask bool broadcastable to
    (B, T, T) (usually :func:`causal_mask`), memory_mask broadcastable to
    (B, T, S) -> (B, T, d_model). Equal to ``torch.nn.TransformerDecoderLayer``
    (batch_first) given the same weights, for both values of ``norm_first``.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = False, activation: str = "relu", residual: bool = True,
                 fast: bool = False):  # fmt: skip
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout, fast)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout, fast)
        self.ff = FeedForward(d_model, d_ff, dropout, activation)
        self.sub1 = Sublayer(d_model, dropout, norm_first, residual)
        self.sub2 = Sublayer(d_model, dropout, norm_first, residual)
        self.sub3 = Sublayer(d_model, dropout, norm_first, residual)

    def forward(self, x, memory, self_mask=None, memory_mask=None) -> torch.Tensor:
        x = self.sub1(x, lambda h: self.self_attn(h, h, h, self_mask))
        x = self.sub2(x, lambda h: self.cross_attn(h, memory, memory, memory_mask))
        return self.sub3(x, self.ff)


# ---------------------------------------------------------------------------
# Copying weights from PyTorch's layers (the equality tests use these)


@torch.no_grad()
def copy_torch_mha(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    """Give ``ours`` the weights of a ``torch.nn.MultiheadAttention`` (in_proj split in three)."""
    d = ours.d_model
    for i, proj in enumerate((ours.q_proj, ours.k_proj, ours.v_proj)):
        proj.weight.copy_(theirs.in_proj_weight[i * d : (i + 1) * d])
        proj.bias.copy_(theirs.in_proj_bias[i * d : (i + 1) * d])
    ours.out_proj.weight.copy_(theirs.out_proj.weight)
    ours.out_proj.bias.copy_(theirs.out_proj.bias)


@torch.no_grad()
def copy_torch_layer(ours: EncoderLayer | DecoderLayer, theirs: nn.Module) -> None:
    """Weights of a ``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer``."""
    copy_torch_mha(ours.self_attn, theirs.self_attn)
    subs = [ours.sub1, ours.sub2]
    if isinstance(ours, DecoderLayer):
        copy_torch_mha(ours.cross_attn, theirs.multihead_attn)
        subs.append(ours.sub3)
    norms = (theirs.norm1, theirs.norm2, getattr(theirs, "norm3", None))[: len(subs)]
    for sub, norm in zip(subs, norms, strict=True):
        sub.norm.load_state_dict(norm.state_dict())
    ours.ff.linear1.load_state_dict(theirs.linear1.state_dict())
    ours.ff.linear2.load_state_dict(theirs.linear2.state_dict())


# ---------------------------------------------------------------------------
# The encoder-decoder


@dataclass
class TransformerConfig:
    """Sizes of a transformer; the defaults make a model of chapter 3's size class."""

    src_vocab: int  # source vocabulary size (0 for a decoder-only use)
    tgt_vocab: int  # target vocabulary size, V
    d_model: int = 64  # width of every layer
    n_heads: int = 4  # heads per attention; d_model / n_heads each
    d_ff: int = 128  # hidden width of the feed-forward
    enc_layers: int = 2  # encoder layers
    dec_layers: int = 2  # decoder layers
    dropout: float = 0.1  # on attention weights, sub-layer outputs and embeddings
    norm_first: bool = True  # pre-norm (stable without warm-up) or the paper's post-norm
    positions: str = "sinusoidal"  # "sinusoidal", "learned" or "none"
    residual: bool = True  # skip connections around every sub-layer
    max_len: int = 64  # longest sequence the positions cover

    def __post_init__(self):
        if self.positions not in POSITIONS:
            raise ValueError(
                f"positions should be one of {sorted(POSITIONS)}, got {self.positions!r}"
            )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) should be divisible by n_heads ({self.n_heads})"
            )


class Embed(nn.Module):
    """Token embedding scaled by sqrt(d_model) (Vaswani et al., 2017, 3.4), plus positions."""

    def __init__(self, vocab: int, cfg: TransformerConfig):
        super().__init__()
        self.tokens = nn.Embedding(vocab, cfg.d_model)
        # N(0, 1/d_model), so that the scaled embedding has unit variance like the positions
        nn.init.normal_(self.tokens.weight, std=cfg.d_model**-0.5)
        kind = POSITIONS[cfg.positions]
        self.positions = NoPositions() if kind is None else kind(cfg.d_model, cfg.max_len)
        self.dropout = nn.Dropout(cfg.dropout)
        self.scale = math.sqrt(cfg.d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.positions(self.tokens(ids) * self.scale))  # (B, T, d_model)


def _layer_args(cfg: TransformerConfig) -> dict:
    return dict(d_model=cfg.d_model, n_heads=cfg.n_heads, d_ff=cfg.d_ff, dropout=cfg.dropout,
                norm_first=cfg.norm_first, residual=cfg.residual)  # fmt: skip


class Encoder(nn.Module):
    """Embedding, positions and a stack of :class:`EncoderLayer`.

    forward(src (B, S), src_mask (B, S) True at real tokens) -> (B, S, d_model);
    a pre-norm stack ends with a layer norm, as in PyTorch's and GPT-2's.
    """

    def __init__(self, vocab: int, cfg: TransformerConfig):
        super().__init__()
        self.embed = Embed(vocab, cfg)
        self.layers = nn.ModuleList(EncoderLayer(**_layer_args(cfg)) for _ in range(cfg.enc_layers))
        self.norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(src)
        mask = None if src_mask is None else src_mask[:, None, :]  # (B, 1, S): keys only
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class Transformer(nn.Module):
    """The encoder-decoder transformer (Vaswani et al., 2017) with chapter 3's interface.

    forward(src (B, S), src_mask (B, S), tgt_in (B, T)) -> logits (B, T, V),
    teacher-forced; ``decoder_start`` serves chapter 3's greedy and beam
    search; ``forward_with_weights`` returns the cross-attention of layer
    ``align_layer`` averaged over heads, for chapter 4's alignment scores.
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg.src_vocab, cfg)
        self.embed = Embed(cfg.tgt_vocab, cfg)
        self.layers = nn.ModuleList(DecoderLayer(**_layer_args(cfg)) for _ in range(cfg.dec_layers))
        self.norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.out = nn.Linear(cfg.d_model, cfg.tgt_vocab)
        self.align_layer = -1  # which decoder layer's cross-attention forward_with_weights returns
        self.align_head: int | None = None  # one head of it, or None for the mean over heads

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor):
        """tgt_in (B, T), memory (B, S, d_model), src_mask (B, S) -> logits (B, T, V)."""
        x = self.embed(tgt_in)
        causal = causal_mask(tgt_in.shape[1], device=tgt_in.device)  # (T, T)
        memory_mask = src_mask[:, None, :]  # (B, 1, S)
        for layer in self.layers:
            x = layer(x, memory, causal, memory_mask)
        return self.out(self.norm(x))

    def forward(self, src, src_mask, tgt_in) -> torch.Tensor:
        return self.decode(tgt_in, self.encoder(src, src_mask), src_mask)

    def cross_attention(self, src, src_mask, tgt_in) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """-> (log_probs (B, T, V), [cross-attention weights (B, n_heads, T, S) per layer])."""
        attns = [layer.cross_attn for layer in self.layers]
        for a in attns:
            a.keep_weights = True
        try:
            logits = self(src, src_mask, tgt_in)
        finally:
            for a in attns:
                a.keep_weights = False
        return torch.log_softmax(logits, dim=-1), [a.weights for a in attns]

    def forward_with_weights(self, src, src_mask, tgt_in):
        """-> (log_probs (B, T, V), weights (B, T, S)): see ``align_layer`` / ``align_head``."""
        log_probs, weights = self.cross_attention(src, src_mask, tgt_in)
        w = weights[self.align_layer]  # (B, h, T, S)
        w = w.mean(dim=1) if self.align_head is None else w[:, self.align_head]
        return log_probs, w

    @torch.no_grad()
    def decoder_start(self, src: torch.Tensor, src_mask: torch.Tensor):
        """Encode the source; -> (step, state) for chapter 3's decoders.

        The state of a hypothesis is its tokens so far, (N, t) ids: a
        transformer decoder reads its whole prefix at each step (a key/value
        cache, chapter 6, avoids recomputing it). Rows are sentence-major:
        with N = B * K rows, row n belongs to sentence n // K.
        step(tokens (N,), state (N, t)) -> (log_probs (N, V), state (N, t + 1)).
        """
        memory = self.encoder(src, src_mask)  # (B, S, d_model)
        B = memory.shape[0]

        @torch.no_grad()
        def step(tokens: torch.Tensor, state: torch.Tensor):
            K = tokens.shape[0] // B
            prefix = torch.cat([state, tokens[:, None]], dim=1)  # (N, t + 1)
            logits = self.decode(
                prefix, memory.repeat_interleave(K, 0), src_mask.repeat_interleave(K, 0)
            )
            return torch.log_softmax(logits[:, -1], dim=-1), prefix

        return step, torch.empty(B, 0, dtype=torch.long, device=src.device)


# ---------------------------------------------------------------------------
# Pretraining and fine-tuning an encoder (Devlin et al., 2019)


class MaskedLM(nn.Module):
    """An :class:`Encoder` with a head that predicts masked tokens.

    forward(ids (B, T), mask (B, T) True at real tokens) -> logits (B, T, V).
    """

    def __init__(self, vocab: int, cfg: TransformerConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(vocab, cfg)
        self.head = nn.Linear(cfg.d_model, vocab)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ids, mask))


class Classifier(nn.Module):
    """An :class:`Encoder` and a linear layer on the mean of its outputs over real tokens.

    forward(ids (B, T), mask (B, T)) -> logits (B, n_classes).
    """

    def __init__(self, vocab: int, cfg: TransformerConfig, n_classes: int):
        super().__init__()
        self.encoder = Encoder(vocab, cfg)
        self.head = nn.Linear(cfg.d_model, n_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(ids, mask)  # (B, T, d_model)
        m = mask[..., None].to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1))
