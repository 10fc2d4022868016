"""seqlab.base.metrics: exact match, token accuracy, and BLEU against sacrebleu."""

import random

import pytest

from seqlab.base.metrics import (
    bleu_statistics,
    corpus_bleu,
    exact_match,
    ngram_counts,
    sentence_bleu,
    token_accuracy,
)

pytestmark = pytest.mark.base

sacrebleu = pytest.importorskip("sacrebleu")


def _sacre(hyps, refs):
    return sacrebleu.corpus_bleu(
        [" ".join(h) for h in hyps], [[" ".join(r) for r in refs]], tokenize="none"
    ).score


def test_exact_match_and_token_accuracy_on_a_worked_example():
    refs = [list("2021-03-03"), list("1999-12-31"), list("abc")]
    hyps = [list("2021-03-03"), list("1999-12-30"), list("ab")]
    assert exact_match(hyps, refs) == pytest.approx(1 / 3)
    assert token_accuracy(hyps, refs) == pytest.approx((10 + 9 + 2) / 23)
    assert token_accuracy([list("abcdef")], [list("abc")]) == 1.0  # extra tokens are not counted
    assert exact_match([list("abcdef")], [list("abc")]) == 0.0
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        exact_match([[], []], [[]])


def test_modified_precision_clips_counts_by_the_reference():
    # Papineni et al. (2002): "the the the the the the the" against "the cat is on the mat"
    hyp, ref = "the the the the the the the".split(), "the cat is on the mat".split()
    matches, totals, c, r = bleu_statistics([hyp], [ref], max_n=1)
    assert (matches, totals, c, r) == ([2], [7], 7, 6)
    assert ngram_counts("a b a b".split(), 2)[("a", "b")] == 2


def test_bleu_of_a_perfect_corpus_is_100_and_of_an_unrelated_one_0():
    refs = [s.split() for s in ["the cat sat on the mat", "a dog ran in the park today"]]
    assert corpus_bleu(refs, refs) == pytest.approx(100.0)
    assert corpus_bleu([["x", "y", "z", "w", "v"]] * 2, refs) == 0.0


CASES = {
    "papineni": (
        [
            "It is a guide to action which ensures that the military always obeys the "
            "commands of the party".split()
        ],
        [
            "It is a guide to action that ensures that the military will forever heed "
            "Party commands".split()
        ],
    ),
    "short_hypothesis": (["the cat".split()], ["the cat is on the mat".split()]),
    "no_four_gram_match": (
        ["a b c d e".split(), "f g h".split()],
        ["a b x d e".split(), "f g y".split()],
    ),
    "hypothesis_shorter_than_four": (["a b c".split()], ["a b c".split()]),
}


@pytest.mark.parametrize("case", CASES)
def test_corpus_bleu_equals_sacrebleu_on_worked_cases(case):
    hyps, refs = CASES[case]
    assert corpus_bleu(hyps, refs) == pytest.approx(_sacre(hyps, refs), abs=1e-9)


@pytest.mark.parametrize("seed", range(25))
def test_corpus_bleu_equals_sacrebleu_on_random_corpora(seed):
    rng = random.Random(seed)
    words = "a b c d e f g".split()[: rng.randint(3, 7)]
    refs = [
        [rng.choice(words) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 8))
    ]
    hyps = []
    for r in refs:
        h = [w if rng.random() < 0.7 else rng.choice(words) for w in r]
        h = h[: rng.randint(0, len(h) + 1)] + [rng.choice(words)] * rng.randint(0, 2)
        hyps.append(h)
    assert corpus_bleu(hyps, refs) == pytest.approx(_sacre(hyps, refs), abs=1e-9)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("smooth", ["exp", "none"])
def test_corpus_bleu_equals_sacrebleu_with_and_without_smoothing(case, smooth):
    hyps, refs = CASES[case]
    want = sacrebleu.corpus_bleu(
        [" ".join(h) for h in hyps],
        [[" ".join(r) for r in refs]],
        tokenize="none",
        smooth_method=smooth,
    ).score
    assert corpus_bleu(hyps, refs, smooth=smooth) == pytest.approx(want, abs=1e-9)


def test_sentence_bleu_without_a_four_gram_match_is_zero_unless_smoothed():
    hyp, ref = "the cat sat on a mat".split(), "the cat sat on the mat".split()
    assert sentence_bleu(hyp, ref, smooth="none") == pytest.approx(
        sacrebleu.sentence_bleu(" ".join(hyp), [" ".join(ref)], smooth_method="none",
                                tokenize="none").score, abs=1e-9)  # fmt: skip
    assert sentence_bleu("a b c x".split(), "a b c d".split(), smooth="none") == 0.0
    assert sentence_bleu("a b c x".split(), "a b c d".split()) > 0.0
    with pytest.raises(ValueError, match="smooth should be"):
        corpus_bleu([hyp], [ref], smooth="floor")
