r"""Decoding: turning a conditional language model into an output sentence.

Every decoder of the course is driven through one function,
``step(tokens, state) -> (log_probs, new_state)``: tokens is a LongTensor
(N,), state a tensor whose first dimension is N (one row per hypothesis),
log_probs (N, V) the log-probabilities of the next token. Nothing here knows
whether the decoder is an RNN, an RNN with attention or a transformer.

* :func:`greedy_decode` feeds bos, then always the most likely token;
* :func:`beam_search` keeps the ``beam_size`` best partial hypotheses,
  ranked by their sum of log-probabilities; a hypothesis that produces eos
  leaves the beam, which then keeps one hypothesis fewer (Jurafsky & Martin,
  *Speech and Language Processing*, ch. 10), until ``beam_size`` hypotheses
  are finished or ``max_len`` tokens were generated. Finished hypotheses are
  ranked by

  .. math::  \text{score}(y) = \frac{\sum_t \log p(y_t \mid y_{<t}, x)}{|y|^{\alpha}}

  with :math:`\alpha` the ``length_penalty`` (0: the plain sum, which favours
  short sentences; 1: the mean log-probability per token). Dividing by
  :math:`|y|^{\alpha}` is the common simplification of the length penalty of
  Wu et al. (2016, sec. 7), who divide by
  :math:`\mathrm{lp}(y) = ((5 + |y|) / 6)^{\alpha}` and add a coverage penalty
  computed from the attention weights (left out here: it needs attention);
* :func:`rerank` re-scores finished hypotheses with either penalty
  (:func:`length_penalty_divisor`); the search itself ranks partial
  hypotheses by the plain sum, so re-ranking the output of a search with
  ``length_penalty=0`` gives what a search with the penalty returns;
* :func:`batched_beam_search` is the same search for many sentences at once,
  with every hypothesis of every sentence in one ``step`` call: the fast one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _check_state(state: torch.Tensor, rows: int | None = 1) -> None:
    if not isinstance(state, torch.Tensor) or state.dim() < 1:
        raise TypeError(f"state should be a tensor with a first (row) dimension, got {state!r}")
    if rows is not None and state.shape[0] != rows:
        raise ValueError(f"state should have first dimension {rows}, got {tuple(state.shape)}")


def greedy_decode(step: Step, state: torch.Tensor, bos_id: int, eos_id: int, max_len: int):
    """The most likely token at every step. state: (1, ...).

    -> list[int]: the generated tokens, bos excluded, eos included if produced,
    at most ``max_len`` of them.
    """
    _check_state(state)
    token = torch.full((1,), bos_id, dtype=torch.long, device=state.device)
    out: list[int] = []
    for _ in range(max_len):
        log_probs, state = step(token, state)  # (1, V)
        token = log_probs.argmax(dim=-1)  # (1,)
        out.append(int(token))
        if out[-1] == eos_id:
            break
    return out


PENALTIES = ("power", "wu")


def length_penalty_divisor(length: int, alpha: float, form: str = "power") -> float:
    """What a hypothesis's sum of log-probs is divided by, for ``length`` tokens.

    form "power": ``length ** alpha``, the common simplification (a length of 0
    counts as 1); "wu": ``((5 + length) / 6) ** alpha``, the length penalty of
    Wu et al. (2016, sec. 7, without their coverage penalty), 1 for one token.
    """
    if form not in PENALTIES:
        raise ValueError(f"form should be one of {PENALTIES}, got {form!r}")
    if form == "wu":
        return ((5 + length) / 6) ** alpha
    return max(length, 1) ** alpha


def _normalise(total: float, length: int, length_penalty: float) -> float:
    return total / length_penalty_divisor(length, length_penalty)


def rerank(
    hypotheses: list[tuple[list[int], float]], alpha: float, form: str = "power"
) -> list[tuple[list[int], float]]:
    """Finished hypotheses [(tokens, sum of log-probs)], as a search with
    ``length_penalty=0`` returns them, scored by sum / :func:`length_penalty_divisor`
    (len(tokens), alpha, form) instead. -> [(tokens, score)], best first."""
    ranked = [(seq, s / length_penalty_divisor(len(seq), alpha, form)) for seq, s in hypotheses]
    ranked.sort(key=lambda item: item[1], reverse=True)
    return ranked


def beam_search(
    step: Step,
    state: torch.Tensor,
    bos_id: int,
    eos_id: int,
    beam_size: int,
    max_len: int,
    length_penalty: float = 0.0,
    trace: list | None = None,
) -> list[tuple[list[int], float]]:
    """Beam search for one sentence. state: (1, ...).

    At each step every live hypothesis is extended by every token; the
    ``beam_size - len(finished)`` extensions with the largest sum of
    log-probs are kept; those ending in eos are finished and leave the beam.
    Stops when ``beam_size`` hypotheses are finished or ``max_len`` tokens
    were generated (the live ones then count as finished).
    -> [(tokens, score)], best score first, at most beam_size long; tokens
    exclude bos and include eos when produced; score = sum of log-probs /
    len(tokens) ** length_penalty.
    trace: a list that receives, after every step, {"live": [(tokens, sum)],
    "finished": [(tokens, sum)]}, for pictures of the search.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size should be >= 1, got {beam_size}")
    _check_state(state)
    live_tokens: list[list[int]] = [[]]
    live_scores = torch.zeros(1, dtype=torch.float64, device=state.device)  # (n,)
    last = torch.full((1,), bos_id, dtype=torch.long, device=state.device)  # (n,)
    finished: list[tuple[list[int], float]] = []
    for _ in range(max_len):
        log_probs, new_state = step(last, state)  # (n, V)
        V = log_probs.shape[-1]
        totals = live_scores[:, None] + log_probs.double()  # (n, V): sums of the extensions
        k = min(beam_size - len(finished), totals.numel())
        best, flat = totals.flatten().topk(k)  # ranked by the plain sum
        parents, tokens = flat // V, flat % V
        keep = []
        for score, parent, token in zip(
            best.tolist(), parents.tolist(), tokens.tolist(), strict=True
        ):
            seq = live_tokens[parent] + [token]
            if token == eos_id:
                finished.append((seq, score))
            else:
                keep.append((seq, score, parent))
        if trace is not None:
            trace.append({"live": [(seq, s) for seq, s, _ in keep], "finished": list(finished)})
        if not keep:
            break
        live_tokens = [seq for seq, _, _ in keep]
        live_scores = torch.tensor(
            [s for _, s, _ in keep], dtype=torch.float64, device=state.device
        )
        index = torch.tensor([p for _, _, p in keep], device=state.device)
        state = new_state[index]  # each survivor continues from its parent's state
        last = torch.tensor([seq[-1] for seq in live_tokens], device=state.device)
    else:
        finished.extend(zip(live_tokens, live_scores.tolist(), strict=True))
    ranked = [(seq, _normalise(s, len(seq), length_penalty)) for seq, s in finished]
    ranked.sort(key=lambda item: item[1], reverse=True)
    return ranked[:beam_size]


def one_at_a_time(step: Step) -> Step:
    """The same step, called once per hypothesis: the slow way, for speed comparisons."""

    def slow_step(tokens: torch.Tensor, state: torch.Tensor):
        outs = [step(tokens[i : i + 1], state[i : i + 1]) for i in range(tokens.shape[0])]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    return slow_step


def batched_beam_search(
    step: Step,
    state: torch.Tensor,
    bos_id: int,
    eos_id: int,
    beam_size: int,
    max_len: int,
    length_penalty: float = 0.0,
) -> list[list[tuple[list[int], float]]]:
    """:func:`beam_search` for B sentences at once. state: (B, ...), one row per sentence.

    Each sentence owns ``K = beam_size`` rows, sentence-major: ``step`` is
    called with N = B * K rows, row n belonging to sentence n // K (a decoder
    built for B sentences must accept this layout). Rows that hold no live
    hypothesis carry a score of -inf and are never chosen.
    -> one list per sentence, as :func:`beam_search` returns it.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size should be >= 1, got {beam_size}")
    _check_state(state, rows=None)
    B, K, dev = state.shape[0], beam_size, state.device
    state = state.repeat_interleave(K, dim=0)  # (B * K, ...)
    scores = torch.full((B, K), -torch.inf, dtype=torch.float64, device=dev)
    scores[:, 0] = 0.0  # one live hypothesis per sentence to start with
    history = torch.empty(B, K, 0, dtype=torch.long, device=dev)  # (B, K, t) tokens so far
    last = torch.full((B * K,), bos_id, dtype=torch.long, device=dev)
    n_finished = torch.zeros(B, dtype=torch.long, device=dev)
    finished: list[list[tuple[list[int], float]]] = [[] for _ in range(B)]
    rows = torch.arange(B, device=dev)[:, None]  # (B, 1)
    alive = scores > -torch.inf  # (B, K)
    for _ in range(max_len):
        log_probs, new_state = step(last, state)  # (B * K, V)
        V = log_probs.shape[-1]
        totals = scores[..., None] + log_probs.double().view(B, K, V)  # (B, K, V)
        best, flat = totals.view(B, K * V).topk(min(K, K * V), dim=1)  # (B, K), sorted
        parents, tokens = flat // V, flat % V
        # a sentence keeps K - (its finished hypotheses) extensions, as beam_search does
        chosen = (torch.arange(best.shape[1], device=dev)[None, :] < (K - n_finished)[:, None]) & (
            best > -torch.inf
        )
        history = torch.cat([history[rows, parents], tokens[..., None]], dim=2)  # (B, K, t+1)
        ends = chosen & (tokens == eos_id)
        if ends.any():
            for b, k in ends.nonzero().tolist():
                finished[b].append((history[b, k].tolist(), best[b, k].item()))
            n_finished += ends.sum(dim=1)
        alive = chosen & (tokens != eos_id)
        scores = torch.where(alive, best, torch.full_like(best, -torch.inf))
        if not alive.any():
            break
        state = new_state[(rows * K + parents).flatten()]  # (B * K, ...)
        last = tokens.flatten()
    else:
        for b, k in alive.nonzero().tolist():
            finished[b].append((history[b, k].tolist(), scores[b, k].item()))
    results = []
    for hyps in finished:
        ranked = [(seq, _normalise(s, len(seq), length_penalty)) for seq, s in hyps]
        ranked.sort(key=lambda item: item[1], reverse=True)
        results.append(ranked[:beam_size])
    return results


def exhaustive_search(
    step: Step,
    state: torch.Tensor,
    eos_id: int,
    max_len: int,
    bos_id: int,
    length_penalty: float = 0.0,
) -> list[tuple[list[int], float]]:
    """Every output sentence with its score, best first: what beam search approximates.

    Enumerates all V ** max_len continuations, so only for tiny vocabularies.
    state: (1, ...).
    """
    _check_state(state)
    out: list[tuple[list[int], float]] = []

    def expand(prefix: list[int], total: float, token: int, st: torch.Tensor) -> None:
        log_probs, st = step(torch.tensor([token], device=st.device), st)
        for tok, lp in enumerate(log_probs[0].double().tolist()):
            seq, score = prefix + [tok], total + lp
            if tok == eos_id or len(seq) == max_len:
                out.append((seq, _normalise(score, len(seq), length_penalty)))
            else:
                expand(seq, score, tok, st)

    expand([], 0.0, bos_id, state)
    out.sort(key=lambda item: item[1], reverse=True)
    return out
