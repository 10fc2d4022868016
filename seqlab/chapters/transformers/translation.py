"""Chapter 5 on chapter 3's translation task: training against the clock, looking inside.

A transformer and chapter 4's GRU with attention are trained on the same toy
translation task (:func:`timed_training` records accuracy against seconds),
then the page reads every attention of the trained transformer
(:func:`attention_maps`), scores each cross-attention head as an alignment
(:func:`head_alignment`) and times a training step of both models
(:func:`step_seconds`, :func:`race`), on the task's sentences and on random
ones of growing length (:func:`random_batch`).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn

from ...attention import alignment_accuracy
from ...base.data import Batch, Example, Task, batches, make_batch
from ...base.env import seed as seed_everything
from ...base.train import train
from ...seq2seq import batch_loss, evaluate, make_task, translate
from ...transformer import Transformer

# Chapter 3's toy translation task, as the checkpoints' meta["task"] records it
TASK = dict(name="translation", n_train=12_000, n_valid=1_000, n_test=1_000)


def task_of(model: nn.Module) -> Task:
    """The task a shipped model was trained on, regenerated from its ``meta["task"]``."""
    spec = dict(model.meta["task"])
    return make_task(spec.pop("name"), **spec)


# ---------------------------------------------------------------------------
# Training against the clock (the chapter's parallel-training comparison)


def timed_training(
    model: nn.Module,
    task: Task,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    eval_every: int = 50,
    eval_examples: int = 200,
    clip_norm: float | None = 1.0,
    progress: bool = False,
) -> dict:
    """Chapter 3's teacher-forced training, with the clock running.

    Every ``eval_every`` steps the greedy exact match on the first
    ``eval_examples`` validation sentences is recorded with the seconds of
    training so far (evaluation time excluded), so that models can be compared
    by accuracy against wall-clock time. clip_norm: global-norm gradient
    clipping (None = none). -> {"loss", "eval_step", "eval_seconds",
    "eval_exact", "seconds_per_epoch"}.
    """
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    pad_id = task.tgt_vocab.pad_id
    device = next(model.parameters()).device
    valid = task.valid[:eval_examples]
    per_epoch = -(-len(task.train) // batch_size)
    clock = {"start": time.perf_counter(), "paused": 0.0}
    record = {"eval_seconds": [], "eval_exact": []}

    def stream():
        for _ in range(epochs):
            yield from batches(task.train, task, batch_size, shuffle=True, generator=g,
                               device=device)  # fmt: skip

    def eval_fn(m):
        t = time.perf_counter()
        record["eval_seconds"].append(t - clock["start"] - clock["paused"])
        record["eval_exact"].append(evaluate(m, task, valid)["exact_match"])
        clock["paused"] += time.perf_counter() - t
        return record["eval_exact"][-1]

    history = train(model, stream(), lambda m, b: batch_loss(m, b, pad_id),
                    torch.optim.Adam(model.parameters(), lr=lr), epochs * per_epoch,
                    clip_norm=clip_norm, progress=progress, desc="timed", eval_fn=eval_fn,
                    eval_every=eval_every)  # fmt: skip
    train_seconds = time.perf_counter() - clock["start"] - clock["paused"]
    return {"loss": history.loss, "eval_step": history.eval_step, **record,
            "seconds_per_epoch": train_seconds / epochs}  # fmt: skip


def steps_to(history: dict, level: float) -> int | None:
    """The first recorded step of a :func:`timed_training` history whose exact match
    reaches ``level`` (None if it never does)."""
    pairs = zip(history["eval_step"], history["eval_exact"], strict=True)
    return next((step for step, exact in pairs if exact >= level), None)


def time_to(history: dict, level: float, seconds_per_step: float) -> float | None:
    """The seconds of training :func:`steps_to` ``level`` takes at ``seconds_per_step``."""
    step = steps_to(history, level)
    return None if step is None else step * seconds_per_step


def step_seconds(model: nn.Module, sample: Sequence[Batch], pad_id: int) -> float:
    """The median seconds of one training step (forward, backward, Adam) over ``sample``.

    The model is copied first: its weights stay as they are.
    """
    model = copy.deepcopy(model).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for b in sample:
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        batch_loss(model, b, pad_id).backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def race(models: dict[str, nn.Module], sample: Sequence[Batch], pad_id: int,
         rounds: int = 3) -> dict[str, float]:  # fmt: skip
    """{name: fastest of ``rounds`` :func:`step_seconds`}, the models taking turns, so that
    all of them see the same load on a busy machine."""
    seen = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            seen[name].append(step_seconds(model, sample, pad_id))
    return {name: min(times) for name, times in seen.items()}


def random_batch(task: Task, length: int, batch_size: int = 32) -> Batch:
    """``batch_size`` random sentence pairs of the task's vocabularies (no special
    tokens), source and target both of ``length`` words; seeded by ``length``."""
    g = torch.Generator().manual_seed(length)
    src = torch.randint(4, len(task.src_vocab), (batch_size, length), generator=g)
    tgt = torch.randint(4, len(task.tgt_vocab), (batch_size, length), generator=g)
    bos = torch.full((batch_size, 1), task.tgt_vocab.bos_id)
    eos = torch.full((batch_size, 1), task.tgt_vocab.eos_id)
    return Batch(src, torch.ones_like(src, dtype=torch.bool), torch.cat([bos, tgt], 1),
                 torch.cat([tgt, eos], 1), [])  # fmt: skip


# ---------------------------------------------------------------------------
# Looking inside a trained model

ATTENTION_KINDS = ("encoder", "decoder", "cross")  # self-attention of each stack, cross-attention


@torch.no_grad()
def attention_maps(model: Transformer, task: Task, source) -> dict:
    """Every attention weight of a trained model on one sentence, along its greedy output.

    source: tokens or a string. -> {"source": tokens, "output": greedy tokens
    (eos excluded), "maps": {(kind, layer): (n_heads, rows, cols)}} with kind
    "encoder" (rows and columns: source words), "decoder" (output words, bos
    first, against themselves) or "cross" (output words against source words);
    row t of a decoder map is the step that predicts output word t.
    """
    tokens = list(source.split() if isinstance(source, str) else source)
    if not tokens:
        raise ValueError("type at least one word")
    model.eval()
    device = next(model.parameters()).device
    output = translate(model, task, [Example(tokens, [])])[0]
    batch = make_batch([Example(tokens, output)], task, device=device)
    modules = {("encoder", i): layer.self_attn for i, layer in enumerate(model.encoder.layers)}
    for i, layer in enumerate(model.layers):
        modules["decoder", i] = layer.self_attn
        modules["cross", i] = layer.cross_attn
    for m in modules.values():
        m.keep_weights = True
    try:
        model(batch.src, batch.src_mask, batch.tgt_in)
    finally:
        for m in modules.values():
            m.keep_weights = False
    return {"source": tokens, "output": output,
            "maps": {key: m.weights[0].float().cpu() for key, m in modules.items()}}  # fmt: skip


@torch.no_grad()
def head_alignment(model: Transformer, task: Task, examples: Sequence[Example],
                   batch_size: int = 250) -> dict[tuple[int, int], float]:  # fmt: skip
    """{(layer, head): alignment accuracy} of every cross-attention head, teacher-forced.

    Chapter 4's :func:`seqlab.attention.alignment_accuracy` (Och & Ney, 2003) of
    each head's (T, S) weights along the examples' targets (eos row left out)
    against their true alignments.
    """
    model.eval()
    device = next(model.parameters()).device
    links = [ex.alignment for ex in examples]
    per: dict[tuple[int, int], list[torch.Tensor]] = {}
    for start in range(0, len(examples), batch_size):
        chunk = list(examples[start : start + batch_size])
        batch = make_batch(chunk, task, device=device)
        _, cross = model.cross_attention(batch.src, batch.src_mask, batch.tgt_in)
        for layer, w in enumerate(cross):  # w: (B, h, T, S)
            for head in range(w.shape[1]):
                per.setdefault((layer, head), []).extend(
                    w[b, head, : len(ex.target), : len(ex.source)].cpu()
                    for b, ex in enumerate(chunk)
                )
    return {key: alignment_accuracy(ws, links) for key, ws in per.items()}
