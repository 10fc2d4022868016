"""Chapter 6's small GPT: pretraining on the multi-task corpus, the shipped checkpoint,
the fine-tuned baseline and the whole k-shot evaluation.

:func:`train_model` pretrains a :class:`seqlab.gpt.GPT` by next-token prediction
on :func:`seqlab.prompting.make_corpus` (Radford et al., 2019) with the
:class:`TrainConfig` of :data:`CHECKPOINTS`; ``python -m seqlab.chapters
checkpoints gpt_prompting`` runs :func:`make_checkpoint`, which saves
``seqlab/checkpoints/gpt_prompting.pt`` (config, float16 weights, the
tokenizer's characters, the history, timings and the evaluation) and
:func:`load` reads it back. :func:`finetune` is the supervised baseline of
both papers: the same pretrained model trained on one task's
``input > output`` lines and prompted zero-shot. :func:`evaluate` measures
every task for every k, with and without the instruction, beside chance and
the fine-tuned model. Shapes: B batch, T time, V vocabulary.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ...base import checkpoints
from ...base.train import History, train
from ...gpt import GPT, GPTConfig
from ...prompting import (
    KS,
    SEP,
    TASKS,
    CharTokenizer,
    CorpusConfig,
    accuracy,
    chance_accuracy,
    check_task,
    corpus_stream,
    fresh_input,
    heldout_inputs,
    make_corpus,
    window_batches,
)

# ---------------------------------------------------------------------------
# Pretraining


@dataclass
class TrainConfig:
    """How ``python -m seqlab.chapters checkpoints gpt_prompting`` trains the shipped model."""

    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # heads per block
    n_embd: int = 128  # C
    block_size: int = 144  # context: a k = 8 prompt needs at most 8 + 9 * 14 = 134 tokens
    steps: int = 3000  # optimiser steps
    batch_size: int = 32  # windows per step
    lr: float = 2.5e-3  # AdamW peak learning rate
    min_lr: float = 1e-4  # reached by the cosine decay at the last step
    warmup: int = 100  # steps of linear warm-up
    weight_decay: float = 0.1  # AdamW, on matrices only
    clip_norm: float = 1.0  # global gradient-norm clipping
    seed: int = 0  # model initialisation and batch order
    corpus: CorpusConfig = field(default_factory=CorpusConfig)


# file stem in seqlab/checkpoints -> the preset it is trained from
CHECKPOINTS = {"gpt_prompting": TrainConfig()}
CHECKPOINT = checkpoints.path_of("gpt_prompting")


def optimizer(model: GPT, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on the matrices only (not on biases, gains, or anything 1-D)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]  # fmt: skip
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.min_lr at cfg.steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def train_model(
    cfg: TrainConfig | None = None, progress: bool = False, device="cpu"
) -> tuple[GPT, CharTokenizer, History]:
    """Pretrain a GPT on :func:`make_corpus` by next-token prediction (Radford et al., 2019).

    The validation loss, on one fixed batch of 64 windows of another corpus
    seed, is measured every 100 steps. -> (the model in eval mode, its
    tokenizer, the :class:`History`).
    """
    cfg = cfg or TrainConfig()
    tok = CharTokenizer()
    stream, starts = corpus_stream(make_corpus(cfg.corpus), tok)
    torch.manual_seed(cfg.seed)
    model = GPT(GPTConfig(vocab_size=len(tok), block_size=cfg.block_size, n_layer=cfg.n_layer,
                          n_head=cfg.n_head, n_embd=cfg.n_embd, fast=True)).to(device)  # fmt: skip

    def loss_fn(m, batch):
        x, y = batch
        return F.cross_entropy(m(x).flatten(0, 1), y.flatten())  # (B T, V) vs (B T,)

    valid_docs = make_corpus(CorpusConfig(n_docs=300, seed=cfg.corpus.seed + 1))
    v_stream, v_starts = corpus_stream(valid_docs, tok)
    v_x, v_y = next(window_batches(v_stream, v_starts, cfg.block_size, 64, seed=1))
    valid = (v_x.to(device), v_y.to(device))
    batches = window_batches(stream, starts, cfg.block_size, cfg.batch_size, cfg.seed)
    history = train(model, batches, loss_fn, optimizer(model, cfg), cfg.steps,
                    clip_norm=cfg.clip_norm, progress=progress, desc="pretrain",
                    lr_at=lambda step: lr_at(step, cfg),
                    eval_fn=lambda m: loss_fn(m, valid).item(), eval_every=100)  # fmt: skip
    return model.eval(), tok, history


# ---------------------------------------------------------------------------
# The checkpoint


def save_model(model: GPT, tok: CharTokenizer, path: str | Path, preset, **meta) -> Path:
    """Save a GPT with :func:`seqlab.base.checkpoints.save`: preset (what it was trained
    from, a :class:`TrainConfig`), its config, float16 weights (the tied output layer
    once), the tokenizer's characters (``meta["tokenizer"]``) and ``meta``."""
    state = checkpoints.cpu_state(model, dtype=torch.float16)
    del state["lm_head.weight"]  # the same tensor as wte.weight
    return checkpoints.save(path, preset, state, asdict(model.config), tokenizer=tok.chars,
                            **meta)  # fmt: skip


def load(path: str | Path | None = None, device=None) -> tuple[GPT, CharTokenizer]:
    """The shipped model (or the one saved at path) in float32 eval mode, and its tokenizer.

    Its metadata (the tokenizer's characters, the training config and history,
    seconds, the evaluation) is ``model.meta``, its preset ``model.preset``.
    Nothing is downloaded: the file ships in seqlab/checkpoints/ and is made by
    ``python -m seqlab.chapters checkpoints gpt_prompting``.
    """
    saved = checkpoints.load(CHECKPOINT if path is None else path)
    model = GPT(GPTConfig(**saved.config))
    state = {k: v.float() for k, v in saved.state.items()}
    state["lm_head.weight"] = state["wte.weight"]
    model.load_state_dict(state)
    model.meta, model.preset = saved.meta, saved.preset
    return model.to(device or "cpu").eval(), CharTokenizer(saved.meta["tokenizer"])


def history_of(model: GPT) -> History:
    """The pretraining History stored in a loaded checkpoint."""
    return checkpoints.history_from(model.meta["history"])


def make_checkpoint(name: str, progress: bool = False, device="cpu", n_eval: int = 200) -> Path:
    """Train preset ``name`` of :data:`CHECKPOINTS`, save it, evaluate what ships (the
    float16 weights, on n_eval held-out inputs per cell) and save again with the
    evaluation. -> the file's path."""
    cfg = CHECKPOINTS[name]
    start, cpu_start = time.perf_counter(), time.process_time()
    model, tok, history = train_model(cfg, progress=progress, device=device)
    meta = {
        "train": asdict(cfg),
        "history": checkpoints.history_dict(history),
        "seconds": time.perf_counter() - start,  # wall clock, on a machine that may be shared
        "cpu_seconds": time.process_time() - cpu_start,
        "threads": torch.get_num_threads(),
    }
    path = save_model(model, tok, checkpoints.path_of(name), cfg, **meta)
    model, tok = load(path, device)
    meta["evaluation"] = asdict(evaluate(model, tok, n=n_eval))
    return save_model(model, tok, path, cfg, **meta)


# ---------------------------------------------------------------------------
# Fine-tuning baseline


@dataclass
class FinetuneConfig:
    """How :func:`finetune` trains on one task's labelled examples."""

    steps: int = 40  # optimiser steps
    batch_size: int = 64  # examples per step
    lr: float = 1e-3  # AdamW learning rate, constant
    seed: int = 0  # draws the examples and the batches


def finetune_batches(tok: CharTokenizer, task: str, batch_size: int, seed: int = 0):
    """Endless batches (ids (B, T), targets (B, T)) of one line each, ``x > rule(x)``.

    Fresh inputs in the task's evaluated convention, each line alone at the
    start of a row; targets are -100 (no loss) except on the output and its
    newline, as in supervised fine-tuning (Radford et al., 2018).
    """
    rule = check_task(task).rule
    rng = random.Random(seed)
    while True:
        xs = [fresh_input(rng) for _ in range(batch_size)]
        rows = [tok.encode(x + SEP + rule(x) + "\n") for x in xs]
        T = max(len(r) for r in rows) - 1
        ids = torch.zeros(len(rows), T, dtype=torch.long)  # (B, T)
        targets = torch.full((len(rows), T), -100, dtype=torch.long)  # (B, T): -100 = no loss
        for i, (x, r) in enumerate(zip(xs, rows, strict=True)):
            ids[i, : len(r) - 1] = torch.tensor(r[:-1])
            first = len(x) + len(SEP) - 1  # the position that predicts the output's first letter
            targets[i, first : len(r) - 1] = torch.tensor(r[first + 1 :])
        yield ids, targets


def finetune(model: GPT, tok: CharTokenizer, task: str, cfg: FinetuneConfig | None = None) -> GPT:
    """A copy of model fine-tuned on ``input > output`` lines of one task (no instruction).

    Trained on :func:`finetune_batches` with AdamW at a constant learning rate.
    -> the fine-tuned float32 copy, in eval mode; ``model`` is left as it was.
    """
    check_task(task)
    cfg = cfg or FinetuneConfig()
    tuned = copy.deepcopy(model).float()
    opt = torch.optim.AdamW(tuned.parameters(), lr=cfg.lr, weight_decay=0.0)

    def loss_fn(m, batch):
        ids, targets = batch
        return F.cross_entropy(m(ids).flatten(0, 1), targets.flatten(), ignore_index=-100)

    batches = finetune_batches(tok, task, cfg.batch_size, cfg.seed)
    train(tuned, batches, loss_fn, opt, cfg.steps, desc=f"fine-tune {task}")
    return tuned.eval()


def finetuned_accuracy(
    model: GPT, tok: CharTokenizer, task: str, n: int = 200, cfg: FinetuneConfig | None = None
) -> float:
    """Zero-shot exact match (no instruction) of the model fine-tuned on the task."""
    return accuracy(finetune(model, tok, task, cfg), tok, task, k=0, instruction=False, n=n)


# ---------------------------------------------------------------------------
# The whole evaluation


@dataclass
class Evaluation:
    """Everything the book's table shows; accuracies are exact-match rates in [0, 1]."""

    kshot: dict[str, dict[int, float]]  # task -> k -> accuracy, prompts with the instruction
    kshot_bare: dict[str, dict[int, float]]  # the same without the instruction line
    finetuned: dict[str, float]  # task -> zero-shot accuracy after fine-tuning
    chance: dict[str, float]  # task -> chance_accuracy
    n: int  # held-out inputs per cell
    seconds: float = 0.0  # wall-clock time of the whole evaluation
    ks: list[int] = field(default_factory=lambda: list(KS))

    def mean(self, table: str, k: int) -> float:
        """The mean over tasks of ``kshot`` or ``kshot_bare`` at k."""
        rows = getattr(self, table)
        return sum(row[k] for row in rows.values()) / len(rows)


def evaluate(
    model: GPT,
    tok: CharTokenizer,
    n: int = 200,
    ks: Sequence[int] = KS,
    tasks: Sequence[str] | None = None,
    finetune_cfg: FinetuneConfig | None = None,
    with_finetuned: bool = True,
) -> Evaluation:
    """Accuracy of every task for every k, with and without the instruction, and baselines."""
    start = time.perf_counter()
    tasks = list(TASKS) if tasks is None else list(tasks)
    queries = heldout_inputs(n)
    ev = Evaluation(
        kshot={t: {k: accuracy(model, tok, t, k, True, n) for k in ks} for t in tasks},
        kshot_bare={t: {k: accuracy(model, tok, t, k, False, n) for k in ks} for t in tasks},
        finetuned=(
            {t: finetuned_accuracy(model, tok, t, n, finetune_cfg) for t in tasks}
            if with_finetuned
            else {}
        ),
        chance={t: chance_accuracy(queries, t) for t in tasks},
        n=n,
        ks=list(ks),
    )
    ev.seconds = time.perf_counter() - start
    return ev

