"""Chapter 5's measurements of attention itself: why scores are divided by sqrt(d),
what attention costs as sequences grow, and what rotary positions keep.

- :func:`softmax_saturation`: the softmax of q . k for random unit-variance
  queries and keys, with and without the 1/sqrt(d) of Vaswani et al. (2017),
  against the size d: the largest weight, the entropy, and how much gradient
  the softmax lets through;
- :func:`attention_cost`: the time of seqlab's attention (which stores the
  T x T weights) and of ``torch.nn.functional.scaled_dot_product_attention``
  against the length T, and the bytes of those weights;
- :func:`sdpa_backend`: which kernel ``scaled_dot_product_attention`` picks
  for given inputs on this machine;
- :func:`offset_spread`: how far the scores of pairs at the same offset
  spread, with rotary positions and with added sinusoidal ones.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend

from ...transformer import apply_rope, scaled_dot_product_attention, sinusoidal_positions


def softmax_saturation(dims: Sequence[int], n_keys: int = 64, n_queries: int = 250,
                       seed: int = 0) -> dict[int, dict[str, dict[str, float]]]:  # fmt: skip
    """For each d: n_queries queries, each against its own n_keys keys, all entries N(0, 1).

    -> {d: {"unscaled" | "scaled": {"score_std", "max_weight", "entropy", "jacobian"}}}:
    the standard deviation of the scores q . k (or q . k / sqrt(d)), the mean largest
    softmax weight, the mean entropy of the weights in nats (log n_keys when uniform, 0
    when one-hot), and the mean Frobenius norm of the softmax's Jacobian
    diag(p) - p p^T, which scales every gradient that flows back into the scores.
    """
    g = torch.Generator().manual_seed(seed)
    out = {}
    for d in dims:
        q = torch.randn(n_queries, 1, d, generator=g, dtype=torch.float64)
        k = torch.randn(n_queries, n_keys, d, generator=g, dtype=torch.float64)
        raw = (q * k).sum(-1)  # (n_queries, n_keys)
        out[d] = {}
        for name, scores in (("unscaled", raw), ("scaled", raw / math.sqrt(d))):
            p = torch.softmax(scores, dim=-1)
            entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)
            s2, s3 = (p**2).sum(-1), (p**3).sum(-1)
            jacobian = (s2 - 2 * s3 + s2**2).clamp_min(0).sqrt()  # ||diag(p) - p p^T||_F
            out[d][name] = {
                "score_std": scores.std().item(),
                "max_weight": p.max(-1).values.mean().item(),
                "entropy": entropy.mean().item(),
                "jacobian": jacobian.mean().item(),
            }
    return out


def sdpa_backend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> str:
    """The kernel ``F.scaled_dot_product_attention(q, k, v)`` dispatches to here, by name
    (FLASH_ATTENTION, EFFICIENT_ATTENTION, CUDNN_ATTENTION or MATH)."""
    return SDPBackend(torch._fused_sdp_choice(q, k, v)).name


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def attention_cost(lengths: Sequence[int], d: int = 64, heads: int = 4, batch: int = 1,
                   repeats: int = 3, seed: int = 0) -> dict[int, dict[str, float]]:  # fmt: skip
    """Self-attention of (batch, heads, T, d) float32 queries, keys and values, per T.

    -> {T: {"seqlab_s", "torch_s": median seconds of one call (after a warm-up call),
    "weights_bytes": bytes of the (batch, heads, T, T) weights seqlab's attention returns,
    "gap": the largest difference between the two outputs}}.
    """
    g = torch.Generator().manual_seed(seed)
    out = {}
    for T in lengths:
        q, k, v = (torch.randn(batch, heads, T, d, generator=g) for _ in range(3))
        ours, weights = scaled_dot_product_attention(q, k, v)  # warm-up, and the weights
        theirs = F.scaled_dot_product_attention(q, k, v)
        out[T] = {
            "seqlab_s": _median_seconds(partial(scaled_dot_product_attention, q, k, v), repeats),
            "torch_s": _median_seconds(partial(F.scaled_dot_product_attention, q, k, v), repeats),
            "weights_bytes": weights.numel() * weights.element_size(),
            "gap": (ours - theirs).abs().max().item(),
        }
    return out


def offset_spread(T: int = 32, d: int = 64, seed: int = 0) -> dict[str, float]:
    """The same query and key vectors placed at every position 0..T-1, scored against
    each other: S[m, n] = score of the query at m and the key at n. -> for rotary
    positions (:func:`seqlab.transformer.apply_rope`) and added sinusoidal ones, the
    largest spread (max - min) of S over the pairs (m, n) with the same offset m - n,
    and the spread of the scores over all offsets, for scale."""
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, d, generator=g, dtype=torch.float64)
    P = sinusoidal_positions(T, d, dtype=torch.float64)  # (T, d)
    scores = {
        "rotary": apply_rope(q.expand(T, d)) @ apply_rope(k.expand(T, d)).T,
        "sinusoidal": (q + P) @ (k + P).T,
    }
    out = {}
    for name, S in scores.items():
        diagonals = [S.diagonal(o) for o in range(-(T - 1), T)]
        out[name] = max((s.max() - s.min()).item() for s in diagonals)
        out[name + "_range"] = (S.max() - S.min()).item()
    return out
