r"""GPT: a decoder-only transformer language model, and how to prompt it.

GPT-2 (Radford et al., 2019) and GPT-3 (Brown et al., 2020) are one stack of
chapter 5's pre-norm decoder layers without cross-attention, trained to
predict the next token. This module follows Karpathy's nanoGPT (``model.py``):
the whole model in one file, defined bottom up, with GPT-2's parameter names
so that GPT-2's weights load into it.

- :class:`GPTConfig`: the sizes, with the GPT-2 and GPT-3 presets, and
  :func:`n_params` / :func:`gpt_param_count` / :func:`training_flops` to count
  a model without building it;
- :class:`CausalSelfAttention`, :class:`MLP`, :class:`Block`, :class:`GPT`:
  token and learned position embeddings, ``n_layer`` blocks

  .. math::

      x \leftarrow x + \operatorname{Attn}(\operatorname{LN}_1(x)), \qquad
      x \leftarrow x + \operatorname{MLP}(\operatorname{LN}_2(x)),

  a final layer norm and an output layer tied to the token embedding;
  logits[:, t] predict token t + 1. The attention is chapter 5's
  :func:`seqlab.transformer.scaled_dot_product_attention` with
  :func:`seqlab.transformer.causal_mask`, or with ``fast=True`` PyTorch's fused
  ``F.scaled_dot_product_attention`` (the tests prove the two agree);
- :class:`KVCache`: the keys and values of the past tokens, so that a new
  token is one position's work (attending over the L cached keys), not L + 1;
  :func:`cached_attention_step`, one such step of one layer by hand;
- :func:`generate` with temperature, top-k and top-p (nucleus; Holtzman et
  al., 2020) sampling; :func:`next_token_distribution`, the distribution a
  token is drawn from; :func:`sample_next_token`, :func:`top_p_filter`,
  :func:`gpt_param_count` and :func:`cached_attention_step` are the reference
  versions of chapter 6's graded functions (the scorers are in
  :mod:`seqlab.prompting`);
- :meth:`GPT.from_gpt2`: the weights of a ``transformers.GPT2LMHeadModel``;
- :func:`time_per_token` and :func:`tokens_per_second`: what the cache buys.

Shapes: B batch, T time, V vocabulary, C = ``n_embd`` the width, nh heads of
hs = C / nh. A "language model" in the course is any callable
``model(ids (B, T) LongTensor) -> logits (B, T, V)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from .transformer import causal_mask, scaled_dot_product_attention

# ---------------------------------------------------------------------------
# Configuration and counting


@dataclass
class GPTConfig:
    """Sizes of a GPT; the defaults are a small model that trains on a CPU in minutes.

    ``GPTConfig.preset("gpt2")`` and its siblings give the published sizes
    (Radford et al., 2019, table 2; Brown et al., 2020, table 2.1).
    """

    vocab_size: int = 256  # V: tokens the model reads and predicts
    block_size: int = 128  # context length: the most positions the model sees at once
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block; n_embd / n_head each
    n_embd: int = 128  # C: width of every block
    dropout: float = 0.0  # on embeddings, attention weights and block outputs (0 at inference)
    bias: bool = True  # biases in the linear layers and layer norms, as in GPT-2
    fast: bool = False  # attention by F.scaled_dot_product_attention (same numbers, faster)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} should be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd ({self.n_embd}) should be divisible by n_head ({self.n_head})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout should be in [0, 1), got {self.dropout}")

    @classmethod
    def preset(cls, name: str, **overrides) -> GPTConfig:
        """The config of a published model (``PRESETS``), with fields overridden by keyword."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


# GPT-2 (Radford et al., 2019, table 2; sizes as released) and GPT-3 175B (Brown et al.,
# 2020, table 2.1, whose attention alternates dense and locally banded sparse layers:
# the same parameters as dense). All use GPT-2's byte-level BPE of 50257 tokens.
PRESETS: dict[str, GPTConfig] = {
    "gpt2": GPTConfig(50257, 1024, n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": GPTConfig(50257, 1024, n_layer=24, n_head=16, n_embd=1024),  # 350M
    "gpt2-large": GPTConfig(50257, 1024, n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": GPTConfig(50257, 1024, n_layer=48, n_head=25, n_embd=1600),  # 1558M
    "gpt3": GPTConfig(50257, 2048, n_layer=96, n_head=96, n_embd=12288),  # 175B
}


def n_params(cfg: GPTConfig, non_embedding: bool = False) -> int:
    r"""The number of parameters of ``GPT(cfg)``, counted from the config alone.

    Per block: two layer norms, the attention's qkv and output projections and
    the MLP's two layers,

    .. math:: 12 C^2 + 13 C \text{ (with biases)}, \qquad 12 C^2 + 2 C \text{ (without)},

    plus the token embedding V C (shared with the output layer), the position
    embedding ``block_size`` C and the final layer norm. ``non_embedding=True``
    leaves out both embeddings: Kaplan et al.'s (2020) N, about
    :math:`12\, n_\text{layer} C^2`. GPT-2 small: 124,439,808 (85,056,000 without
    embeddings).
    """
    C, ln = cfg.n_embd, (2 if cfg.bias else 1) * cfg.n_embd  # a layer norm: weight (+ bias)
    linear = 12 * C * C + (3 * C + C + 4 * C + C if cfg.bias else 0)  # qkv, proj, fc, proj
    total = cfg.n_layer * (2 * ln + linear) + ln  # blocks and the final layer norm
    if not non_embedding:
        total += cfg.vocab_size * C + cfg.block_size * C  # tokens (tied to lm_head), positions
    return total


def gpt_param_count(n_layer: int, n_embd: int, vocab_size: int, block_size: int) -> int:
    """The parameters of a GPT-2-style model from four sizes: :func:`n_params` of its config.

    Chapter 6's graded function (reference): token and learned position
    embeddings, n_layer pre-norm blocks with biases everywhere and an MLP of
    width 4 n_embd, a final layer norm, and an output layer tied to the token
    embedding (Radford et al., 2019). GPT-2 small (12, 768, 50257, 1024) has 124,439,808.
    """
    cfg = GPTConfig(vocab_size, block_size, n_layer=n_layer, n_head=1, n_embd=n_embd)
    return n_params(cfg)


def training_flops(n_params: float, n_tokens: float) -> float:
    """C = 6 N D: floating-point operations to train N parameters on D tokens.

    Kaplan et al. (2020, section 2.1): 2 N per token forward and 4 N backward
    (N without embeddings, attention's context-dependent term left out).
    """
    return 6.0 * n_params * n_tokens


# ---------------------------------------------------------------------------
# The model, bottom up


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t sees positions 0..t.

    GPT-2's layout: one linear ``c_attn`` makes q, k and v (C -> 3C), ``c_proj``
    mixes the heads. forward(x (B, T, C), past) -> (y (B, T, C), (k, v)), with
    ``past`` None or the keys and values (each (B, nh, T_past, hs)) of the
    T_past tokens before x; the returned k, v (B, nh, T_past + T, hs) include
    x's, for the next call.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.n_embd, self.fast = cfg.n_head, cfg.n_embd, cfg.fast
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        # q, k, v: (B, nh, T, hs)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, nh, T_past + T, hs)
            v = torch.cat([past[1], v], dim=2)
        T_past = k.shape[2] - T
        if T_past == 0:
            mask = causal_mask(T, device=x.device)  # (T, T)
        else:
            # the T new queries sit at positions T_past..T_past + T - 1 and see keys up to
            # their own: rows T_past.. of causal_mask(T_past + T), built without the rest
            mask = torch.ones(T, T_past + T, dtype=torch.bool, device=x.device).tril(T_past)
        p = self.attn_dropout.p if self.training else 0.0
        if self.fast:
            # is_causal lets the fused kernel skip the masked half; it means the top-left
            # triangle, right only without a past
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=None if T_past == 0 else mask, dropout_p=p, is_causal=T_past == 0
            )  # (B, nh, T, hs)
        else:
            y, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, nh, T, hs)
            if p:
                y = self.attn_dropout(weights) @ v
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y)), (k, v)


class MLP(nn.Module):
    """x (..., C) -> c_proj(GELU(c_fc(x))) (..., C), hidden width 4C.

    GELU with the tanh approximation (Hendrycks & Gimpel, 2016), GPT-2's ``gelu_new``.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """One pre-norm decoder block (Radford et al., 2019, section 2.3).

    forward(x (B, T, C), past) -> (x (B, T, C), (k, v)): see :class:`CausalSelfAttention`.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, past=None):
        a, kv = self.attn(self.ln_1(x), past)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, kv


@dataclass
class KVCache:
    """The keys and values of every layer for the tokens fed so far (one batch).

    ``layers[i]`` is None before the first call, then (k, v), each
    (B, nh, T_past, hs). :meth:`GPT.forward` reads and extends it in place;
    ``len(cache)`` is T_past, where the next token's position starts.
    """

    layers: list = field(default_factory=list)  # per block: None or (k, v)

    def __len__(self) -> int:
        first = self.layers[0] if self.layers else None
        return 0 if first is None else first[0].shape[2]


def cached_attention_step(
    q: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    cache: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    r"""One decoding step of causal self-attention with a key/value cache.

    Chapter 6's graded function (reference). q, k_new, v_new (B, nh, 1, hs):
    the new token's query, key and value; cache None (the first token) or the
    pair (K, V) of the L tokens before it, each (B, nh, L, hs). The new key and
    value are appended along time and the one query attends over all L + 1:

    .. math:: \text{out} = \operatorname{softmax}(q K_2^\top / \sqrt{hs})\, V_2

    No mask is needed: the newest position may see every key. This is the last
    row of full causal attention over the L + 1 tokens (Vaswani et al., 2017),
    computed in O(L hs) per head instead of redoing the L rows before it.
    -> (out (B, nh, 1, hs), (K2, V2) each (B, nh, L + 1, hs)); the cache given
    is left as it was (``torch.cat`` makes new tensors).
    """
    if cache is not None:
        k_new = torch.cat([cache[0], k_new], dim=2)  # (B, nh, L + 1, hs)
        v_new = torch.cat([cache[1], v_new], dim=2)
    out, _ = scaled_dot_product_attention(q, k_new, v_new)  # (B, nh, 1, hs)
    return out, (k_new, v_new)


class GPT(nn.Module):
    """A GPT-2-style language model (Radford et al., 2019; Karpathy's nanoGPT).

    forward(ids (B, T) LongTensor, cache=None) -> logits (B, T, V), where
    logits[:, t] predict token t + 1. With a :class:`KVCache` (``model.new_cache()``)
    ids continue the tokens the cache holds, at positions ``len(cache)`` onwards,
    and the cache grows by T. Raises ``ValueError`` when ids are not 2-D or run
    past ``block_size`` positions, ``TypeError`` when ids are not integers.

    Parameter names follow GPT-2's (``wte``, ``wpe``, ``h.0.attn.c_attn``, ...);
    ``lm_head`` shares its weight with ``wte``. Weights start as in GPT-2:
    N(0, 0.02), with the projections into the residual stream scaled by
    1 / sqrt(2 n_layer).
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # token embedding
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)  # learned position embedding
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied (Press & Wolf, 2017)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def new_cache(self) -> KVCache:
        """An empty :class:`KVCache` for this model."""
        return KVCache([None] * self.config.n_layer)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters of the allocated model (the tied weight once); equals :func:`n_params`."""
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            total -= self.wte.weight.numel() + self.wpe.weight.numel()
        return total

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.long, torch.int32):
            got = ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise TypeError(f"ids should be a LongTensor (B, T) of token ids, got {got}")
        if ids.dim() != 2:
            raise ValueError(f"ids should be (B, T), got shape {tuple(ids.shape)}")
        B, T = ids.shape
        start = 0 if cache is None else len(cache)
        if start + T > self.config.block_size:
            raise ValueError(
                f"sequence of length {start + T} (T={T}, cached {start}) > block_size "
                f"{self.config.block_size}"
            )
        pos = torch.arange(start, start + T, device=ids.device)  # (T,)
        x = self.drop(self.wte(ids) + self.wpe(pos))  # (B, T, C)
        for i, block in enumerate(self.h):
            x, kv = block(x, None if cache is None else cache.layers[i])
            if cache is not None:
                cache.layers[i] = kv
        return self.lm_head(self.ln_f(x))  # (B, T, V)

    @classmethod
    @torch.no_grad()
    def from_gpt2(cls, hf_model, fast: bool = False) -> GPT:
        """A GPT with the weights of a ``transformers.GPT2LMHeadModel`` (any size).

        Hugging Face keeps GPT-2's ``Conv1D`` layers, whose weights are
        (in, out): the transpose of ``nn.Linear``'s. Configs whose
        architecture this module does not have (another activation or layer
        norm epsilon, an MLP other than 4C, attention scaled by layer index)
        raise ``ValueError``. Call ``.eval()`` on both models before comparing.
        ``GPT.from_gpt2(GPT2LMHeadModel.from_pretrained("gpt2"))`` loads the
        real GPT-2 small (a 500 MB download, outside this course's tests).
        """
        try:
            from transformers import GPT2LMHeadModel  # optional and heavy: only for GPT-2 weights
        except ImportError as err:  # pragma: no cover - the dev extra installs it
            raise ImportError(
                "GPT.from_gpt2 needs Hugging Face transformers: pip install transformers"
            ) from err
        if not isinstance(hf_model, GPT2LMHeadModel):
            raise TypeError(
                f"expected a transformers.GPT2LMHeadModel, got {type(hf_model).__name__}"
            )
        hf = hf_model.config
        problems = []
        if hf.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
            problems.append(f"activation_function={hf.activation_function!r}")
        if hf.n_inner not in (None, 4 * hf.n_embd):
            problems.append(f"n_inner={hf.n_inner}")
        if hf.layer_norm_epsilon != 1e-5:
            problems.append(f"layer_norm_epsilon={hf.layer_norm_epsilon}")
        if not getattr(hf, "scale_attn_weights", True):
            problems.append("scale_attn_weights=False")
        if getattr(hf, "scale_attn_by_inverse_layer_idx", False):
            problems.append("scale_attn_by_inverse_layer_idx=True")
        if problems:
            raise ValueError(f"this GPT2Config differs from GPT-2's architecture: {problems}")
        cfg = GPTConfig(
            vocab_size=hf.vocab_size, block_size=hf.n_positions, n_layer=hf.n_layer,
            n_head=hf.n_head, n_embd=hf.n_embd, dropout=0.0, bias=True, fast=fast,
        )  # fmt: skip
        model = cls(cfg)
        theirs = hf_model.state_dict()
        # Conv1D layers: weight (in, out), the transpose of nn.Linear's (out, in)
        conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                  "mlp.c_proj.weight")  # fmt: skip
        for name, p in model.state_dict().items():
            if name == "lm_head.weight":
                continue  # tied to wte
            w = theirs["transformer." + name]
            p.copy_(w.t() if name.endswith(conv1d) else w)
        dtype = next(hf_model.parameters()).dtype
        return model.to(dtype)


# ---------------------------------------------------------------------------
# Sampling and generation


def _check_logits(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits should be (B, V), got {got}")


def top_k_filter(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """logits (B, V) -> logits with all but the k largest of each row set to -inf.

    Ties with the k-th largest value are kept. k None (or >= V) keeps all.
    """
    if k is None or k >= logits.shape[-1]:
        return logits
    if k < 1:
        raise ValueError(f"top_k should be >= 1 or None, got {k}")
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al., 2020): logits (B, V) -> logits (B, V).

    Chapter 6's graded function (reference). Keeps, in each row, the smallest
    set of most likely tokens whose probability mass is >= p and sets the
    others to -inf: a token is kept when the mass of the tokens more likely
    than it is still < p, so the most likely token always stays. p None or 1
    keeps all. The same set as transformers' ``TopPLogitsWarper`` (tested).
    """
    if p is None or p >= 1.0:
        return logits
    if not 0.0 < p < 1.0:
        raise ValueError(f"top_p should be in (0, 1] or None, got {p}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # (B, V): mass of the more likely tokens
    drop_sorted = mass_before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def next_token_distribution(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """logits (B, V) -> probs (B, V): the distribution :func:`generate` draws the next token from.

    temperature 0 (greedy) gives one-hot rows at the argmax; otherwise the
    softmax of the logits divided by the temperature, after
    :func:`top_k_filter` and :func:`top_p_filter` (tokens they drop get 0).
    """
    _check_logits(logits)
    if temperature < 0:
        raise ValueError(f"temperature should be >= 0, got {temperature}")
    if temperature == 0:
        return F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(top_p_filter(top_k_filter(logits / temperature, top_k), top_p), dim=-1)


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits (B, V) -> LongTensor (B,): the next token of each row.

    Chapter 6's graded function (reference). temperature == 0 means argmax.
    Otherwise keep the top_k largest logits (all when None; ties at the k-th
    value kept), divide by temperature, softmax, and draw with
    ``torch.multinomial(probs, 1, generator=generator)``.
    """
    _check_logits(logits)
    if temperature < 0:
        raise ValueError(f"temperature should be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(top_k_filter(logits, top_k) / temperature, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _step(model, ids: torch.Tensor, cache: KVCache | None, block_size: int | None):
    """Logits (B, V) of the token after ids (B, T), and the cache to use next."""
    if cache is None:
        context = ids if block_size is None else ids[:, -block_size:]
        return model(context)[:, -1], None
    if len(cache) == 0 or len(cache) >= block_size:
        # the first step, or the window is full and slides: recompute, as an uncached step would
        cache = model.new_cache()
        return model(ids[:, -block_size:], cache)[:, -1], cache
    return model(ids[:, -1:], cache)[:, -1], cache


@torch.no_grad()
def generate(
    model: Callable[[torch.Tensor], torch.Tensor],
    ids: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Continue ids (B, T) by max_new_tokens tokens -> (B, T + max_new_tokens).

    Each step divides the last logits by the temperature (0 = greedy: the
    argmax), keeps the top_k most likely tokens and then the nucleus of mass
    top_p (Holtzman et al., 2020), and draws with :func:`sample_next_token`,
    from ``generator`` when given. With ``use_cache`` (a :class:`GPT` only)
    the prompt is fed once and every later step feeds only the new token,
    reading the past from a :class:`KVCache`; the tokens are the same as
    without it. Beyond ``block_size`` tokens the context window slides (the
    model sees the last ``block_size``). Any callable language model works
    with ``use_cache=False``. Call ``model.eval()`` first to turn dropout off.
    """
    if ids.dim() != 2 or ids.shape[1] < 1:
        raise ValueError(f"ids should be (B, T) with T >= 1, got shape {tuple(ids.shape)}")
    if use_cache and not isinstance(model, GPT):
        raise TypeError(f"use_cache=True needs a seqlab GPT, got {type(model).__name__}")
    block_size = model.config.block_size if isinstance(model, GPT) else None
    cache = model.new_cache() if use_cache else None
    for _ in range(max_new_tokens):
        logits, cache = _step(model, ids, cache, block_size)  # (B, V)
        if temperature == 0:
            next_id = sample_next_token(logits, 0.0)
        else:
            logits = top_p_filter(top_k_filter(logits / temperature, top_k), top_p)
            next_id = sample_next_token(logits, 1.0, generator=generator)  # (B,)
        ids = torch.cat([ids, next_id[:, None]], dim=1)
    return ids


# ---------------------------------------------------------------------------
# What the cache buys


@torch.no_grad()
def time_per_token(
    model: GPT, lengths: Sequence[int], use_cache: bool = True, repeats: int = 5, batch: int = 1
) -> list[float]:
    """Seconds to produce one token after a context of each length in ``lengths``.

    Without the cache a step runs the model over all L + 1 tokens; with it, it
    feeds one token and attends over the L cached keys. Each figure is the
    fastest of ``repeats`` steps on random token ids (the cache is filled
    first and not timed): on a shared machine the slower ones include waiting
    for other processes. -> list of seconds, one per length.
    """
    model.eval()
    cfg, dev = model.config, next(model.parameters()).device
    out = []
    for L in lengths:
        if not 1 <= L < cfg.block_size:
            raise ValueError(f"lengths should be in [1, {cfg.block_size}) (block_size), got {L}")
        ids = torch.randint(cfg.vocab_size, (batch, L + 1), device=dev)
        times = []
        for _ in range(repeats):
            if use_cache:
                cache = model.new_cache()
                model(ids[:, :L], cache)
                t0 = time.perf_counter()
                model(ids[:, L:], cache)
            else:
                t0 = time.perf_counter()
                model(ids)
            times.append(time.perf_counter() - t0)
        out.append(min(times))
    return out


@torch.no_grad()
def tokens_per_second(
    model: GPT, prompt_len: int = 1, new_tokens: int = 256, use_cache: bool = True,
    repeats: int = 3,
) -> float:
    """Tokens per second of :func:`generate` (greedy, batch 1, prompt included), best of repeats."""
    model.eval()
    cfg, dev = model.config, next(model.parameters()).device
    ids = torch.randint(cfg.vocab_size, (1, prompt_len), device=dev)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        generate(model, ids, new_tokens, temperature=0.0, use_cache=use_cache)
        best = min(best, time.perf_counter() - t0)
    return new_tokens / best
