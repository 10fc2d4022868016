"""seqlab.tokenizer: byte-pair encoding, checked against Hugging Face's tokenizers."""

import json
from pathlib import Path

import pytest

from seqlab.tokenizer import BPE, pretokenize, train_bpe

pytestmark = pytest.mark.gpt_prompting

BOOK = Path(__file__).resolve().parents[1] / "book"


def _hf_bpe(text: str, vocab_size: int, min_frequency: int = 2):
    """Hugging Face's BpeTrainer on the same words (its Whitespace pre-tokenizer)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False
    )
    tok.train_from_iterator([text], trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return tok, model["vocab"], merges


def test_the_classic_example_merges_the_most_frequent_pair_first():
    # Sennrich et al. (2016), fig. 1's words: low x5, lower x2, newest x6, widest x3 (10
    # letters, so 4 merges). e-s and s-t occur 9 times, e-s has the lower ids; then es-t
    # (9); l-o and o-w 7, l-o has the lower ids; then lo-w (7). An unseen word reuses them.
    text = " ".join(["low"] * 5 + ["lower"] * 2 + ["newest"] * 6 + ["widest"] * 3)
    bpe = train_bpe(text, vocab_size=14)
    assert bpe.merges == [("e", "s"), ("es", "t"), ("l", "o"), ("lo", "w")]
    assert bpe.tokenize("lowest") == ["low", "est"]
    assert bpe.decode(bpe.encode("newest low")) == bpe.tokenize("newest low")


def test_merges_stop_at_min_frequency_and_never_cross_words():
    bpe = train_bpe("ab ab cd", vocab_size=100, min_frequency=2)
    assert bpe.merges == [("a", "b")]
    assert pretokenize("it's 3.5x, ok!") == ["it", "'", "s", "3", ".", "5x", ",", "ok", "!"]
    assert train_bpe("ab ab", vocab_size=3).merges == [("a", "b")]  # the size is the limit
    assert isinstance(bpe, BPE) and bpe.vocab["ab"] == len(bpe.vocab) - 1


@pytest.mark.parametrize("vocab_size", [300, 1500])
def test_the_same_merges_and_ids_as_hugging_face_on_the_books_text(vocab_size):
    text = "\n".join(p.read_text() for p in sorted(BOOK.glob("*.md")))
    ours = train_bpe(text, vocab_size)
    tok, vocab, merges = _hf_bpe(text, vocab_size)
    assert ours.merges == merges
    assert ours.vocab == vocab
    sample = (BOOK / "gpt_prompting.md").read_text()[:4000]
    assert ours.encode(sample) == tok.encode(sample).ids
