"""Chapter 3's experiments: the shipped encoder-decoders, what the page measures on them
(exposure bias included: teacher forced against free running, Bengio et al., 2015;
Ranzato et al., 2016), and the beam-search explorer.

The three models of the chapter (dates, translation, translation read
backwards) take minutes each to train on a CPU, longer than a book page may
take to execute, so they are trained once and shipped as small checkpoints
(weights, training curves and test scores) that the book only evaluates::

    python -m seqlab.chapters checkpoints seq2seq      # seqlab/checkpoints/seq2seq_*.pt
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ipywidgets
import torch
from matplotlib.figure import Figure
from torch import nn

from seqlab.base import checkpoints
from seqlab.base.data import Example, Task, make_batch
from seqlab.base.decoding import beam_search
from seqlab.base.explorer import Explorer
from seqlab.base.metrics import corpus_bleu, exact_match, perplexity, token_accuracy
from seqlab.base.plots import INK, PALETTE, course_style
from seqlab.base.train import History
from seqlab.seq2seq import (
    Seq2Seq,
    Seq2SeqConfig,
    decode_ids,
    evaluate,
    make_task,
    train_seq2seq,
)

TASK_SIZES = dict(n_train=12_000, n_valid=1_000, n_test=1_000)  # every shipped model's task


@dataclass
class Preset:
    """One model chapter 3 ships: its task, its size and how it is trained."""

    task: str  # "dates" or "translation"
    task_kwargs: dict = field(default_factory=dict)  # passed to the task's generator
    hidden: int = 128  # H
    emb: int = 32  # D
    cell: str = "gru"  # "gru" or "lstm"
    epochs: int = 10  # passes over the training set
    batch_size: int = 64  # sentences per optimiser step
    lr: float = 3e-3  # Adam's learning rate
    reverse_source: bool = False  # read the source backwards (Sutskever et al., 2014)
    seed: int = 0  # initialisation and the order of the batches


PRESETS = {
    "dates": Preset("dates", dict(TASK_SIZES), epochs=8),
    "translation": Preset("translation", dict(TASK_SIZES)),
    "translation_reversed": Preset("translation", dict(TASK_SIZES), reverse_source=True),
}
CHECKPOINTS = {f"seq2seq_{name}": preset for name, preset in PRESETS.items()}


def checkpoint_path(name: str) -> Path:
    """The shipped file of preset ``name`` (a key of PRESETS): checkpoints/seq2seq_<name>.pt."""
    return checkpoints.path_of(f"seq2seq_{name}")


def make_checkpoint(name: str, progress: bool = False, device="cpu") -> Path:
    """Train ``CHECKPOINTS[name]`` with :func:`seqlab.seq2seq.train_seq2seq` and save it.

    The file's meta holds the task, the source order, the training history,
    the greedy test scores and the training time in seconds.
    """
    if name not in CHECKPOINTS:
        raise ValueError(f"no preset {name!r}; chapter 3 ships {', '.join(CHECKPOINTS)}")
    p = CHECKPOINTS[name]
    task = make_task(p.task, **p.task_kwargs)
    torch.manual_seed(p.seed)
    cfg = Seq2SeqConfig(len(task.src_vocab), len(task.tgt_vocab), p.emb, p.hidden, p.cell)
    model = Seq2Seq(cfg).to(device)
    start = time.perf_counter()
    history = train_seq2seq(model, task, p.epochs, p.batch_size, p.lr, p.reverse_source,
                            p.seed, progress=progress)  # fmt: skip
    seconds = time.perf_counter() - start
    scores = evaluate(model, task, task.test, reverse_source=p.reverse_source)
    return checkpoints.save(
        checkpoints.path_of(name),
        p,
        checkpoints.cpu_state(model),
        config=asdict(cfg),
        task=dict(name=p.task, **p.task_kwargs),
        reverse_source=p.reverse_source,
        history=checkpoints.history_dict(history),
        test_greedy={k: v for k, v in scores.items() if k != "hypotheses"},
        seconds=seconds,
    )


def load(path: str | Path, device=None) -> Seq2Seq:
    """The encoder-decoder of a checkpoint file, in eval mode; its meta is ``model.meta``."""
    saved = checkpoints.load(path)
    model = Seq2Seq(Seq2SeqConfig(**saved.config))
    model.load_state_dict(saved.state)
    model.meta = saved.meta
    return model.to(device or "cpu").eval()


def history_of(model: nn.Module) -> History:
    """The training History stored with a loaded model."""
    return checkpoints.history_from(model.meta["history"])


def task_of(model: nn.Module) -> Task:
    """The task a loaded model was trained on, regenerated from its meta."""
    spec = dict(model.meta["task"])
    return make_task(spec.pop("name"), **spec)


# ---------------------------------------------------------------------- what the page measures


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def first_word_probs(model: nn.Module, task: Task, source: Sequence[str]) -> torch.Tensor:
    """The decoder's distribution over the first target word, given source tokens. -> (V,)."""
    model.eval()
    batch = make_batch([Example(list(source), [])], task, device=_device(model))
    step, state = model.decoder_start(batch.src, batch.src_mask)
    log_probs, _ = step(torch.tensor([task.tgt_vocab.bos_id], device=_device(model)), state)
    return log_probs[0].exp().cpu()


@torch.no_grad()
def where_greedy_parts(
    model: nn.Module, task: Task, example: Example, greedy: Sequence[int], other: Sequence[int]
) -> tuple[int, float, float]:
    """Where greedy decoding and another output (token ids) of one source first differ.

    -> (t, p_greedy, p_other): the first position t (0-based) where they
    differ, and the probabilities the decoder gave there, after greedy's
    prefix, to greedy's token and to the other output's.
    """
    t = next((i for i, (a, b) in enumerate(zip(greedy, other, strict=False)) if a != b), None)
    if t is None:
        raise ValueError("the two outputs do not differ before one of them ends")
    model.eval()
    device = _device(model)
    batch = make_batch([example], task, device=device)
    step, state = model.decoder_start(batch.src, batch.src_mask)
    previous = [task.tgt_vocab.bos_id, *greedy[:t]]
    for token in previous:
        log_probs, state = step(torch.tensor([token], device=device), state)
    probs = log_probs[0].exp()
    return t, probs[greedy[t]].item(), probs[other[t]].item()


def length_statistics(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]]):
    """{"exact match", "mean length", "too short"} of outputs (tokens) against references:
    the share exactly right, the mean output length in tokens, the share shorter than
    its reference."""
    if len(hypotheses) != len(references) or not references:
        raise ValueError(f"got {len(hypotheses)} outputs for {len(references)} references")
    pairs = list(zip(hypotheses, references, strict=True))
    return {
        "exact match": sum(list(h) == list(r) for h, r in pairs) / len(pairs),
        "mean length": sum(len(h) for h in hypotheses) / len(pairs),
        "too short": sum(len(h) < len(r) for h, r in pairs) / len(pairs),
    }


def exact_match_by_source_length(
    hypotheses: Sequence[Sequence[str]], examples: Sequence[Example]
) -> dict[int, tuple[float, int]]:
    """{source length: (exact match of the outputs, number of examples)}, lengths sorted."""
    by_length: dict[int, list[bool]] = {}
    for ex, hyp in zip(examples, hypotheses, strict=True):
        by_length.setdefault(len(ex.source), []).append(list(hyp) == list(ex.target))
    return {n: (sum(v) / len(v), len(v)) for n, v in sorted(by_length.items())}


def pooled_exact_match(table: Mapping[int, tuple[float, int]], lengths) -> float:
    """The exact match over the examples of the given source lengths, from a table of
    :func:`exact_match_by_source_length` (each length weighs by its number of examples)."""
    chosen = [table[n] for n in lengths if n in table]
    total = sum(count for _, count in chosen)
    if total == 0:
        raise ValueError(f"no example has one of the lengths {list(lengths)}")
    return sum(em * count for em, count in chosen) / total


def beam_one_sentence_at_a_time(
    model: nn.Module,
    task: Task,
    examples: Sequence[Example],
    beam_size: int,
    max_len: int,
    wrap: Callable | None = None,
) -> list[list[tuple[list[int], float]]]:
    """:func:`seqlab.base.decoding.beam_search` on each example alone, best first.

    wrap(step) -> step changes how the decoder is called, e.g.
    :func:`seqlab.base.decoding.one_at_a_time` (one hypothesis per call).
    """
    model.eval()
    tv = task.tgt_vocab
    out = []
    for ex in examples:
        batch = make_batch([ex], task, device=_device(model))
        step, state = model.decoder_start(batch.src, batch.src_mask)
        step = wrap(step) if wrap is not None else step
        out.append(beam_search(step, state, tv.bos_id, tv.eos_id, beam_size, max_len))
    return out


# ---------------------------------------------------------------------- exposure bias


@torch.no_grad()
def teacher_forced(
    model: nn.Module, task: Task, examples: Sequence[Example], reverse_source: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's logits when it reads the true previous tokens, all examples in one batch.

    -> (logits (B, T, V), targets (B, T)): targets are each reference + eos,
    padded with the target vocabulary's pad_id.
    """
    model.eval()
    batch = make_batch(list(examples), task, reverse_source, _device(model))
    return model(batch.src, batch.src_mask, batch.tgt_in), batch.tgt_out


def first_error(output: Sequence[int], reference: Sequence[int]) -> int | None:
    """The first position where ``output`` differs from ``reference`` (a token missing from
    either counts as a difference), or None when they are equal."""
    for t in range(max(len(output), len(reference))):
        if t >= len(output) or t >= len(reference) or output[t] != reference[t]:
            return t
    return None


def accuracy_by_position(
    outputs: Sequence[Sequence[int]], references: Sequence[Sequence[int]]
) -> dict[int, tuple[float, int]]:
    """{t: (share of the references long enough to have a token at t whose output has the
    same token there, how many references have one)}, t = 0, 1, ... in order."""
    right: dict[int, list[bool]] = {}
    for out, ref in zip(outputs, references, strict=True):
        for t, token in enumerate(ref):
            right.setdefault(t, []).append(t < len(out) and out[t] == token)
    return {t: (sum(v) / len(v), len(v)) for t, v in sorted(right.items())}


def common_subsequence_length(a: Sequence, b: Sequence) -> int:
    """The length of the longest common subsequence of a and b (dynamic programming)."""
    previous = [0] * (len(b) + 1)  # previous[j]: LCS of the prefix of a so far and b[:j]
    for x in a:
        row = [0]
        for j, y in enumerate(b):
            row.append(previous[j] + 1 if x == y else max(previous[j + 1], row[j]))
        previous = row
    return previous[-1]


def accuracy_after_first_error(
    outputs: Sequence[Sequence[int]],
    references: Sequence[Sequence[int]],
    first_errors: Sequence[int | None],
    aligned: bool = False,
) -> tuple[float, int]:
    """(share of reference positions after each sentence's first error that the output gets
    right, how many such positions); sentences without an error (None) are left out.

    aligned=False compares position by position, so a missing or extra token
    makes everything after it wrong; aligned=True counts instead the tokens of
    the longest common subsequence of the two tails, the most a shifted output
    can be given credit for.
    """
    right = total = 0
    for out, ref, e in zip(outputs, references, first_errors, strict=True):
        if e is None:
            continue
        if aligned:
            right += common_subsequence_length(out[e + 1 :], ref[e + 1 :])
        else:
            right += sum(t < len(out) and out[t] == ref[t] for t in range(e + 1, len(ref)))
        total += max(len(ref) - e - 1, 0)
    return right / max(total, 1), total


def exposure_bias(
    model: nn.Module, task: Task, examples: Sequence[Example], reverse_source: bool = False
) -> dict:
    """The same test set read two ways: teacher forced (the decoder reads the reference) and
    free running (greedy decoding, it reads its own outputs).

    Token ids include eos. -> {"perplexity" (teacher forced), "teacher forced",
    "free running": token accuracy by position over the whole set, "exact match"
    and "bleu" (of greedy's output), "by position": {way: accuracy_by_position},
    "after first error": {way: accuracy_after_first_error}, the same "..., aligned"
    (aligned=True), "first errors": the
    first teacher-forced mistake of each sentence (None if none), "same first
    error": whether greedy's first mistake is the same one in every sentence}.
    """
    logits, targets = teacher_forced(model, task, examples, reverse_source)
    tv = task.tgt_vocab
    refs = [tv.encode(ex.target) + [tv.eos_id] for ex in examples]
    forced = [row[: len(r)] for row, r in zip(logits.argmax(-1).tolist(), refs, strict=True)]
    found = decode_ids(model, task, list(examples), "greedy", reverse_source=reverse_source)
    free = [hyps[0][0] for hyps in found]
    ways = {"teacher forced": forced, "free running": free}
    errors = [first_error(f, r) for f, r in zip(forced, refs, strict=True)]
    texts = [tv.decode(ids) for ids in free]
    targets_text = [ex.target for ex in examples]
    return {
        "perplexity": perplexity(logits, targets, tv.pad_id),
        **{way: token_accuracy(out, refs) for way, out in ways.items()},
        "exact match": exact_match(texts, targets_text),
        "bleu": corpus_bleu(texts, targets_text),
        "by position": {way: accuracy_by_position(out, refs) for way, out in ways.items()},
        "after first error": {
            way: accuracy_after_first_error(out, refs, errors) for way, out in ways.items()
        },
        "after first error, aligned": {
            way: accuracy_after_first_error(out, refs, errors, aligned=True)
            for way, out in ways.items()
        },
        "first errors": errors,
        "same first error": errors == [first_error(f, r) for f, r in zip(free, refs, strict=True)],
    }


# ---------------------------------------------------------------------- the explorer


class BeamExplorer(Explorer):
    """Beam search step by step on one source sentence, with the step on a slider.

    ``model`` is an encoder-decoder with ``decoder_start`` (chapter 3); the
    search is :func:`seqlab.base.decoding.beam_search` with ``beam_size``. Each frame
    shows, after one more step, the live hypotheses (blue) and the finished
    ones (orange) as bars of their log-probability, labelled with their
    tokens (Jurafsky & Martin, ch. 10; Sutskever et al., 2014).
    """

    interval = 700

    def __init__(self, model, task, example, beam_size: int = 3, max_len: int = 25,
                 reverse_source: bool = False, dpi: int = 72):  # fmt: skip
        self.example = example
        self.beam_size = beam_size
        self.dpi = dpi
        vocab = task.tgt_vocab
        batch = make_batch([example], task, reverse_source, _device(model))
        step, state = model.decoder_start(batch.src, batch.src_mask)
        self.trace: list[dict] = []
        self.result = beam_search(step, state, vocab.bos_id, vocab.eos_id, beam_size, max_len,
                                  trace=self.trace)  # fmt: skip
        self.itos = vocab.itos
        self.steps = list(range(1, len(self.trace) + 1))

    def __repr__(self) -> str:
        return f"BeamExplorer(beam {self.beam_size}, {len(self.steps)} steps)"

    def _label(self, tokens) -> str:
        return " ".join(self.itos[t] for t in tokens)

    def frames(self) -> list[int]:
        return self.steps

    def figure(self):
        with course_style():
            fig = Figure(figsize=(7.0, 0.5 * self.beam_size + 1.6), dpi=self.dpi,
                         layout="constrained")  # fmt: skip
            ax = fig.subplots()
        return fig, ax

    def draw(self, t: int, ax) -> None:
        """The beam after step ``t`` (1-based) on ``ax``, cleared first."""
        snap = self.trace[t - 1]
        rows = [(seq, s, PALETTE[0]) for seq, s in snap["live"]]
        rows += [(seq, s, PALETTE[1]) for seq, s in snap["finished"]]
        lowest = min(s for _, s, _ in rows) if rows else -1.0
        with course_style():
            ax.clear()
            ax.grid(False)
            for i, (seq, s, color) in enumerate(rows):
                ax.barh(i, s, color=color, height=0.6)
                ax.text(0.02 * abs(lowest), i, self._label(seq), va="center", fontsize=8)
            ax.set_yticks([])
            ax.set_ylim(self.beam_size - 0.4, -0.6)
            ax.set_xlim(1.05 * min(lowest, -1.0), 0.9 * abs(min(lowest, -1.0)) * 3)
            ax.axvline(0, color=INK, linewidth=0.6)
            ax.set_xlabel("sum of log-probabilities (bars to the left: less probable)")
            source = " ".join(self.example.source)
            ax.set_title(f"step {t}: live (blue), finished (orange)\n{source}", fontsize=9)

    def controls(self) -> dict[str, ipywidgets.Widget]:
        slider = ipywidgets.IntSlider(value=1, min=1, max=self.steps[-1], description="step",
                                      continuous_update=False)  # fmt: skip
        return {"step": slider}

    def alt(self) -> str:
        return (
            f"Beam search with beam size {self.beam_size} on one sentence, one frame per "
            "step: bars of the log-probability of each live and finished hypothesis"
        )


def beam_explorer(model, task, example, **kwargs) -> BeamExplorer:
    """An explorer of beam search on one sentence (chapter 3).

    Keyword arguments go to :class:`BeamExplorer`.
    """
    return BeamExplorer(model, task, example, **kwargs)
