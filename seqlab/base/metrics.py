r"""How good is an output sentence: exact match, token accuracy, BLEU; and perplexity.

Hypotheses and references are token lists (list[list[str]] or ids), one
reference per hypothesis.

* :func:`exact_match`: the fraction of hypotheses equal to their reference;
* :func:`token_accuracy`: the fraction of reference positions where the
  hypothesis has the same token (a missing token counts as wrong), summed
  over the corpus;
* :func:`corpus_bleu`: BLEU (Papineni et al., 2002), the geometric mean of the
  modified n-gram precisions, n = 1..4, counted over the whole corpus, times a
  brevity penalty:

  .. math::

     \text{BLEU} = 100 \cdot \min\!\left(1, e^{1 - r/c}\right)
     \exp\Big(\frac{1}{N}\sum_{n=1}^{N} \log p_n\Big)

  with c the hypotheses' total length and r the references'. As in sacrebleu
  (Post, 2018), whose default this reproduces, a precision with no match at
  all is smoothed to 1 / (2^k * total n-grams), k counting such orders
  (``smooth="exp"``); ``smooth="none"`` leaves it 0, and BLEU with it;
* :func:`sentence_bleu`: the same on one hypothesis and its reference;
* :func:`perplexity`: not a score of outputs but of the model's probabilities
  of the reference, :math:`\exp\big(-\frac{1}{N}\sum_{t} \log p(y_t \mid y_{<t}, x)\big)`
  over the N real (not padding) target tokens: the exponential of the
  per-token cross-entropy, the number of tokens a uniform guess would choose
  among (Jurafsky & Martin, ch. 3).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch

SMOOTHING = ("exp", "none")


def _check(hyps: Sequence, refs: Sequence) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"got {len(hyps)} hypotheses but {len(refs)} references")


def exact_match(hyps: Sequence[Sequence], refs: Sequence[Sequence]) -> float:
    """Fraction of hypotheses identical to their reference (0 for an empty corpus)."""
    _check(hyps, refs)
    return sum(list(h) == list(r) for h, r in zip(hyps, refs, strict=True)) / max(len(refs), 1)


def token_accuracy(hyps: Sequence[Sequence], refs: Sequence[Sequence]) -> float:
    """Fraction of reference tokens matched at the same position by the hypothesis."""
    _check(hyps, refs)
    pairs = zip(hyps, refs, strict=True)
    right = sum(sum(a == b for a, b in zip(h, r, strict=False)) for h, r in pairs)
    return right / max(sum(len(r) for r in refs), 1)


def ngram_counts(tokens: Sequence, n: int) -> Counter:
    """How often each n-gram (a tuple) occurs in tokens."""
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu_statistics(
    hyps: Sequence[Sequence], refs: Sequence[Sequence], max_n: int = 4
) -> tuple[list[int], list[int], int, int]:
    """-> (matches[n-1], totals[n-1], hypothesis length, reference length) over the corpus.

    A hypothesis n-gram matches at most as often as it occurs in the reference
    (the "modified" precision of Papineni et al., 2002).
    """
    _check(hyps, refs)
    matches, totals = [0] * max_n, [0] * max_n
    for h, r in zip(hyps, refs, strict=True):
        for n in range(1, max_n + 1):
            hc, rc = ngram_counts(list(h), n), ngram_counts(list(r), n)
            matches[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    return matches, totals, sum(len(h) for h in hyps), sum(len(r) for r in refs)


def corpus_bleu(
    hyps: Sequence[Sequence], refs: Sequence[Sequence], max_n: int = 4, smooth: str = "exp"
) -> float:
    """Corpus BLEU in 0..100, equal to ``sacrebleu.corpus_bleu`` on space-joined tokens
    with ``tokenize="none"`` and ``smooth_method=smooth`` ("exp", its default, or "none")."""
    if smooth not in SMOOTHING:
        raise ValueError(f"smooth should be one of {SMOOTHING}, got {smooth!r}")
    matches, totals, c, r = bleu_statistics(hyps, refs, max_n)
    if c == 0 or not any(matches):
        return 0.0
    log_p, halving = 0.0, 1.0
    for m, t in zip(matches, totals, strict=True):
        if t == 0:  # no n-gram of this order at all: sacrebleu gives a precision of 0
            return 0.0
        if m == 0 and smooth == "none":
            return 0.0
        if m == 0:
            halving *= 2
            log_p += math.log(1 / (halving * t))
        else:
            log_p += math.log(m / t)
    brevity = 1.0 if c >= r else math.exp(1 - r / c)
    return 100 * brevity * math.exp(log_p / max_n)


def sentence_bleu(hyp: Sequence, ref: Sequence, max_n: int = 4, smooth: str = "exp") -> float:
    """BLEU of one hypothesis against its reference: :func:`corpus_bleu` of a one-sentence
    corpus (sacrebleu's ``sentence_bleu`` also lowers max_n for sentences under 4 tokens)."""
    return corpus_bleu([hyp], [ref], max_n, smooth)


def perplexity(logits: torch.Tensor, targets: torch.Tensor, pad_id: int | None = None) -> float:
    """Perplexity of the targets under the model: exp of the mean negative log-likelihood
    per real token.

    logits (B, T, V) (or (N, V)), targets (B, T) (or (N,)) of token ids; positions whose
    target is ``pad_id`` are left out (None: none is). Every real token weighs the
    same, so a long sentence counts more than a short one. A model that gives
    all V tokens the same probability has perplexity V; a perfect one, 1. Over a
    corpus in several batches, take exp of the token-weighted mean NLL instead of
    averaging per-batch perplexities.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"expected logits (..., V) over targets (...), got {tuple(logits.shape)} "
            f"and {tuple(targets.shape)}"
        )
    log_probs = torch.log_softmax(logits, dim=-1)
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    real = torch.ones_like(targets, dtype=torch.bool) if pad_id is None else targets != pad_id
    if not real.any():
        raise ValueError("no real (non-padding) target token to score")
    nll = -picked[real].double().sum().item() / real.sum().item()
    return math.exp(nll) if nll < 700 else math.inf  # beyond 700 a float64 overflows
