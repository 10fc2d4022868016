"""Chapter 4's experiments: the shipped attention models (and one without attention), what
the page measures on them, and the attention explorer.

The chapter's models take minutes each to train on a CPU, longer than a book
page may take to execute, so they are trained once with chapter 3's
``train_seq2seq`` and shipped as small checkpoints (weights, training curves,
test and alignment scores) that the book and the exercise only evaluate::

    python -m seqlab.chapters checkpoints attention    # seqlab/checkpoints/attention_*.pt

Chapter 3 ships the no-attention translation model at H = 128
(``seqlab/checkpoints/seq2seq_translation.pt``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ipywidgets
import torch
from matplotlib.figure import Figure
from torch import nn

from seqlab.attention import (
    AttentionConfig,
    AttentionSeq2Seq,
    alignment_scores,
    attention_weights,
    reverse_padded,
)
from seqlab.base import checkpoints
from seqlab.base.data import Example, Task, make_batch
from seqlab.base.explorer import Explorer
from seqlab.base.plots import INK, course_style, plot_attention
from seqlab.base.train import History
from seqlab.chapters.seq2seq import (
    TASK_SIZES,
    exact_match_by_source_length,
    pooled_exact_match,
)
from seqlab.chapters.seq2seq import history_of as history_of  # re-exported for the page
from seqlab.chapters.seq2seq import task_of as task_of  # re-exported for the page
from seqlab.luong import LuongConfig, LuongSeq2Seq
from seqlab.seq2seq import Seq2Seq, Seq2SeqConfig, decode_ids, evaluate, make_task, train_seq2seq


@dataclass
class Preset:
    """One model chapter 4 ships: its task, its size and how it is trained."""

    task: str  # "dates" or "translation"
    task_kwargs: dict = field(default_factory=lambda: dict(TASK_SIZES))  # the task's generator
    score: str | None = "additive"  # "additive", "dot", or None: chapter 3's model, no attention
    hidden: int = 64  # H
    emb: int = 32  # embedding size
    attention: int = 64  # A of the additive score
    epochs: int = 10  # passes over the training set
    batch_size: int = 64  # sentences per optimiser step
    lr: float = 3e-3  # Adam's learning rate
    seed: int = 0  # initialisation and the order of the batches


@dataclass
class LuongPreset(Preset):
    """A model with Luong et al.'s (2015) decoder (:class:`seqlab.luong.LuongSeq2Seq`)."""

    score: str = "general"  # "general" (h_t^T W_a h_s) or "dot"
    input_feeding: bool = True  # feed the attentional vector to the next step's input


# Attention models learn these tasks within a few epochs; the models without
# attention get chapter 3's ten.
PRESETS = {
    "translation_additive_32": Preset("translation", hidden=32, epochs=4),
    "translation_dot_32": Preset("translation", score="dot", hidden=32, epochs=4),
    "translation_plain_32": Preset("translation", score=None, hidden=32),
    "translation_additive_128": Preset("translation", hidden=128, epochs=4),
    "dates_additive_64": Preset("dates", hidden=64, epochs=3),
    # Luong et al.'s decoder at the size and training of the other H = 32 attention models
    "translation_luong_general_32": LuongPreset("translation", hidden=32, epochs=4),
    "translation_luong_general_nofeed_32": LuongPreset(
        "translation", hidden=32, epochs=4, input_feeding=False
    ),
    "translation_luong_dot_32": LuongPreset("translation", score="dot", hidden=32, epochs=4),
}
CHECKPOINTS = {f"attention_{name}": preset for name, preset in PRESETS.items()}


def checkpoint_path(name: str) -> Path:
    """The shipped file of preset ``name`` (a key of PRESETS): checkpoints/attention_<name>.pt."""
    return checkpoints.path_of(f"attention_{name}")


def build(preset: Preset, task: Task) -> nn.Module:
    """An untrained model of a preset, for a task's vocabularies."""
    if isinstance(preset, LuongPreset):
        luong = LuongConfig(len(task.src_vocab), len(task.tgt_vocab), preset.emb, preset.hidden,
                            "gru", preset.score, preset.input_feeding)  # fmt: skip
        return LuongSeq2Seq(luong)
    cfg = AttentionConfig(len(task.src_vocab), len(task.tgt_vocab), preset.emb, preset.hidden,
                          "gru", preset.score or "additive", preset.attention)  # fmt: skip
    return Seq2Seq(cfg.seq2seq()) if preset.score is None else AttentionSeq2Seq(cfg)


def make_checkpoint(name: str, progress: bool = False, device="cpu") -> Path:
    """Train ``CHECKPOINTS[name]`` with chapter 3's train_seq2seq and save it.

    The file's meta holds the task, the training history, the greedy test
    scores, the training time in seconds and, for an attention model of the
    translation task, its alignment scores on the test set.
    """
    if name not in CHECKPOINTS:
        raise ValueError(f"no preset {name!r}; chapter 4 ships {', '.join(CHECKPOINTS)}")
    p = CHECKPOINTS[name]
    task = make_task(p.task, **p.task_kwargs)
    torch.manual_seed(p.seed)
    model = build(p, task).to(device)
    start = time.perf_counter()
    history = train_seq2seq(model, task, p.epochs, p.batch_size, p.lr, seed=p.seed,
                            progress=progress)  # fmt: skip
    seconds = time.perf_counter() - start
    scores = evaluate(model, task, task.test)
    meta = {
        "task": dict(name=p.task, **p.task_kwargs),
        "history": checkpoints.history_dict(history),
        "test_greedy": {k: v for k, v in scores.items() if k != "hypotheses"},
        "seconds": seconds,
    }
    if p.score is not None and p.task == "translation":
        meta["alignment"] = alignment_scores(model, task, task.test)
    state = checkpoints.cpu_state(model)
    return checkpoints.save(checkpoints.path_of(name), p, state, asdict(model.config), **meta)


def model_from(saved: checkpoints.Saved) -> nn.Module:
    """The model of a loaded checkpoint, in eval mode, its meta as ``model.meta``: a
    :class:`~seqlab.luong.LuongSeq2Seq` when the config has ``input_feeding``, an
    :class:`AttentionSeq2Seq` when it names a score, else chapter 3's Seq2Seq."""
    if "input_feeding" in saved.config:
        model = LuongSeq2Seq(LuongConfig(**saved.config))
    elif "score" in saved.config:
        model = AttentionSeq2Seq(AttentionConfig(**saved.config))
    else:
        model = Seq2Seq(Seq2SeqConfig(**saved.config))
    model.load_state_dict(saved.state)
    model.meta = saved.meta
    return model.eval()


def load(path: str | Path, device=None) -> nn.Module:
    """The model of a checkpoint file (with attention or not), in eval mode; meta in .meta."""
    return model_from(checkpoints.load(path)).to(device or "cpu")


# ---------------------------------------------------------------------- what the page measures


def exact_match_by_length(
    model: nn.Module, task: Task, examples: Sequence[Example], **kwargs
) -> dict[int, tuple[float, int]]:
    """{source length: (exact match of greedy decoding, number of examples)}.

    Keyword arguments go to :func:`seqlab.seq2seq.evaluate`.
    """
    hyps = evaluate(model, task, list(examples), **kwargs)["hypotheses"]
    return exact_match_by_source_length(hyps, examples)


def bucket_exact_match(table: Mapping[int, tuple[float, int]], low: int, high: int) -> float:
    """Exact match over the sentences whose source length lies in [low, high], from a
    table of :func:`exact_match_by_length`."""
    return pooled_exact_match(table, [n for n in table if low <= n <= high])


def source_gradient_norms(
    model: nn.Module, task: Task, examples: Sequence[Example]
) -> torch.Tensor:
    """How much of the loss's gradient reaches each source position.

    The examples must all have the same source length S. The teacher-forced
    loss (summed over the target tokens) is backpropagated to the embedding
    of each source word (through both directions of a bidirectional encoder).
    -> (S,): the mean over examples of the gradient's norm at each source
    position, position 0 first.
    """
    lengths = {len(ex.source) for ex in examples}
    if len(lengths) != 1:
        raise ValueError(f"the examples should share one source length, got {sorted(lengths)}")
    device = next(model.parameters()).device
    batch = make_batch(list(examples), task, device=device)
    captured: list[torch.Tensor] = []  # one per call: a bidirectional encoder embeds twice

    def keep(module, inputs, output):
        captured.append(output)

    handle = model.encoder.embed.register_forward_hook(keep)
    try:
        model.eval()
        logits = model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, V)
        log_probs = torch.log_softmax(logits, dim=-1)
        picked = log_probs.gather(-1, batch.tgt_out.unsqueeze(-1)).squeeze(-1)  # (B, T)
        loss = -(picked * (batch.tgt_out != task.tgt_vocab.pad_id)).sum()
        grads = torch.autograd.grad(loss, captured)  # each (B, S, E)
    finally:
        handle.remove()
    lengths = batch.src_mask.sum(dim=1)
    grad = grads[0]
    if len(grads) == 2:  # the second call embedded the reversed source
        grad = grad + reverse_padded(grads[1], lengths)
    return grad.norm(dim=-1).mean(dim=0).detach().cpu()


def recurrent_path_length(S: int, T: int) -> float:
    """The mean number of recurrent steps from an output word back to a source word
    without attention: from output t (1..T) to source word s (1..S), the S - s encoder
    steps after s and the t decoder steps."""
    return sum((S - s) + t for s in range(1, S + 1) for t in range(1, T + 1)) / (S * T)


def alignment_misses(
    model: AttentionSeq2Seq, task: Task, examples: Sequence[Example]
) -> list[tuple[str, int]]:
    """Where the teacher-forced attention looks when it misses the true alignment.

    -> one (target word, offset) per aligned target word whose most attended
    source word is not aligned to it; offset: the attended source position
    minus the first aligned one (> 0: it looks ahead).
    """
    examples = list(examples)
    missed = []
    for ex, w in zip(examples, attention_weights(model, task, examples), strict=True):
        best = w[:-1].argmax(dim=1).tolist()
        links: dict[int, set[int]] = {}
        for t, s in ex.alignment:
            links.setdefault(t, set()).add(s)
        for t in sorted(links):
            if best[t] not in links[t]:
                missed.append((ex.target[t], best[t] - min(links[t])))
    return missed


def first_step_below(history: History, threshold: float) -> int | None:
    """The first step whose validation loss is below ``threshold`` (None: never)."""
    steps = zip(history.eval_step, history.eval_loss, strict=True)
    return next((step for step, loss in steps if loss < threshold), None)


@torch.no_grad()
def look_inside(
    model: AttentionSeq2Seq, task: Task, source: Sequence[str], beam_size: int = 3
) -> dict:
    """What the explorer shows for one source sentence (tokens; unknown ones become <unk>).

    -> {"source": tokens, "greedy": tokens, "beam": [(tokens, score)], best first,
    "weights": (T + 1, S) attention along the best beam hypothesis (its eos row last)}.
    """
    example = Example(list(source), [])
    tv = task.tgt_vocab
    greedy = decode_ids(model, task, [example], "greedy")[0][0][0]
    beam = decode_ids(model, task, [example], "beam", beam_size=beam_size)[0]
    hypotheses = [(tv.decode(ids), score) for ids, score in beam]
    best = hypotheses[0][0]
    (weights,) = attention_weights(model, task, [example], targets=[best])
    return {"source": list(source), "greedy": tv.decode(greedy), "beam": hypotheses,
            "weights": weights}  # fmt: skip


# ---------------------------------------------------------------------- the explorer


class AttentionExplorer(Explorer):
    """A trained attention model's translation, beam and alignment chart for one sentence.

    Pick a test sentence (or type one, words separated by spaces): the figure
    shows the attention weights along the best beam hypothesis as a heat map,
    with the true alignment (when the sentence is one of ``examples`` and the
    task knows it) drawn on top, and lists the greedy translation and the
    beam's hypotheses with their scores (:func:`look_inside`; Bahdanau et al., 2015).

    model: an :class:`seqlab.attention.AttentionSeq2Seq`; task: its task;
    examples: the sentences offered (also the frames of the static player);
    beam_size: hypotheses kept by the beam; dpi: resolution of the frames.
    """

    interval = 1500

    def __init__(self, model, task, examples, beam_size: int = 3, dpi: int = 72):
        examples = list(examples)
        if len(examples) < 2:
            raise ValueError(f"examples should hold at least 2 sentences, got {len(examples)}")
        self.model, self.task, self.examples = model, task, examples
        self.beam_size = beam_size
        self.dpi = dpi
        self._seen: dict[tuple[str, ...], dict] = {}

    def __repr__(self) -> str:
        return f"AttentionExplorer({len(self.examples)} sentences, beam of {self.beam_size})"

    def inside(self, source) -> dict:
        """:func:`look_inside` for a sentence (a string or tokens), cached."""
        tokens = tuple(source.split() if isinstance(source, str) else source)
        if not tokens:
            raise ValueError("type at least one word")
        if tokens not in self._seen:
            self._seen[tokens] = look_inside(self.model, self.task, tokens, self.beam_size)
        return self._seen[tokens]

    def _alignment(self, tokens):
        for ex in self.examples:
            if tuple(ex.source) == tuple(tokens):
                return ex.alignment, ex.target
        return None, None

    def frames(self) -> list:
        return [ex.source for ex in self.examples]

    def figure(self):
        with course_style():
            fig = Figure(figsize=(7.2, 6.4), dpi=self.dpi, layout="constrained")
            axes = fig.subplots(2, 1, height_ratios=(3.2, 1.0))
        return fig, axes

    def draw(self, source, axes) -> None:
        """Draw the chart and the hypotheses for one sentence on ``axes`` (2 Axes, cleared)."""
        seen = self.inside(source)
        best = seen["beam"][0][0]
        alignment, target = self._alignment(seen["source"])
        if target != best:  # the true alignment belongs to the true target only
            alignment = None
        chart, text = axes
        with course_style():
            chart.clear()
            text.clear()
            text.axis("off")
            plot_attention(seen["weights"], seen["source"], best, alignment, ax=chart,
                           colorbar=False)  # fmt: skip
            unknown = [w for w in seen["source"] if w not in self.task.src_vocab.stoi]
            lines = [f"greedy: {' '.join(seen['greedy'])}"]
            lines += [f"beam {i + 1} ({score:.2f}): {' '.join(tokens)}"
                      for i, (tokens, score) in enumerate(seen["beam"])]  # fmt: skip
            if target is not None:
                lines.append(f"reference: {' '.join(target)}")
            if unknown:
                lines.append(f"unknown words (read as <unk>): {' '.join(unknown)}")
            listing = text.text(
                0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=9,
                family="monospace", transform=text.transAxes, color=INK,
            )  # fmt: skip
            listing.set_in_layout(False)  # a long line must not squeeze the chart

    def controls(self) -> dict[str, ipywidgets.Widget]:
        options = [(" ".join(ex.source), i) for i, ex in enumerate(self.examples)]
        menu = ipywidgets.Dropdown(options=options, value=0, description="sentence",
                                   layout=ipywidgets.Layout(width="95%"))  # fmt: skip
        typed = ipywidgets.Text(placeholder="or type a sentence and press Enter",
                                description="your own", continuous_update=False,
                                layout=ipywidgets.Layout(width="95%"))  # fmt: skip
        return {"sentence": menu, "your own": typed}

    def setting(self, controls: dict[str, ipywidgets.Widget], changed: str | None):
        """The typed sentence when it just changed (on Enter), else the menu's."""
        if changed == "your own":
            return controls["your own"].value
        return self.examples[controls["sentence"].value].source

    def alt(self) -> str:
        return (
            "Attention weights of a trained translation model as a heat map over source "
            f"and output words, with the true alignment outlined, for {len(self.examples)} "
            "test sentences, one per frame, with the greedy translation and the beam's "
            "hypotheses listed below"
        )


def attention_explorer(model, task, examples, **kwargs) -> AttentionExplorer:
    """An explorer of a trained attention model: translation, beam and alignment chart.

    Display the result in a notebook cell: a live menu and text box in
    Jupyter, a player of precomputed frames in the static book. Keyword
    arguments go to :class:`AttentionExplorer`.
    """
    return AttentionExplorer(model, task, examples, **kwargs)
