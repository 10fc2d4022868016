"""seqlab.base.data: vocabularies, the two generated tasks, and padded batches."""

import datetime

import pytest
import torch

from seqlab.base.data import (
    BOS,
    EOS,
    PAD,
    UNK,
    Example,
    Vocab,
    batches,
    dates_task,
    encode_source,
    make_batch,
    translation_task,
)

pytestmark = pytest.mark.base


def test_vocab_puts_the_specials_first_then_sorted_tokens():
    v = Vocab(["b", "a", "b", "c"])
    assert v.itos == [PAD, BOS, EOS, UNK, "a", "b", "c"]
    assert (v.pad_id, v.bos_id, v.eos_id, v.unk_id) == (0, 1, 2, 3) and len(v) == 7
    assert v.encode(["c", "a", "zzz"]) == [6, 4, 3]
    assert v.decode([1, 6, 4, 0, 2, 5]) == ["c", "a"]  # bos and pad dropped, stops at eos


def test_dates_task_targets_are_the_iso_form_of_the_source_date():
    task = dates_task(n_train=300, n_valid=50, n_test=50, seed=3)
    for ex in task.train + task.valid + task.test:
        iso = "".join(ex.target)
        d = datetime.date.fromisoformat(iso)
        assert 1950 <= d.year <= 2049 and ex.alignment is None
        text = "".join(ex.source)
        assert str(d.year % 100).zfill(2) in text and str(d.day) in text


def test_tasks_are_deterministic_and_their_splits_share_no_source():
    for make in (dates_task, translation_task):
        a, b = make(200, 50, 50, seed=1), make(200, 50, 50, seed=1)
        assert [e.source for e in a.train] == [e.source for e in b.train]
        assert [e.source for e in make(200, 50, 50, seed=2).train] != [e.source for e in a.train]
        sources = [tuple(e.source) for e in a.train + a.valid + a.test]
        assert len(set(sources)) == len(sources) == 300
        assert (len(a.train), len(a.valid), len(a.test)) == (200, 50, 50)


def test_translation_task_reorders_adjectives_and_agrees_in_gender():
    from seqlab.base.data import ADJECTIVES

    task = translation_task(8000, 10, 10, seed=0, max_adjectives=2)
    pairs = {(" ".join(e.source), " ".join(e.target)) for e in task.train}
    # every adjective follows its noun: "la voiture rouge" for "the red car"
    found = [t for s, t in pairs if s.startswith("the red car ")]
    assert found and all(t.startswith("la voiture rouge ") for t in found)
    found = [t.split() for s, t in pairs if s.startswith("the big red ")]
    assert found and all(t[2] in ADJECTIVES["red"] and t[3] in ADJECTIVES["big"] for t in found)
    found = [t for s, t in pairs if s.startswith("the dog never sees ")]
    assert found and all(t.startswith("le chien ne voit jamais ") for t in found)


def test_translation_alignment_links_each_french_word_to_its_english_word():
    from seqlab.base.data import ADJECTIVES, NOUNS, PREPOSITIONS, VERBS

    lexicon = {}
    for en_sg, en_pl, fr_sg, fr_pl, _ in NOUNS:
        lexicon.setdefault(fr_sg, set()).add(en_sg)
        lexicon.setdefault(fr_pl, set()).add(en_pl)
    for en, forms in ADJECTIVES.items():
        for f in forms:
            lexicon.setdefault(f, set()).add(en)
    for en_sg, en_pl, fr_sg, fr_pl in VERBS:
        lexicon.setdefault(fr_sg, set()).add(en_sg)
        lexicon.setdefault(fr_pl, set()).add(en_pl)
    for en, fr in PREPOSITIONS.items():
        lexicon.setdefault(fr, set()).add(en)
    dets = {"le": "the", "la": "the", "les": "the", "un": "a", "une": "a", "des": "some"}
    for f, e in dets.items():
        lexicon.setdefault(f, set()).add(e)
    lexicon["ne"] = lexicon["jamais"] = {"never"}
    task = translation_task(500, 10, 10, seed=4, min_len=3, max_len=20)
    for ex in task.train:
        assert ex.alignment is not None
        assert sorted({t for t, _ in ex.alignment}) == list(range(len(ex.target)))
        for t, s in ex.alignment:
            assert ex.source[s] in lexicon[ex.target[t]], (ex, t, s)
    crossing = sum(
        any(t1 < t2 and s1 > s2 for t1, s1 in ex.alignment for t2, s2 in ex.alignment)
        for ex in task.train
    )
    assert crossing > 0.5 * len(task.train)  # most sentences need reordering


def test_translation_lengths_stay_within_bounds():
    task = translation_task(300, 10, 10, seed=0, min_len=6, max_len=9)
    assert all(6 <= len(e.source) <= 9 for e in task.train)
    with pytest.raises(ValueError, match="min_len should be <= max_len"):
        translation_task(10, 1, 1, min_len=5, max_len=4)


def test_asking_for_more_distinct_examples_than_exist_is_an_error():
    with pytest.raises(ValueError, match="distinct examples"):
        dates_task(400, 0, 0, first_year=2000, last_year=2000, formats=["dotted"])


def test_batch_pads_on_the_right_and_shifts_the_target():
    task = dates_task(50, 5, 5)
    exs = [
        Example(list("1/2/2003"), list("2003-02-01")),
        Example(list("3 May 2011"), list("2011-05-03")),
    ]
    b = make_batch(exs, task)
    assert b.src.shape == (2, 10) and b.src_mask.tolist()[0] == [True] * 8 + [False] * 2
    assert b.src[0, 8:].tolist() == [0, 0]
    v = task.tgt_vocab
    assert b.tgt_in[0].tolist() == [v.bos_id] + v.encode(list("2003-02-01"))
    assert b.tgt_out[0].tolist() == v.encode(list("2003-02-01")) + [v.eos_id]
    rev = make_batch(exs, task, reverse_source=True)
    assert rev.src[0, :8].tolist() == b.src[0, :8].flip(0).tolist()
    assert torch.equal(rev.src_mask, b.src_mask)
    assert encode_source(task, list("1/2"), reverse_source=True).tolist() == task.src_vocab.encode(
        list("2/1")
    )


def test_batches_cover_every_example_once_and_shuffle_reproducibly():
    task = dates_task(103, 5, 5)
    got = [ex for b in batches(task.train, task, 10) for ex in b.examples]
    assert got == task.train
    sizes = [b.src.shape[0] for b in batches(task.train, task, 10)]
    assert sizes == [10] * 10 + [3]

    def order(s):
        g = torch.Generator().manual_seed(s)
        return [
            "".join(e.source)
            for b in batches(task.train, task, 10, shuffle=True, generator=g)
            for e in b.examples
        ]

    assert order(0) == order(0) != order(1)
    assert sorted(order(0)) == sorted("".join(e.source) for e in task.train)
