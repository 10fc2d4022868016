"""Tokens, vocabularies, the course's sequence-to-sequence tasks, and batches.

Every task is generated here, deterministically from a seed, so that nothing
is downloaded and every figure can be remade. Two tasks:

* :func:`dates_task`: dates written by humans in many formats ("3rd of March
  2021", "03/03/21", "Wednesday, March 3, 2021") -> ISO "2021-03-03",
  character by character;
* :func:`translation_task`: a toy English -> French-like grammar, word by
  word, with reordering (adjectives follow the noun, in mirrored order; "never"
  splits into "ne ... jamais" around the verb) and a known word alignment, so
  that attention weights can be scored against it (chapter 4).

Conventions: token ids 0-3 are the special tokens pad, bos, eos and unk in
every vocabulary. A :class:`Batch` is batch first and padded on the right:
``src (B, S)``, ``src_mask (B, S)`` (True = real token), ``tgt_in (B, T)``
(bos + target) and ``tgt_out (B, T)`` (target + eos), both padded with pad.
"""

from __future__ import annotations

import calendar
import datetime
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3 in every vocabulary


class Vocab:
    """A token <-> id table: the four specials first, then the sorted distinct tokens."""

    def __init__(self, tokens: Iterable[str]):
        self.itos: list[str] = list(SPECIALS) + sorted(set(tokens) - set(SPECIALS))
        self.stoi: dict[str, int] = {tok: i for i, tok in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(4)

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens: {' '.join(self.itos[4:12])} ...)"

    def encode(self, tokens: list[str]) -> list[int]:
        """Tokens -> ids, unknown tokens -> unk_id. No bos or eos is added."""
        return [self.stoi.get(tok, self.unk_id) for tok in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids -> tokens, stopping at the first eos and dropping pad and bos."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.itos[i])
        return out


@dataclass
class Example:
    """One source sentence and its target, as token lists (no bos, no eos).

    alignment: pairs (target index, source index) of words that translate each
    other, or None when the task does not know them.
    """

    source: list[str]
    target: list[str]
    alignment: list[tuple[int, int]] | None = None


@dataclass
class Task:
    """A sequence-to-sequence task: vocabularies and three splits sharing no source string."""

    name: str
    src_vocab: Vocab
    tgt_vocab: Vocab
    train: list[Example]
    valid: list[Example]
    test: list[Example]
    info: dict = field(default_factory=dict)  # how it was generated (sizes, seed, lengths)


def _split(
    name: str,
    generate,
    n_train: int,
    n_valid: int,
    n_test: int,
    seed: int,
    info: dict,
    max_tries: int = 50,
) -> Task:
    """Draw distinct examples from ``generate(rng)`` and cut them into three splits."""
    rng = random.Random(seed)
    wanted = n_train + n_valid + n_test
    seen: set[tuple[str, ...]] = set()
    examples: list[Example] = []
    tries = 0
    while len(examples) < wanted:
        ex = generate(rng)
        key = tuple(ex.source)
        if key in seen:
            tries += 1
            if tries > max_tries * wanted:
                raise ValueError(
                    f"{name}: could draw only {len(examples)} distinct examples of the "
                    f"{wanted} asked for; ask for fewer or widen the lengths"
                )
            continue
        seen.add(key)
        examples.append(ex)
    train, valid, test = (
        examples[:n_train],
        examples[n_train : n_train + n_valid],
        examples[n_train + n_valid :],
    )
    src_vocab = Vocab(tok for ex in examples for tok in ex.source)
    tgt_vocab = Vocab(tok for ex in examples for tok in ex.target)
    return Task(name, src_vocab, tgt_vocab, train, valid, test, info)


# --------------------------------------------------------------------------- dates

_ORDINAL = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}
_MONTHS = list(calendar.month_name)[1:]
_DAYS = list(calendar.day_name)  # Monday first, as date.weekday() counts


def _ordinal(d: int) -> str:
    return f"{d}{_ORDINAL.get(d, 'th')}"


# Each format turns a datetime.date into a string; "%y" years are read as
# 1950-2049, and numeric dates put the day first (the European order).
DATE_FORMATS = {
    "ordinal": lambda d: f"{_ordinal(d.day)} of {_MONTHS[d.month - 1]} {d.year}",
    "slash_short": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year % 100:02d}",
    "weekday_long": lambda d: f"{_DAYS[d.weekday()]}, {_MONTHS[d.month - 1]} {d.day}, {d.year}",
    "month_day_year": lambda d: f"{_MONTHS[d.month - 1]} {d.day}, {d.year}",
    "day_month_year": lambda d: f"{d.day} {_MONTHS[d.month - 1]} {d.year}",
    "abbrev": lambda d: f"{d.day} {_MONTHS[d.month - 1][:3]} {d.year}",
    "abbrev_lower": lambda d: f"{_MONTHS[d.month - 1][:3].lower()} {d.day} {d.year}",
    "dotted": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
    "slash_long": lambda d: f"{d.day}/{d.month}/{d.year}",
    "dashed_abbrev": lambda d: f"{d.day:02d}-{_MONTHS[d.month - 1][:3]}-{d.year}",
    "weekday_short": lambda d: (
        f"{_DAYS[d.weekday()][:3]} {d.day} {_MONTHS[d.month - 1][:3]} {d.year % 100:02d}"
    ),
    "upper": lambda d: f"{_MONTHS[d.month - 1].upper()} {_ordinal(d.day).upper()} {d.year}",
}


def dates_task(
    n_train: int = 12_000,
    n_valid: int = 1_000,
    n_test: int = 1_000,
    seed: int = 0,
    first_year: int = 1950,
    last_year: int = 2049,
    formats: Iterable[str] | None = None,
) -> Task:
    """Date normalisation: a human-written date -> ISO "YYYY-MM-DD", character-level.

    Dates are drawn uniformly between 1 January ``first_year`` and 31 December
    ``last_year``, each written in one of :data:`DATE_FORMATS` (all of them
    when ``formats`` is None), drawn uniformly. Alignment is None.
    """
    names = list(DATE_FORMATS) if formats is None else list(formats)
    unknown = set(names) - set(DATE_FORMATS)
    if unknown:
        raise ValueError(f"unknown date formats {sorted(unknown)}; known: {list(DATE_FORMATS)}")
    start = datetime.date(first_year, 1, 1).toordinal()
    end = datetime.date(last_year, 12, 31).toordinal()

    def generate(rng: random.Random) -> Example:
        d = datetime.date.fromordinal(rng.randint(start, end))
        text = DATE_FORMATS[rng.choice(names)](d)
        return Example(list(text), list(d.isoformat()))

    info = dict(seed=seed, first_year=first_year, last_year=last_year, formats=names)
    return _split("dates", generate, n_train, n_valid, n_test, seed, info)


# --------------------------------------------------------------------- translation

# (English singular, English plural, French singular, French plural, gender)
NOUNS = [
    ("cat", "cats", "chat", "chats", "m"),
    ("dog", "dogs", "chien", "chiens", "m"),
    ("bird", "birds", "oiseau", "oiseaux", "m"),
    ("horse", "horses", "cheval", "chevaux", "m"),
    ("boy", "boys", "garçon", "garçons", "m"),
    ("friend", "friends", "ami", "amis", "m"),
    ("house", "houses", "maison", "maisons", "f"),
    ("car", "cars", "voiture", "voitures", "f"),
    ("girl", "girls", "fille", "filles", "f"),
    ("table", "tables", "table", "tables", "f"),
    ("apple", "apples", "pomme", "pommes", "f"),
    ("mouse", "mice", "souris", "souris", "f"),
]
# English -> French masculine singular, feminine singular, masculine plural, feminine plural
ADJECTIVES = {
    "red": ("rouge", "rouge", "rouges", "rouges"),
    "black": ("noir", "noire", "noirs", "noires"),
    "green": ("vert", "verte", "verts", "vertes"),
    "small": ("petit", "petite", "petits", "petites"),
    "big": ("grand", "grande", "grands", "grandes"),
    "old": ("vieux", "vieille", "vieux", "vieilles"),
    "happy": ("heureux", "heureuse", "heureux", "heureuses"),
    "white": ("blanc", "blanche", "blancs", "blanches"),
}
# English 3rd person singular, plural -> French singular, plural
VERBS = [
    ("sees", "see", "voit", "voient"),
    ("likes", "like", "aime", "aiment"),
    ("follows", "follow", "suit", "suivent"),
    ("watches", "watch", "regarde", "regardent"),
    ("finds", "find", "trouve", "trouvent"),
    ("hears", "hear", "entend", "entendent"),
]
PREPOSITIONS = {"with": "avec", "under": "sous", "behind": "derrière", "on": "sur", "in": "dans"}


def _noun_phrase(rng: random.Random, max_adjectives: int) -> tuple[list, list, list, bool]:
    """English and French words of a noun phrase, with the alignment inside it.

    -> (english, french, alignment (french index, english index) within the
    phrase, plural). French: determiner, noun, then the adjectives mirrored.
    """
    en_sg, en_pl, fr_sg, fr_pl, gender = rng.choice(NOUNS)
    plural = rng.random() < 0.3
    definite = rng.random() < 0.6
    adjectives = rng.sample(sorted(ADJECTIVES), rng.randint(0, max_adjectives))
    if plural:
        det_en, det_fr = ("the", "les") if definite else ("some", "des")
    elif definite:
        det_en, det_fr = "the", "le" if gender == "m" else "la"
    else:
        det_en, det_fr = "a", "un" if gender == "m" else "une"
    form = (0 if gender == "m" else 1) + (2 if plural else 0)
    english = [det_en, *adjectives, en_pl if plural else en_sg]
    french = [det_fr, fr_pl if plural else fr_sg]
    alignment = [(0, 0), (1, len(english) - 1)]
    for k, adj in enumerate(reversed(adjectives)):
        french.append(ADJECTIVES[adj][form])
        alignment.append((2 + k, len(adjectives) - k))  # english index of that adjective
    return english, french, alignment, plural


def _sentence(rng: random.Random, max_adjectives: int, p_never: float, p_prep: float) -> Example:
    """Subject [never] verb object [preposition noun-phrase], and its French."""
    en, fr, align = [], [], []

    def add(e_words, f_words, pairs):
        for t, s in pairs:
            align.append((len(fr) + t, len(en) + s))
        en.extend(e_words)
        fr.extend(f_words)

    s_en, s_fr, s_al, plural = _noun_phrase(rng, max_adjectives)
    add(s_en, s_fr, s_al)
    verb = rng.choice(VERBS)
    v_en, v_fr = (verb[1], verb[3]) if plural else (verb[0], verb[2])
    if rng.random() < p_never:  # "never sees" -> "ne voit jamais": one word around another
        add(["never", v_en], ["ne", v_fr, "jamais"], [(0, 0), (1, 1), (2, 0)])
    else:
        add([v_en], [v_fr], [(0, 0)])
    add(*_noun_phrase(rng, max_adjectives)[:3])
    if rng.random() < p_prep:
        prep = rng.choice(sorted(PREPOSITIONS))
        add([prep], [PREPOSITIONS[prep]], [(0, 0)])
        add(*_noun_phrase(rng, max_adjectives)[:3])
    return Example(en, fr, sorted(align))


def translation_task(
    n_train: int = 12_000,
    n_valid: int = 1_000,
    n_test: int = 1_000,
    seed: int = 0,
    min_len: int = 4,
    max_len: int = 16,
    max_adjectives: int = 2,
    p_never: float = 0.25,
    p_prep: float = 0.5,
) -> Task:
    """A toy English -> French-like translation with reordering and known alignment.

    Sentences are "subject [never] verb object [preposition noun-phrase]", each
    noun phrase a determiner, up to ``max_adjectives`` adjectives and a noun,
    singular or plural. The French side agrees in gender and number, puts
    adjectives after the noun in mirrored order ("the big red car" -> "la
    voiture rouge grande") and turns "never sees" into "ne voit jamais".
    Only sentences with ``min_len`` <= English words <= ``max_len`` are kept.
    Every example carries its word alignment (French index, English index).
    """
    if min_len > max_len:
        raise ValueError(f"min_len should be <= max_len, got {min_len} > {max_len}")

    def generate(rng: random.Random) -> Example:
        while True:
            ex = _sentence(rng, max_adjectives, p_never, p_prep)
            if min_len <= len(ex.source) <= max_len:
                return ex

    info = dict(
        seed=seed,
        min_len=min_len,
        max_len=max_len,
        max_adjectives=max_adjectives,
        p_never=p_never,
        p_prep=p_prep,
    )
    return _split("translation", generate, n_train, n_valid, n_test, seed, info)


# ------------------------------------------------------------------------ batches


@dataclass
class Batch:
    """A padded batch. src, src_mask: (B, S); tgt_in, tgt_out: (B, T).

    src_mask is True at real source tokens; tgt_in = bos + target and tgt_out
    = target + eos, both padded with pad_id (so tgt_out != pad_id marks the
    positions a loss counts).
    """

    src: torch.Tensor
    src_mask: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    examples: list[Example]

    def to(self, device) -> Batch:
        return Batch(
            self.src.to(device),
            self.src_mask.to(device),
            self.tgt_in.to(device),
            self.tgt_out.to(device),
            self.examples,
        )


def encode_source(task: Task, tokens: list[str], reverse_source: bool = False) -> torch.Tensor:
    """Source tokens -> LongTensor (S,) of ids, reversed when ``reverse_source``."""
    ids = task.src_vocab.encode(list(tokens))
    return torch.tensor(ids[::-1] if reverse_source else ids, dtype=torch.long)


def pad_rows(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long)


def make_batch(
    examples: list[Example], task: Task, reverse_source: bool = False, device=None
) -> Batch:
    """One padded :class:`Batch` of the given examples, in their order."""
    if not examples:
        raise ValueError("make_batch needs at least one example")
    sv, tv = task.src_vocab, task.tgt_vocab
    src = [encode_source(task, ex.source, reverse_source).tolist() for ex in examples]
    tgt = [tv.encode(ex.target) for ex in examples]
    src_t = pad_rows(src, sv.pad_id)  # (B, S)
    lengths = torch.tensor([len(s) for s in src])
    src_mask = torch.arange(src_t.shape[1])[None, :] < lengths[:, None]  # (B, S)
    batch = Batch(
        src_t,
        src_mask,
        pad_rows([[tv.bos_id] + t for t in tgt], tv.pad_id),
        pad_rows([t + [tv.eos_id] for t in tgt], tv.pad_id),
        list(examples),
    )
    return batch if device is None else batch.to(device)


def batches(
    examples: list[Example],
    task: Task,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    device=None,
    reverse_source: bool = False,
) -> Iterator[Batch]:
    """One pass over ``examples`` in batches of ``batch_size`` (the last may be smaller).

    shuffle: visit the examples in the order of ``torch.randperm(generator)``.
    reverse_source: feed each source backwards (Sutskever et al., 2014).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size should be >= 1, got {batch_size}")
    n = len(examples)
    order = torch.randperm(n, generator=generator).tolist() if shuffle else range(n)
    order = list(order)
    for start in range(0, n, batch_size):
        chunk = [examples[i] for i in order[start : start + batch_size]]
        yield make_batch(chunk, task, reverse_source, device)
