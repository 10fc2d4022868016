"""Byte-pair encoding (Sennrich et al., 2016): the subword tokens GPT models read.

Training starts from the characters of a text split into words, and merges the most
frequent adjacent pair of symbols again and again; each merge adds one symbol to the
vocabulary. Encoding a new word replays the merges in the order they were learned.

:func:`train_bpe` learns the merges; :class:`BPE` encodes and decodes. The words are
split as Hugging Face's ``Whitespace`` pre-tokenizer splits them (runs of word
characters, runs of other non-space characters), and ties between equally frequent
pairs are broken as its ``BpeTrainer`` breaks them (the pair of lower symbol ids: the
characters numbered in code-point order, then each merge in turn), so the two learn
the same merges and the same ids from the same text (tests/test_tokenizer.py).
GPT-2 works on bytes and keeps spaces in its words (Radford et al., 2019); the idea
is the same.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise

WORD = re.compile(r"\w+|[^\w\s]+")  # Hugging Face's Whitespace pre-tokenizer


def pretokenize(text: str) -> list[str]:
    """The words BPE works inside: merges never cross a word's boundary."""
    return WORD.findall(text)


@dataclass
class BPE:
    """A trained byte-pair encoder: its vocabulary (symbol -> id) and its merges, in order."""

    vocab: dict[str, int]
    merges: list[tuple[str, str]]
    ranks: dict[tuple[str, str], int] = field(init=False, repr=False)

    def __post_init__(self):
        self.ranks = {pair: i for i, pair in enumerate(self.merges)}
        self.symbols = {i: s for s, i in self.vocab.items()}

    def tokenize(self, text: str) -> list[str]:
        """The text's symbols: each word's characters, merged by rank (lowest first)."""
        out = []
        for word in pretokenize(text):
            parts = list(word)
            while len(parts) > 1:
                pairs = [(self.ranks.get(p, len(self.ranks)), i) for i, p in
                         enumerate(pairwise(parts))]  # fmt: skip
                rank, i = min(pairs)
                if rank == len(self.ranks):
                    break
                parts[i : i + 2] = [parts[i] + parts[i + 1]]
            out.extend(parts)
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids; a character never seen in training raises KeyError (no byte fallback)."""
        return [self.vocab[s] for s in self.tokenize(text)]

    def decode(self, ids: list[int]) -> list[str]:
        """The symbols of ``ids`` (words are not rejoined: the split dropped the spaces)."""
        return [self.symbols[i] for i in ids]


def train_bpe(text: str, vocab_size: int, min_frequency: int = 2) -> BPE:
    """Learn merges from ``text`` until the vocabulary has ``vocab_size`` symbols or no
    pair occurs ``min_frequency`` times. Each step takes the most frequent pair (ties:
    the pair of lower ids), merges it in every word, and updates only the counts of
    the pairs that touched it, so training costs about the size of the text per merge
    at most, far less in practice."""
    counts = Counter(pretokenize(text))
    letters = Counter()
    for word, n in counts.items():
        for ch in word:
            letters[ch] += n
    alphabet = sorted(letters)
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    words = [[vocab[ch] for ch in word] for word in counts]
    freq = list(counts.values())
    pairs: Counter = Counter()
    where: dict[tuple[int, int], set[int]] = {}
    for w, (ids, n) in enumerate(zip(words, freq, strict=True)):
        for pair in pairwise(ids):
            pairs[pair] += n
            where.setdefault(pair, set()).add(w)
    heap = [(-n, pair) for pair, n in pairs.items()]
    heapq.heapify(heap)
    merges = []
    names = list(alphabet)
    while len(names) < vocab_size and heap:
        n, pair = heapq.heappop(heap)
        if -n != pairs.get(pair, 0):  # stale: its count changed since it was pushed
            if pairs.get(pair, 0) > 0:
                heapq.heappush(heap, (-pairs[pair], pair))
            continue
        if -n < min_frequency:
            break
        new = len(names)
        names.append(names[pair[0]] + names[pair[1]])
        merges.append((names[pair[0]], names[pair[1]]))
        touched = set()
        for w in where.pop(pair, ()):
            ids, f = words[w], freq[w]
            for old in pairwise(ids):
                pairs[old] -= f
                touched.add(old)
            merged, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                    merged.append(new)
                    i += 2
                else:
                    merged.append(ids[i])
                    i += 1
            words[w] = merged
            for now in pairwise(merged):
                pairs[now] += f
                touched.add(now)
                where.setdefault(now, set()).add(w)
        pairs.pop(pair, None)
        for p in touched:
            if pairs.get(p, 0) > 0 and p != pair:
                heapq.heappush(heap, (-pairs[p], p))
    return BPE({name: i for i, name in enumerate(names)}, merges)
