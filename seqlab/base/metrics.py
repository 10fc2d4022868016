r"""How good is an output sentence: exact match, token accuracy and BLEU.

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
  all is smoothed to 1 / (2^k * total n-grams), k counting such orders.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


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


def corpus_bleu(hyps: Sequence[Sequence], refs: Sequence[Sequence], max_n: int = 4) -> float:
    """Corpus BLEU in 0..100, equal to ``sacrebleu.corpus_bleu`` on space-joined tokens
    with ``tokenize="none"`` (its default "exp" smoothing)."""
    matches, totals, c, r = bleu_statistics(hyps, refs, max_n)
    if c == 0 or not any(matches):
        return 0.0
    log_p, smooth = 0.0, 1.0
    for m, t in zip(matches, totals, strict=True):
        if t == 0:  # no n-gram of this order at all: sacrebleu gives a precision of 0
            return 0.0
        if m == 0:
            smooth *= 2
            log_p += math.log(1 / (smooth * t))
        else:
            log_p += math.log(m / t)
    brevity = 1.0 if c >= r else math.exp(1 - r / c)
    return 100 * brevity * math.exp(log_p / max_n)
