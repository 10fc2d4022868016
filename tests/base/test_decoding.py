"""seqlab.base.decoding: greedy and beam search against exhaustive search on tiny decoders."""

import math

import pytest
import torch

from seqlab.base.decoding import (
    batched_beam_search,
    beam_search,
    exhaustive_search,
    greedy_decode,
    length_penalty_divisor,
    one_at_a_time,
    rerank,
)

pytestmark = pytest.mark.base

BOS, EOS = 1, 2


class TinyDecoder:
    """A random RNN decoder over a tiny vocabulary: the next token depends on the whole past.

    state (N, H) float64; step(tokens (N,), state (N, H)) -> (log_probs (N, V), state).
    eos_bias shifts eos's logit, to make hypotheses finish early (> 0) or late (< 0).
    """

    def __init__(self, V=4, H=5, seed=0, eos_bias=0.0, scale=2.0):
        g = torch.Generator().manual_seed(seed)
        self.E = torch.randn(V, H, generator=g, dtype=torch.float64) * scale
        self.W = torch.randn(H, H, generator=g, dtype=torch.float64)
        self.U = torch.randn(H, V, generator=g, dtype=torch.float64) * scale
        self.eos_bias = eos_bias
        self.h0 = torch.randn(1, H, generator=g, dtype=torch.float64)
        self.calls = []

    def step(self, tokens, state):
        self.calls.append(tokens.shape[0])
        h = torch.tanh(self.E[tokens] + state @ self.W)
        logits = h @ self.U
        logits[:, EOS] += self.eos_bias
        return torch.log_softmax(logits, dim=-1), h


def _rollout_log_prob(dec, tokens):
    state, prev, total = dec.h0, BOS, 0.0
    for tok in tokens:
        lp, state = dec.step(torch.tensor([prev]), state)
        total += lp[0, tok].item()
        prev = tok
    return total


def test_greedy_feeds_back_the_argmax_and_stops_after_eos():
    for seed in range(20):
        dec = TinyDecoder(seed=seed)
        out = greedy_decode(dec.step, dec.h0, BOS, EOS, max_len=6)
        state, prev = dec.h0, BOS
        for i, tok in enumerate(out):
            lp, state = dec.step(torch.tensor([prev]), state)
            assert tok == lp.argmax().item()
            assert tok != EOS or i == len(out) - 1
            prev = tok
        assert len(out) == 6 or out[-1] == EOS


def test_greedy_stops_at_max_len_without_eos():
    dec = TinyDecoder(seed=0, eos_bias=-50)
    assert len(greedy_decode(dec.step, dec.h0, BOS, EOS, max_len=7)) == 7
    assert greedy_decode(dec.step, dec.h0, BOS, EOS, max_len=0) == []
    dec = TinyDecoder(seed=0, eos_bias=50)
    assert greedy_decode(dec.step, dec.h0, BOS, EOS, max_len=7) == [EOS]


@pytest.mark.parametrize("length_penalty", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("seed", range(6))
def test_a_beam_as_wide_as_every_sentence_is_exhaustive_search(seed, length_penalty):
    dec = TinyDecoder(V=4, seed=seed)
    every = exhaustive_search(dec.step, dec.h0, EOS, 3, BOS, length_penalty)
    assert len(every) == 1 + 3 + 9 + 27  # eos after 0, 1, 2 tokens, or 3 tokens
    got = beam_search(dec.step, dec.h0, BOS, EOS, len(every), 3, length_penalty)
    assert [t for t, _ in got] == [t for t, _ in every]
    for (_, s), (_, e) in zip(got, every, strict=True):
        assert s == pytest.approx(e, abs=1e-9)
    for tokens, score in got[:5]:
        total = _rollout_log_prob(dec, tokens)
        assert score == pytest.approx(total / len(tokens) ** length_penalty, abs=1e-9)


@pytest.mark.parametrize("seed", range(30))
def test_beam_of_one_is_greedy(seed):
    dec = TinyDecoder(V=6, seed=seed)
    ((tokens, score),) = beam_search(dec.step, dec.h0, BOS, EOS, 1, 8)
    assert tokens == greedy_decode(dec.step, dec.h0, BOS, EOS, 8)
    assert score == pytest.approx(_rollout_log_prob(dec, tokens), abs=1e-9)


def test_some_decoder_where_greedy_misses_the_most_probable_sentence_and_beam_finds_it():
    misses = 0
    for seed in range(40):
        dec = TinyDecoder(V=4, seed=seed)
        best_tokens, best = exhaustive_search(dec.step, dec.h0, EOS, 4, BOS)[0]
        greedy = greedy_decode(dec.step, dec.h0, BOS, EOS, 4)
        assert _rollout_log_prob(dec, greedy) <= best + 1e-9
        beam = beam_search(dec.step, dec.h0, BOS, EOS, 3, 4)
        assert beam[0][1] >= _rollout_log_prob(dec, greedy) - 1e-9
        if greedy != best_tokens:
            misses += 1
    assert misses > 0


def test_hypotheses_that_finish_early_leave_the_beam():
    dec = TinyDecoder(V=5, seed=3, eos_bias=1.5)
    got = beam_search(dec.step, dec.h0, BOS, EOS, 4, 6)
    assert len(got) == 4
    ends = [t[-1] == EOS for t, _ in got]
    assert any(ends) and len({len(t) for t, _ in got}) > 1
    scores = [s for _, s in got]
    assert scores == sorted(scores, reverse=True)


def test_beam_rows_shrink_by_one_per_finished_hypothesis():
    dec = TinyDecoder(V=5, seed=3, eos_bias=1.5)
    dec.calls.clear()
    got = beam_search(dec.step, dec.h0, BOS, EOS, 4, 6)
    finished_lengths = sorted(len(t) for t, _ in got if t[-1] == EOS)
    live = 4
    for t, n in enumerate(dec.calls):
        if t == 0:
            assert n == 1
            continue
        live -= sum(1 for length in finished_lengths if length == t)
        assert n == live


def test_length_penalty_divides_the_sum_by_length_to_the_power():
    dec = TinyDecoder(V=4, seed=1, eos_bias=0.5)
    plain = beam_search(dec.step, dec.h0, BOS, EOS, 5, 5, 0.0)
    per_token = beam_search(dec.step, dec.h0, BOS, EOS, 5, 5, 1.0)
    assert {tuple(t) for t, _ in plain} == {tuple(t) for t, _ in per_token}  # same search
    sums = {tuple(t): s for t, s in plain}
    for t, s in per_token:
        assert s == pytest.approx(sums[tuple(t)] / len(t))
    # normalising favours longer sentences
    mean_len = lambda hyps: sum(len(t) for t, _ in hyps[:1])  # noqa: E731
    assert mean_len(per_token) >= mean_len(plain)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_reranking_a_plain_search_gives_the_search_with_the_penalty(alpha):
    dec = TinyDecoder(V=4, seed=1, eos_bias=0.5)
    plain = beam_search(dec.step, dec.h0, BOS, EOS, 5, 5, 0.0)
    penalised = beam_search(dec.step, dec.h0, BOS, EOS, 5, 5, alpha)
    got = rerank(plain, alpha)
    assert [t for t, _ in got] == [t for t, _ in penalised]
    assert [s for _, s in got] == pytest.approx([s for _, s in penalised], abs=1e-12)


def test_wu_length_penalty_is_one_for_one_token_and_grows_slower_than_the_power():
    """Wu et al. (2016, sec. 7): lp(y) = ((5 + |y|) / 6) ** alpha."""
    assert length_penalty_divisor(1, 0.7, "wu") == pytest.approx(1.0)
    assert length_penalty_divisor(7, 1.0, "wu") == pytest.approx(2.0)
    assert length_penalty_divisor(13, 0.5, "wu") == pytest.approx(3**0.5)
    for length in range(2, 30):
        assert length_penalty_divisor(length, 1.0, "wu") < length_penalty_divisor(length, 1.0)
    assert length_penalty_divisor(0, 1.0) == 1.0 and length_penalty_divisor(4, 0.0, "wu") == 1.0
    with pytest.raises(ValueError, match="form"):
        length_penalty_divisor(3, 1.0, "gnmt")
    hyps = [([3, EOS], -1.0), ([3, 3, 3, 3, 3, 3, EOS], -2.5)]
    assert rerank(hyps, 1.0, "wu")[0][0] == [3, EOS]  # -1 / (7/6) > -2.5 / 2
    assert rerank(hyps, 1.0)[0][0] == [3, 3, 3, 3, 3, 3, EOS]  # -1 / 2 < -2.5 / 7


def _random_case(seed, B):
    dec = TinyDecoder(V=7, H=6, seed=seed, eos_bias=[-1.0, 0.0, 1.0][seed % 3])
    g = torch.Generator().manual_seed(100 + seed)
    return dec, torch.randn(B, 6, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("beam_size", [1, 2, 5])
@pytest.mark.parametrize("length_penalty", [0.0, 0.7])
@pytest.mark.parametrize("seed", range(4))
def test_batched_beam_search_equals_one_sentence_at_a_time(seed, beam_size, length_penalty):
    dec, states = _random_case(seed, B=6)
    got = batched_beam_search(dec.step, states, BOS, EOS, beam_size, 7, length_penalty)
    assert len(got) == 6
    for b in range(6):
        want = beam_search(dec.step, states[b : b + 1], BOS, EOS, beam_size, 7, length_penalty)
        assert [t for t, _ in got[b]] == [t for t, _ in want]
        assert [s for _, s in got[b]] == pytest.approx([s for _, s in want], abs=1e-9)


def test_batched_beam_search_is_exhaustive_with_a_wide_beam():
    dec = TinyDecoder(V=4, seed=2)
    every = exhaustive_search(dec.step, dec.h0, EOS, 3, BOS, 0.3)
    (got,) = batched_beam_search(dec.step, dec.h0, BOS, EOS, 40, 3, 0.3)
    assert [t for t, _ in got] == [t for t, _ in every]
    assert batched_beam_search(dec.step, dec.h0, BOS, EOS, 3, 0) == [[([], 0.0)]]
    assert beam_search(dec.step, dec.h0, BOS, EOS, 3, 0) == [([], 0.0)]


def test_one_at_a_time_step_gives_the_same_search_with_one_row_per_call():
    dec = TinyDecoder(V=6, seed=5)
    want = beam_search(dec.step, dec.h0, BOS, EOS, 4, 6, 1.0)
    dec.calls.clear()
    got = beam_search(one_at_a_time(dec.step), dec.h0, BOS, EOS, 4, 6, 1.0)
    assert [t for t, _ in got] == [t for t, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-9)
    assert set(dec.calls) == {1}


def test_decoders_reject_states_without_one_row_and_bad_beams():
    dec = TinyDecoder()
    with pytest.raises(ValueError, match="first dimension 1"):
        greedy_decode(dec.step, torch.zeros(2, 5, dtype=torch.float64), BOS, EOS, 3)
    with pytest.raises(ValueError, match="beam_size should be >= 1, got 0"):
        beam_search(dec.step, dec.h0, BOS, EOS, 0, 3)
    assert math.isfinite(beam_search(dec.step, dec.h0, BOS, EOS, 2, 3)[0][1])


def test_beam_trace_records_the_beam_after_every_step():
    dec = TinyDecoder(V=5, seed=3, eos_bias=1.5)
    trace = []
    got = beam_search(dec.step, dec.h0, BOS, EOS, 3, 6, trace=trace)
    assert len(trace) == len(dec.calls)
    for t, snap in enumerate(trace):
        assert all(len(seq) == t + 1 for seq, _ in snap["live"])
        assert len(snap["live"]) + len(snap["finished"]) == 3
    final = {tuple(seq) for seq, _ in trace[-1]["finished"] + trace[-1]["live"]}
    assert final == {tuple(seq) for seq, _ in got}
