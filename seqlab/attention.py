r"""Attention: a decoder that looks back at every encoder state.

Chapter 3's encoder-decoder squeezes the whole source sentence into one
vector, the encoder's last state. Attention (Bahdanau et al., 2015; Luong et
al., 2015) lets the decoder, at every step, score each encoder state against
its own state, turn the scores into weights with a softmax, and read the
weighted sum of the encoder states, the *context*:

.. math::

    e_{s} = \operatorname{score}(q, k_s), \qquad
    \alpha_{s} = \frac{\exp e_{s}}{\sum_{s'} \exp e_{s'}}, \qquad
    c = \sum_s \alpha_{s} v_s

with the query :math:`q` (B, H) the decoder's state, the keys :math:`k_s` and
values :math:`v_s` the encoder states (B, S, H). Two scores:

- dot product (the "dot" score of Luong et al., 2015, sec. 3.1): :math:`e_s = k_s \cdot q`;
- additive (Bahdanau et al., 2015): :math:`e_s = v^\top \tanh(q W_q + k_s W_k)`.

The course's models use either score inside Bahdanau et al.'s decoder (the
query is the previous decoder state :math:`s_{t-1}`, the context enters the
recurrent step). Luong et al.'s own decoder differs: it scores its current
state :math:`h_t`, predicts from the attentional vector
:math:`\tilde h_t = \tanh(W_c [c_t; h_t])` and feeds it into the next step
(input feeding, their sec. 3.3); they also proposed a "general" score
:math:`h_t^\top W_a \bar h_s` and a "concat" one.

A bool ``mask`` (B, S) marks the real source positions (True) against the
padding (False): padded positions get weight exactly 0 and the weights of the
real positions sum to 1.

The module also holds the attention encoder-decoder of chapter 4
(:class:`AttentionSeq2Seq`: chapter 3's encoder read in both directions and
an :class:`AttentionDecoder`), which exposes the interface of chapter 3's
:class:`seqlab.seq2seq.Seq2Seq` so that chapter 3's decoding, training and
evaluation code runs on it unchanged, and the alignment scores that compare
attention weights with a task's true word alignment (Och & Ney, 2003).

The models the book ships, and the command that trains them, are chapter 4's
(:mod:`seqlab.chapters.attention`).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .base.data import Example, Task, make_batch
from .seq2seq import CELLS, Encoder, Seq2SeqConfig, cell_step, make_rnn

# ---------------------------------------------------------------------------
# The attention functions


def _check_attention_inputs(query, keys, values, mask) -> None:
    if query.dim() != 2:
        raise ValueError(f"query should be (B, H), got shape {tuple(query.shape)}")
    if keys.dim() != 3 or values.dim() != 3:
        raise ValueError(
            f"keys and values should be (B, S, H) and (B, S, Dv), got shapes "
            f"{tuple(keys.shape)} and {tuple(values.shape)}"
        )
    if keys.shape[:2] != values.shape[:2] or keys.shape[0] != query.shape[0]:
        raise ValueError(
            f"query {tuple(query.shape)}, keys {tuple(keys.shape)} and values "
            f"{tuple(values.shape)} should share B, and keys and values S"
        )
    if mask is not None:
        if mask.dtype != torch.bool or tuple(mask.shape) != tuple(keys.shape[:2]):
            raise ValueError(
                f"mask should be a bool tensor of shape {tuple(keys.shape[:2])} (True = real "
                f"position), got {mask.dtype} of shape {tuple(mask.shape)}"
            )


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the last dimension that ignores masked positions.

    scores: (B, S); mask: bool (B, S), True = real position, or None.
    -> weights (B, S): exactly 0 where mask is False, summing to 1 over the
    rest. The largest real score of each row is subtracted before ``exp``, so
    scores of any size give finite weights. Every row needs a real position.
    """
    if mask is not None:
        if not bool(mask.any(dim=-1).all()):
            raise ValueError("every row of mask needs at least one True (real) position")
        scores = torch.where(mask, scores, float("-inf"))
    shifted = scores - scores.max(dim=-1, keepdim=True).values  # <= 0: exp cannot overflow
    exps = torch.exp(shifted)  # exp(-inf) = 0 exactly at masked positions
    return exps / exps.sum(dim=-1, keepdim=True)


def dot_product_attention(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dot-product attention of one query per row (Luong et al., 2015), without scaling.

    query: (B, H), keys: (B, S, H), values: (B, S, Dv), mask: bool (B, S), True = real.
    scores[b, s] = keys[b, s] . query[b]; weights = softmax of the scores over
    the real positions; context[b] = sum_s weights[b, s] values[b, s].
    -> (context (B, Dv), weights (B, S)).
    """
    _check_attention_inputs(query, keys, values, mask)
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1)  # (B, S, H) @ (B, H, 1) -> (B, S)
    weights = masked_softmax(scores, mask)  # (B, S)
    context = (weights.unsqueeze(1) @ values).squeeze(1)  # (B, 1, S) @ (B, S, Dv) -> (B, Dv)
    return context, weights


def additive_scores(
    query: torch.Tensor, keys: torch.Tensor, W_q: torch.Tensor, W_k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """The scores of additive attention (Bahdanau et al., 2015).

    query: (B, Hq), keys: (B, S, Hk), W_q: (Hq, A), W_k: (Hk, A), v: (A,)
    -> scores (B, S): scores[b, s] = v . tanh(query[b] @ W_q + keys[b, s] @ W_k).
    """
    hidden = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k)  # (B, 1, A) + (B, S, A)
    return hidden @ v  # (B, S)


def additive_attention(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    W_q: torch.Tensor,
    W_k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive attention (Bahdanau et al., 2015).

    query: (B, Hq), keys: (B, S, Hk), values: (B, S, Dv), W_q: (Hq, A), W_k: (Hk, A),
    v: (A,), mask: bool (B, S), True = real.
    scores[b, s] = v . tanh(query[b] @ W_q + keys[b, s] @ W_k); softmax over the
    real positions. -> (context (B, Dv), weights (B, S)).
    """
    _check_attention_inputs(query, keys, values, mask)
    weights = masked_softmax(additive_scores(query, keys, W_q, W_k, v), mask)  # (B, S)
    context = (weights.unsqueeze(1) @ values).squeeze(1)  # (B, Dv)
    return context, weights


class DotProductAttention(nn.Module):
    """The "dot" score of Luong et al. (2015, sec. 3.1) as a module; it has no parameters.

    In the course's models it sits inside Bahdanau et al.'s decoder
    (:class:`AttentionDecoder`), not Luong et al.'s.

    forward(query (B, H), keys (B, S, H), values (B, S, Dv), mask (B, S) or None)
    -> (context (B, Dv), weights (B, S)); see :func:`dot_product_attention`.
    """

    def forward(self, query, keys, values, mask=None):
        return dot_product_attention(query, keys, values, mask)


class AdditiveAttention(nn.Module):
    """Bahdanau et al.'s (2015) additive attention, with its parameters.

    query_size Hq, key_size Hk, attention_size A: W_q (Hq, A), W_k (Hk, A), v (A,),
    initialised uniformly in +-1/sqrt(fan-in) like torch.nn.Linear's weights.
    forward(query (B, Hq), keys (B, S, Hk), values (B, S, Dv), mask (B, S) or None)
    -> (context (B, Dv), weights (B, S)); see :func:`additive_attention`.
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int):
        super().__init__()
        self.W_q = nn.Parameter(torch.empty(query_size, attention_size))
        self.W_k = nn.Parameter(torch.empty(key_size, attention_size))
        self.v = nn.Parameter(torch.empty(attention_size))
        for weight, fan_in in ((self.W_q, query_size), (self.W_k, key_size)):
            nn.init.uniform_(weight, -(fan_in**-0.5), fan_in**-0.5)
        nn.init.uniform_(self.v, -(attention_size**-0.5), attention_size**-0.5)

    def forward(self, query, keys, values, mask=None):
        return additive_attention(query, keys, values, self.W_q, self.W_k, self.v, mask)


# ---------------------------------------------------------------------------
# Alignment scores: attention weights against a task's true word alignment


def _as_list(weights, alignments):
    if isinstance(weights, torch.Tensor) and weights.dim() == 2:
        return [weights], [alignments]
    if len(weights) != len(alignments):
        raise ValueError(f"got {len(weights)} weight matrices but {len(alignments)} alignments")
    return list(weights), list(alignments)


def predicted_alignment(weights: torch.Tensor) -> set[tuple[int, int]]:
    """weights: (T, S), row t the attention of target word t over the source words.
    -> {(t, s)}: each target word linked to its most attended source word."""
    if weights.dim() != 2:
        raise ValueError(f"weights should be (T, S), got shape {tuple(weights.shape)}")
    best = weights.argmax(dim=1).tolist()
    return {(t, s) for t, s in enumerate(best)}


def alignment_accuracy(
    weights: torch.Tensor | Sequence[torch.Tensor],
    alignment: Sequence[tuple[int, int]] | Sequence[Sequence[tuple[int, int]]],
) -> float:
    """Share of target words whose most attended source word is truly aligned to them.

    weights: (T, S) for one sentence pair, row t the attention weights of
    target word t over the S source words, or a list of such matrices;
    alignment: the true links (target index, source index) of that pair, or a
    list of them (chapter 3's ``Example.alignment``). Target words without any
    true link do not count. Over a list, the share is over all counted words
    of all pairs together.
    """
    weights, alignments = _as_list(weights, alignment)
    hits = total = 0
    for w, links in zip(weights, alignments, strict=True):
        truth: dict[int, set[int]] = {}
        for t, s in links:
            truth.setdefault(t, set()).add(s)
        best = w.argmax(dim=1).tolist()
        for t, sources in truth.items():
            if t >= len(best):
                raise ValueError(f"alignment links target word {t}, weights have {len(best)} rows")
            total += 1
            hits += best[t] in sources
    if total == 0:
        raise ValueError("the alignments hold no links")
    return hits / total


def alignment_error_rate(
    weights: torch.Tensor | Sequence[torch.Tensor],
    alignment: Sequence[tuple[int, int]] | Sequence[Sequence[tuple[int, int]]],
    possible: Sequence[tuple[int, int]] | Sequence[Sequence[tuple[int, int]]] | None = None,
) -> float:
    r"""Alignment error rate (Och & Ney, 2003) of the attention's argmax alignment.

    The predicted alignment A links every target word (every row of weights)
    to its most attended source word (:func:`predicted_alignment`). With sure
    links S and possible links P (S is a subset of P),

    .. math:: \mathrm{AER} = 1 - \frac{|A \cap S| + |A \cap P|}{|A| + |S|}.

    Convention here: the toy tasks know one exact alignment, so by default it
    is both the sure and the possible set, S = P = ``alignment``, and AER is
    1 - F1 of the predicted links (0 = perfect). ``possible`` adds possible
    links (S is added to it). Counts are summed over a list of sentence pairs
    before the ratio, as Och & Ney do over a corpus. Arguments as in
    :func:`alignment_accuracy`.
    """
    if possible is not None:
        _, possibles = _as_list(weights, possible)
    weights, sure = _as_list(weights, alignment)
    if possible is None:
        possibles = sure
    a_and_s = a_and_p = size_a = size_s = 0
    for w, s_links, p_links in zip(weights, sure, possibles, strict=True):
        predicted = predicted_alignment(w)
        s_set = set(map(tuple, s_links))
        p_set = set(map(tuple, p_links)) | s_set
        a_and_s += len(predicted & s_set)
        a_and_p += len(predicted & p_set)
        size_a += len(predicted)
        size_s += len(s_set)
    if size_a + size_s == 0:
        raise ValueError("no predicted and no sure links: AER is undefined")
    return 1 - (a_and_s + a_and_p) / (size_a + size_s)


def _link_digits(target_positions: list[int], source_positions: list[int]) -> list[tuple[int, int]]:
    """Right-align target digits on source digits; leading target digits ("0" of "03",
    "20" of a two-digit year) link to every source digit, which decides them."""
    links = []
    k = min(len(target_positions), len(source_positions))
    for t, s in zip(target_positions[-k:], source_positions[-k:], strict=True):
        links.append((t, s))
    for t in target_positions[: len(target_positions) - k]:
        links.extend((t, s) for s in source_positions)
    return links


def dates_alignment(example: Example) -> list[tuple[int, int]]:
    """A word alignment for a dates example, which chapter 3's task does not record.

    The ISO target "YYYY-MM-DD" (character positions 0-3, 5-6, 8-9) is linked
    to the source characters that decide each part: the year's digits, the
    month's number or every letter of its name, the day's digits (an ordinal's
    suffix and a weekday decide nothing). Two-digit parts are right-aligned on
    the source digits; a digit the source does not write ("0" of "03", "20" of
    "21") links to all the digits of its part. The dashes link to nothing.
    -> sorted pairs (target index, source index).
    """
    text = "".join(example.source)
    if len(text) != len(example.source):
        raise ValueError("dates_alignment expects one character per source token")
    iso = "".join(example.target)
    month = int(iso[5:7])
    groups = [list(range(m.start(), m.end())) for m in re.finditer(r"\d+", text)]
    links = []
    if not re.search(r"[A-Za-z]", text):  # numeric: day, month, year
        day, month_digits, year = groups
        links += _link_digits([5, 6], month_digits)
    else:  # day and year in digits, the month by name
        day, year = groups[0], groups[-1]
        full = calendar.month_name[month]
        found = re.search(full, text, re.IGNORECASE) or re.search(full[:3], text, re.IGNORECASE)
        links += [(t, s) for t in (5, 6) for s in range(found.start(), found.end())]
    links += _link_digits([0, 1, 2, 3], year) + _link_digits([8, 9], day)
    return sorted(set(links))


# ---------------------------------------------------------------------------
# The attention encoder-decoder

SCORES = ("additive", "dot")


@dataclass
class AttentionConfig:
    """Sizes of an attention encoder-decoder; the first five as in chapter 3's Seq2SeqConfig."""

    src_vocab: int  # source vocabulary size
    tgt_vocab: int  # target vocabulary size, V
    emb: int = 32  # token embedding size
    hidden: int = 64  # H, the same for encoder and decoder
    cell: str = "gru"  # "gru" or "lstm"
    score: str = "additive"  # "additive" (Bahdanau et al., 2015) or "dot" (Luong et al.'s score)
    attention: int = 64  # A, the size of the additive score's hidden layer (unused for "dot")

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell should be one of {CELLS}, got {self.cell!r}")
        if self.score not in SCORES:
            raise ValueError(f"score should be one of {SCORES}, got {self.score!r}")

    def seq2seq(self) -> Seq2SeqConfig:
        """Chapter 3's config of the same sizes (its encoder is shared)."""
        return Seq2SeqConfig(self.src_vocab, self.tgt_vocab, self.emb, self.hidden, self.cell)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x: (B, S, ...) padded on the right, lengths: (B,) -> each row's first lengths[b]
    entries in reverse order, the padding left in place. Its own inverse."""
    B, S = x.shape[:2]
    pos = torch.arange(S, device=x.device)[None, :]  # (1, S)
    index = torch.where(pos < lengths[:, None], lengths[:, None] - 1 - pos, pos)  # (B, S)
    index = index.view(B, S, *[1] * (x.dim() - 2)).expand_as(x)
    return x.gather(1, index)


class BidirectionalEncoder(nn.Module):
    """Two of chapter 3's encoders, one reading the source left to right, one right to
    left, sharing their embedding: the bidirectional encoder of Bahdanau et al. (2015),
    except that the two directions are summed where they concatenate.

    run(src (B, S), src_mask (B, S)) -> (states (B, S, H), packed final state): the
    state at position s is the sum of the two directions' states there, so it
    describes the word at s with both its left and its right context; the
    final state (the decoder's first state) is the sum of the two finals.
    Bahdanau et al. concatenate the two states (sec. 3.2; states of size 2H)
    and start the decoder from tanh(W_s h_1 of the backward encoder)
    (appendix A.2.2); the sum keeps the states at the decoder's size H, so
    that the dot score needs no projection.
    """

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.left_to_right = Encoder(cfg)
        self.right_to_left = Encoder(cfg)
        self.right_to_left.embed = self.left_to_right.embed  # one embedding per source word
        self.embed = self.left_to_right.embed
        self.hidden = cfg.hidden

    def run(self, src: torch.Tensor, src_mask: torch.Tensor):
        lengths = src_mask.sum(dim=1)  # (B,)
        states, final = self.left_to_right.run(src, src_mask)  # (B, S, H), (B, H or 2H)
        back, back_final = self.right_to_left.run(reverse_padded(src, lengths), src_mask)
        # summed, not concatenated as in Bahdanau et al. (2015): see the docstring
        return states + reverse_padded(back, lengths), final + back_final

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor):
        states, final = self.run(src, src_mask)
        return states, final[:, : self.hidden]


class AttentionDecoder(nn.Module):
    r"""A decoder that reads the encoder states through attention (Bahdanau et al., 2015).

    At step t it sees three things: its previous state :math:`s_{t-1}`, the
    last token :math:`y_{t-1}`, and the context :math:`c_t`, the
    attention-weighted sum of all encoder states, with :math:`s_{t-1}` as
    the query:

    .. math::

        c_t, \alpha_t = \mathrm{attention}(s_{t-1}, h^{enc}, h^{enc}), \quad
        s_t = \mathrm{RNN}([e(y_{t-1}); c_t], s_{t-1}), \quad
        p(y_t \mid y_{<t}, x) = \mathrm{softmax}(W [s_t; c_t; e(y_{t-1})] + b).

    step(tokens (N,), state (N, H or 2H), keys (N, S, H), mask (N, S))
    -> (log_probs (N, V), new state, weights (N, S)).
    ``attention_fn``, when set, replaces seqlab's attention function of the
    same kind (same arguments), for example with one written in the exercise.
    """

    def __init__(self, cfg: AttentionConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.tgt_vocab, cfg.emb)
        self.rnn = make_rnn(cfg.cell, cfg.emb + cfg.hidden, cfg.hidden)
        if cfg.score == "additive":
            self.attention = AdditiveAttention(cfg.hidden, cfg.hidden, cfg.attention)
        else:
            self.attention = DotProductAttention()
        self.out = nn.Linear(2 * cfg.hidden + cfg.emb, cfg.tgt_vocab)
        self.hidden = cfg.hidden
        self.score = cfg.score
        self.attention_fn: Callable | None = None

    def attend(self, query, keys, mask):
        """(context (N, H), weights (N, S)) of the query (N, H) over keys (N, S, H)."""
        if self.score == "additive":
            a = self.attention
            fn = self.attention_fn or additive_attention
            return fn(query, keys, keys, a.W_q, a.W_k, a.v, mask)
        return (self.attention_fn or dot_product_attention)(query, keys, keys, mask)

    def step(self, tokens, state, keys, mask):
        emb = self.embed(tokens)  # (N, E)
        context, weights = self.attend(state[:, : self.hidden], keys, mask)  # (N, H), (N, S)
        state = cell_step(self.rnn, torch.cat([emb, context], dim=-1), state)  # the 3 inputs
        logits = self.out(torch.cat([state[:, : self.hidden], context, emb], dim=-1))  # (N, V)
        return torch.log_softmax(logits, dim=-1), state, weights

    def forward(self, tgt_in, state, keys, mask):
        """Teacher forcing: tgt_in (B, T) -> (log_probs (B, T, V), weights (B, T, S))."""
        out, weights = [], []
        for t in range(tgt_in.shape[1]):
            log_probs, state, w = self.step(tgt_in[:, t], state, keys, mask)
            out.append(log_probs)
            weights.append(w)
        return torch.stack(out, dim=1), torch.stack(weights, dim=1)


class AttentionSeq2Seq(nn.Module):
    """Chapter 3's encoder, read in both directions (:class:`BidirectionalEncoder`), with an
    :class:`AttentionDecoder` (Bahdanau et al., 2015).

    The same interface as :class:`seqlab.seq2seq.Seq2Seq`, so chapter 3's
    training (:func:`seqlab.seq2seq.train_seq2seq`), decoding and evaluation
    (:func:`seqlab.seq2seq.evaluate`, greedy and beam) run on it unchanged:
    forward(src (B, S), src_mask (B, S), tgt_in (B, T)) -> log-probabilities
    (B, T, V) (valid logits for a cross-entropy), and
    decoder_start(src, src_mask) -> (step, state).
    :meth:`forward_with_weights` also returns the attention weights.
    """

    def __init__(self, cfg: AttentionConfig):
        super().__init__()
        self.config = cfg
        self.encoder = BidirectionalEncoder(cfg.seq2seq())
        self.decoder = AttentionDecoder(cfg)

    @property
    def attention_fn(self) -> Callable | None:
        """The attention function the decoder calls (None: seqlab's own)."""
        return self.decoder.attention_fn

    @attention_fn.setter
    def attention_fn(self, fn: Callable | None) -> None:
        self.decoder.attention_fn = fn

    def forward_with_weights(self, src, src_mask, tgt_in):
        """-> (log_probs (B, T, V), weights (B, T, S)), with teacher forcing."""
        keys, state = self.encoder.run(src, src_mask)  # (B, S, H), (B, H or 2H)
        return self.decoder(tgt_in, state, keys, src_mask)

    def forward(self, src, src_mask, tgt_in):
        return self.forward_with_weights(src, src_mask, tgt_in)[0]

    @torch.no_grad()
    def decoder_start(self, src: torch.Tensor, src_mask: torch.Tensor):
        """Encode the source and return the decoder as ``(step, state)``.

        src, src_mask: (1, S) for greedy and beam search, or (B, S) for the
        batched searches of chapter 3, whose N = B * K rows are sentence-major
        (row n belongs to sentence n // K). The encoder states stay in the
        closure; only the decoder's own state, (N, H) or (N, 2H), travels with
        the hypotheses. step(tokens (N,), state (N, ...)) -> (log_probs (N, V),
        new_state); the attention weights of every call are appended to
        ``step.weights`` as (N, S) tensors.
        """
        keys, state = self.encoder.run(src, src_mask)  # (B, S, H), (B, ...)
        return search_step(self.decoder, keys, src_mask), state


def search_step(decoder: nn.Module, keys: torch.Tensor, src_mask: torch.Tensor):
    """The ``step(tokens, state) -> (log_probs, state)`` that chapter 3's searches call,
    for an attention decoder (``decoder.step(tokens, state, keys, mask)`` returning
    log-probabilities, state and weights) over encoder states ``keys`` (B, S, H): each
    sentence's keys are repeated for its K = N / B hypotheses, and the weights of every
    call are appended to ``step.weights``."""
    B = keys.shape[0]

    @torch.no_grad()
    def step(tokens: torch.Tensor, state: torch.Tensor):
        K = tokens.shape[0] // B  # hypotheses per sentence
        log_probs, state, weights = decoder.step(
            tokens, state, keys.repeat_interleave(K, dim=0), src_mask.repeat_interleave(K, 0)
        )
        step.weights.append(weights)
        return log_probs, state

    step.weights = []
    return step


# ---------------------------------------------------------------------------
# Attention weights of a trained model, and its alignment scores


@torch.no_grad()
def attention_weights(
    model: AttentionSeq2Seq,
    task: Task,
    examples: Sequence[Example],
    targets: Sequence[Sequence[str]] | None = None,
    batch_size: int = 250,
) -> list[torch.Tensor]:
    """The attention weights along each example's target, with teacher forcing.

    targets: the target token lists to force (default: the examples' true
    targets). -> one (T_i + 1, S_i) tensor per example, on the CPU: row t is
    the attention while predicting target token t (the last row: eos),
    column s the source token s.
    """
    model.eval()
    device = next(model.parameters()).device
    if targets is not None:
        examples = [Example(ex.source, list(t)) for ex, t in zip(examples, targets, strict=True)]
    out = []
    for start in range(0, len(examples), batch_size):
        chunk = list(examples[start : start + batch_size])
        batch = make_batch(chunk, task, device=device)
        _, weights = model.forward_with_weights(batch.src, batch.src_mask, batch.tgt_in)
        for b, ex in enumerate(chunk):
            out.append(weights[b, : len(ex.target) + 1, : len(ex.source)].float().cpu())
    return out


def alignment_scores(
    model: AttentionSeq2Seq, task: Task, examples: Sequence[Example], batch_size: int = 250
) -> dict[str, float]:
    """{"accuracy", "aer"} of the model's teacher-forced attention against the examples'
    true alignment (:func:`alignment_accuracy`, :func:`alignment_error_rate`; the eos
    row is left out)."""
    examples = [ex for ex in examples if ex.alignment is not None]
    if not examples:
        raise ValueError("no example carries an alignment")
    weights = [w[:-1] for w in attention_weights(model, task, examples, batch_size=batch_size)]
    links = [ex.alignment for ex in examples]
    return {
        "accuracy": alignment_accuracy(weights, links),
        "aer": alignment_error_rate(weights, links),
    }
