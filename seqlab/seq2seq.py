r"""The encoder-decoder of Sutskever et al. (2014) and Cho et al. (2014), with a GRU or an LSTM.

A language model predicts the next word from the previous ones,
:math:`p(y_t \mid y_{<t})`. A *conditional* language model also reads a
source sentence :math:`x`: :math:`p(y_t \mid y_{<t}, x)`. Here the
:class:`Encoder` reads x into one vector, its final hidden state, and the
decoder is a language model started from that vector:

.. math::

    h^{enc}_s = \mathrm{RNN}(e(x_s), h^{enc}_{s-1}), \qquad
    h^{dec}_0 = h^{enc}_S, \qquad
    h^{dec}_t = \mathrm{RNN}(e(y_{t-1}), h^{dec}_{t-1}), \qquad
    p(y_t \mid y_{<t}, x) = \mathrm{softmax}(W h^{dec}_t + b).

That final vector is everything the decoder knows about the source: the
bottleneck that attention (chapter 4) removes. Training feeds the decoder the
true previous token (teacher forcing) and minimises :func:`sequence_nll`.

The recurrent layers are chapter 2's explicit :class:`seqlab.lstm.GRU` and
:class:`seqlab.lstm.LSTM`. For decoding, :meth:`Seq2Seq.decoder_start`
exposes the ``step(tokens, state)`` interface of :mod:`seqlab.base.decoding`.

The models the book ships, and the command that trains them, are chapter 3's
(:mod:`seqlab.chapters.seq2seq`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base.data import Batch, Example, Task, batches, dates_task, make_batch, translation_task
from .base.decoding import batched_beam_search, beam_search, greedy_decode
from .base.env import seed as seed_everything
from .base.metrics import corpus_bleu, exact_match, token_accuracy
from .base.train import History, train
from .lstm import GRU, LSTM, gru_cell, lstm_cell

CELLS = ("gru", "lstm")


@dataclass
class Seq2SeqConfig:
    """Sizes of an encoder-decoder."""

    src_vocab: int  # source vocabulary size
    tgt_vocab: int  # target vocabulary size, V
    emb: int = 32  # token embedding size, the RNNs' input size D
    hidden: int = 128  # H, the same for encoder and decoder (the decoder starts from h_S)
    cell: str = "gru"  # "gru" (Cho et al., 2014) or "lstm" (Hochreiter & Schmidhuber, 1997)

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell should be one of {CELLS}, got {self.cell!r}")


def make_rnn(cell: str, input_size: int, hidden: int) -> nn.Module:
    """Chapter 2's explicit recurrent layer of kind ``cell`` ("gru" or "lstm"), input size D,
    hidden size H; an LSTM's forget gate starts open (bias 1)."""
    return GRU(input_size, hidden) if cell == "gru" else LSTM(input_size, hidden, forget_bias=1.0)


def cell_step(rnn: nn.Module, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """One recurrent step of ``rnn`` (from :func:`make_rnn`) on a packed state.

    x: (N, D); state: h (N, H) for a GRU, [h, c] (N, 2H) for an LSTM -> the new state, same shape.
    """
    if isinstance(rnn, GRU):
        return gru_cell(x, state, *rnn.weights())
    h, c = state.chunk(2, dim=-1)
    return torch.cat(lstm_cell(x, h, c, *rnn.weights()), dim=-1)


class Encoder(nn.Module):
    """Reads a padded source batch. forward(src (B, S), src_mask (B, S))
    -> (states (B, S, H), final (B, H)).

    A padded position leaves the state unchanged, so ``final`` is the state
    after each sentence's last real token; ``states`` is 0 at padded
    positions. :meth:`run` also returns an LSTM's cell.
    """

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.src_vocab, cfg.emb)
        self.rnn = make_rnn(cfg.cell, cfg.emb, cfg.hidden)
        self.hidden = cfg.hidden

    def run(self, src: torch.Tensor, src_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (states (B, S, H), packed final state: h (B, H), or [h, c] (B, 2H) for an LSTM)."""
        if src.dim() != 2 or src.shape != src_mask.shape:
            raise ValueError(
                f"expected src and src_mask of the same shape (B, S), got "
                f"{tuple(src.shape)} and {tuple(src_mask.shape)}"
            )
        xs = self.embed(src)  # (B, S, D)
        B, S, _ = xs.shape
        width = self.hidden * (2 if isinstance(self.rnn, LSTM) else 1)
        state = xs.new_zeros(B, width)
        states = []
        for s in range(S):
            new = cell_step(self.rnn, xs[:, s], state)
            state = torch.where(src_mask[:, s, None], new, state)  # pads keep the state
            states.append(torch.where(src_mask[:, s, None], state[:, : self.hidden], 0.0))
        return torch.stack(states, dim=1), state  # (B, S, H), (B, H or 2H)

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        states, state = self.run(src, src_mask)
        return states, state[:, : self.hidden]


class Decoder(nn.Module):
    """A conditional language model started from the encoder's final state.

    forward(tgt_in (B, T), state (B, H) or (B, 2H)) -> logits (B, T, V), teacher forced.
    """

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.tgt_vocab, cfg.emb)
        self.rnn = make_rnn(cfg.cell, cfg.emb, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.tgt_vocab)
        self.hidden = cfg.hidden

    def forward(self, tgt_in: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        xs = self.embed(tgt_in)  # (B, T, D)
        hs = []
        for t in range(xs.shape[1]):
            state = cell_step(self.rnn, xs[:, t], state)
            hs.append(state[:, : self.hidden])
        return self.out(torch.stack(hs, dim=1))  # (B, T, V)

    def step(self, tokens: torch.Tensor, state: torch.Tensor):
        """tokens (N,), state (N, H or 2H) -> (log_probs (N, V), new state)."""
        state = cell_step(self.rnn, self.embed(tokens), state)
        return torch.log_softmax(self.out(state[:, : self.hidden]), dim=-1), state


class Seq2Seq(nn.Module):
    """Encoder-decoder without attention (Sutskever et al., 2014; Cho et al., 2014).

    forward(src (B, S), src_mask (B, S), tgt_in (B, T)) -> logits (B, T, V),
    with teacher forcing: tgt_in is bos followed by the true target.
    """

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor
    ) -> torch.Tensor:
        _, state = self.encoder.run(src, src_mask)
        return self.decoder(tgt_in, state)

    @torch.no_grad()
    def decoder_start(self, src: torch.Tensor, src_mask: torch.Tensor):
        """Encode the source and return the decoder as ``(step, state)``.

        src, src_mask: (1, S) for :func:`seqlab.base.decoding.greedy_decode` and
        :func:`~seqlab.base.decoding.beam_search`; (B, S) works too, for
        :func:`~seqlab.base.decoding.batched_beam_search` (state rows are
        independent here, so any row layout is accepted).
        step(tokens (N,), state (N, ...)) -> (log_probs (N, V), new_state),
        without gradients; state is h (N, H) for a GRU, [h, c] (N, 2H) for an LSTM.
        """
        _, state = self.encoder.run(src, src_mask)

        @torch.no_grad()
        def step(tokens: torch.Tensor, state: torch.Tensor):
            return self.decoder.step(tokens, state)

        return step, state


def sequence_nll(logits: torch.Tensor, targets: torch.Tensor, pad_id: int) -> torch.Tensor:
    """logits (B, T, V), targets (B, T) -> 0-dim: mean negative log-likelihood over the
    target positions that are not pad_id (every real token weighs the same)."""
    log_probs = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    real = targets != pad_id
    return -(picked * real).sum() / real.sum()


def batch_loss(model: nn.Module, batch: Batch, pad_id: int = 0) -> torch.Tensor:
    """The teacher-forced :func:`sequence_nll` of a batch (the fast fused version)."""
    logits = model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=pad_id)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def mean_nll(
    model: nn.Module,
    task: Task,
    examples: list[Example],
    batch_size: int = 500,
    reverse_source: bool = False,
) -> float:
    """The teacher-forced loss per target token (eos included) over ``examples``."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in batches(examples, task, batch_size, device=_device(model),
                         reverse_source=reverse_source):  # fmt: skip
        n = (batch.tgt_out != task.tgt_vocab.pad_id).sum().item()
        total += batch_loss(model, batch, task.tgt_vocab.pad_id).item() * n
        count += n
    model.train(was_training)
    return total / max(count, 1)


def train_seq2seq(
    model: nn.Module,
    task: Task,
    epochs: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    reverse_source: bool = False,
    seed: int = 0,
    clip_norm: float | None = 1.0,
    eval_every: int = 200,
    eval_examples: int = 500,
    progress: bool = False,
) -> History:
    """Teacher-forced training with Adam (seqlab.base.train's loop), on the model's device.

    Every epoch visits the training examples in a new order. History.eval_loss
    is the validation loss per token (the first ``eval_examples`` of
    task.valid), every ``eval_every`` steps.
    """
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    pad_id = task.tgt_vocab.pad_id

    def stream():
        for _ in range(epochs):
            yield from batches(task.train, task, batch_size, shuffle=True, generator=g,
                               reverse_source=reverse_source)  # fmt: skip

    steps = epochs * -(-len(task.train) // batch_size)
    valid = task.valid[:eval_examples]
    history = train(
        model,
        stream(),
        lambda m, b: batch_loss(m, b, pad_id),
        torch.optim.Adam(model.parameters(), lr=lr),
        steps,
        clip_norm=clip_norm,
        progress=progress,
        desc=f"seq2seq {task.name}",
        eval_fn=lambda m: mean_nll(m, task, valid, reverse_source=reverse_source),
        eval_every=eval_every,
    )
    return history


# ---------------------------------------------------------------------- evaluation


def default_max_len(task: Task) -> int:
    """Room for the longest training target, its eos, and a few tokens more."""
    return max(len(ex.target) for ex in task.train) + 5


@torch.no_grad()
def batched_greedy(step, state: torch.Tensor, bos_id: int, eos_id: int, max_len: int):
    """:func:`seqlab.base.decoding.greedy_decode` for B sentences at once. state: (B, ...).

    -> list of B token lists, each as greedy_decode returns it.
    """
    B = state.shape[0]
    token = torch.full((B,), bos_id, dtype=torch.long, device=state.device)
    done = torch.zeros(B, dtype=torch.bool, device=state.device)
    out = []
    for _ in range(max_len):
        log_probs, state = step(token, state)
        token = log_probs.argmax(dim=-1)  # (B,)
        out.append(torch.where(done, -1, token))
        done = done | (token == eos_id)
        if done.all():
            break
    if not out:
        return [[] for _ in range(B)]
    rows = torch.stack(out, dim=1).tolist()  # (B, t), -1 after eos
    return [[tok for tok in row if tok >= 0] for row in rows]


@torch.no_grad()
def decode_ids(
    model: nn.Module,
    task: Task,
    examples: list[Example],
    method: str = "greedy",
    beam_size: int = 5,
    length_penalty: float = 0.0,
    reverse_source: bool = False,
    max_len: int | None = None,
    batch_size: int = 250,
    batched: bool = True,
) -> list[list[tuple[list[int], float]]]:
    """The decoder's hypotheses (ids, score) for each example, best first.

    method "greedy" returns one hypothesis per example with score nan;
    "beam" up to beam_size. batched=False decodes one sentence at a time
    with the reference functions of :mod:`seqlab.base.decoding`.
    """
    if method not in ("greedy", "beam"):
        raise ValueError(f"method should be 'greedy' or 'beam', got {method!r}")
    model.eval()
    tv = task.tgt_vocab
    max_len = default_max_len(task) if max_len is None else max_len
    device = _device(model)
    out: list[list[tuple[list[int], float]]] = []
    size = batch_size if batched else 1
    for start in range(0, len(examples), size):
        batch = make_batch(examples[start : start + size], task, reverse_source, device)
        step, state = model.decoder_start(batch.src, batch.src_mask)
        if not batched and method == "greedy":
            out.append([(greedy_decode(step, state, tv.bos_id, tv.eos_id, max_len), float("nan"))])
        elif not batched:
            out.append(
                beam_search(step, state, tv.bos_id, tv.eos_id, beam_size, max_len, length_penalty)
            )
        elif method == "greedy":
            hyps = batched_greedy(step, state, tv.bos_id, tv.eos_id, max_len)
            out.extend([(h, float("nan"))] for h in hyps)
        else:
            out.extend(
                batched_beam_search(
                    step, state, tv.bos_id, tv.eos_id, beam_size, max_len, length_penalty
                )
            )
    return out


def translate(
    model: nn.Module,
    task: Task,
    examples: list[Example],
    method: str = "greedy",
    beam_size: int = 5,
    length_penalty: float = 0.0,
    reverse_source: bool = False,
    max_len: int | None = None,
    **kwargs,
) -> list[list[str]]:
    """The best output sentence (tokens, without eos) for each example's source."""
    found = decode_ids(model, task, examples, method, beam_size, length_penalty,
                       reverse_source, max_len, **kwargs)  # fmt: skip
    return [task.tgt_vocab.decode(hyps[0][0]) for hyps in found]


def evaluate(model: nn.Module, task: Task, examples: list[Example], **kwargs) -> dict:
    """{"exact_match", "token_accuracy", "bleu", "hypotheses"} of :func:`translate`'s output
    (same keyword arguments) against the examples' targets."""
    hyps = translate(model, task, examples, **kwargs)
    refs = [ex.target for ex in examples]
    return {
        "exact_match": exact_match(hyps, refs),
        "token_accuracy": token_accuracy(hyps, refs),
        "bleu": corpus_bleu(hyps, refs),
        "hypotheses": hyps,
    }


@torch.no_grad()
def sentence_log_prob(
    model: nn.Module, task: Task, example: Example, target: list[str], reverse_source=False
) -> float:
    """log p(target + eos | source) under the model: what search tries to maximise."""
    model.eval()
    batch = make_batch([Example(example.source, list(target))], task, reverse_source,
                       _device(model))  # fmt: skip
    log_probs = torch.log_softmax(model(batch.src, batch.src_mask, batch.tgt_in), dim=-1)
    return log_probs.gather(-1, batch.tgt_out.unsqueeze(-1)).sum().item()


@torch.no_grad()
def sentence_log_probs(
    model: nn.Module,
    task: Task,
    examples: list[Example],
    targets: list[list[str]],
    reverse_source: bool = False,
    batch_size: int = 250,
) -> list[float]:
    """log p(target + eos | source) for many (example, target) pairs at once."""
    model.eval()
    out: list[float] = []
    pairs = [Example(ex.source, list(t)) for ex, t in zip(examples, targets, strict=True)]
    for batch in batches(pairs, task, batch_size, device=_device(model),
                         reverse_source=reverse_source):  # fmt: skip
        log_probs = torch.log_softmax(model(batch.src, batch.src_mask, batch.tgt_in), dim=-1)
        picked = log_probs.gather(-1, batch.tgt_out.unsqueeze(-1)).squeeze(-1)  # (B, T)
        real = batch.tgt_out != task.tgt_vocab.pad_id
        out.extend(torch.where(real, picked, 0.0).sum(dim=1).tolist())
    return out


# ---------------------------------------------------------------------- tasks

TASKS = {"dates": dates_task, "translation": translation_task}


def make_task(name: str, **kwargs) -> Task:
    """A task by name ("dates" or "translation"), as a checkpoint's meta["task"] records it."""
    if name not in TASKS:
        raise ValueError(f"task should be one of {sorted(TASKS)}, got {name!r}")
    return TASKS[name](**kwargs)
