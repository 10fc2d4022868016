"""The models chapter 5 ships: their presets, how each is trained, and loading them back.

Training them takes minutes, longer than a book page may take, so it is done
once by the chapters' command line, which saves ``seqlab/checkpoints/<name>.pt``
(:mod:`seqlab.base.checkpoints`); the page only loads and evaluates them::

    python -m seqlab.chapters checkpoints transformers
    python -m seqlab.chapters checkpoints transformers --only transformer_mlm

A file's ``config`` is ``{"kind", "sizes"}`` (and ``"vocab"`` for the masked
language model): kind "transformer", "attention" (chapter 4's GRU with
attention) or "mlm", sizes the model's config as a dict. A "warmup" preset
ships no weights, only the training histories of :func:`.training.warmup_runs`
(:func:`load_runs` reads them).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ...attention import AttentionConfig, AttentionSeq2Seq, alignment_scores
from ...base import checkpoints
from ...seq2seq import evaluate, make_task
from ...transformer import MaskedLM, Transformer, TransformerConfig
from .pretraining import (
    PRETRAIN_SEED,
    PRETRAIN_SENTENCES,
    english_sentences,
    pretrain_mlm,
    pretraining_vocab,
)
from .training import warmup_runs
from .translation import TASK, timed_training


@dataclass
class Preset:
    """One model chapter 5 ships: its kind, its sizes and how it is trained."""

    kind: str  # "transformer", "gru" (chapter 4's attention model, for the race), "mlm", "warmup"
    config: dict = field(default_factory=dict)  # config overrides; "warmup": {"warmup": steps}
    epochs: int = 10  # passes over the translation task (transformer, gru)
    steps: int = 8000  # optimiser steps (mlm)
    lr: float = 1e-3  # Adam's learning rate
    seed: int = 0  # initial weights, batch order, dropout and masking
    clip_norm: float = 1.0  # global-norm gradient clipping (chapter 1)


CHECKPOINTS = {
    # about 180k parameters each: the transformer, the same with one head, and a GRU with attention
    "transformer_translation": Preset("transformer", lr=3e-3),
    "transformer_translation_1head": Preset("transformer", dict(n_heads=1), lr=3e-3),
    "transformer_translation_gru": Preset("gru", dict(emb=32, hidden=96, attention=96), lr=3e-3),
    # a two-layer encoder pretrained on unlabelled sentences
    "transformer_mlm": Preset("mlm", dict(enc_layers=2, max_len=32), lr=2e-3),
    # histories only: the translation transformer, post-norm and pre-norm, with and without
    # 100 steps of warm-up to the rate above, trained 400 steps each
    "transformer_warmup": Preset("warmup", dict(warmup=100), steps=400, lr=3e-3),
}


def config_of(model: nn.Module) -> dict:
    """What :func:`build` needs to make ``model`` again: {"kind", "sizes"(, "vocab")}."""
    if isinstance(model, AttentionSeq2Seq):
        return {"kind": "attention", "sizes": asdict(model.config)}
    if isinstance(model, MaskedLM):
        return {"kind": "mlm", "sizes": asdict(model.config), "vocab": len(model.head.weight)}
    if isinstance(model, Transformer):
        return {"kind": "transformer", "sizes": asdict(model.config)}
    raise TypeError(f"no checkpoint kind for a {type(model).__name__}")


def build(config: dict) -> nn.Module:
    """The untrained model that a checkpoint's config (:func:`config_of`) describes."""
    kind, sizes = config["kind"], config["sizes"]
    if kind == "attention":
        return AttentionSeq2Seq(AttentionConfig(**sizes))
    if kind == "mlm":
        return MaskedLM(config["vocab"], TransformerConfig(**sizes))
    if kind == "transformer":
        return Transformer(TransformerConfig(**sizes))
    raise ValueError(f"unknown model kind {kind!r}")


def train_preset(name: str, progress: bool = False, device="cpu") -> tuple[nn.Module, dict]:
    """Train one preset; -> (model on the CPU, meta) with its history, test scores and seconds."""
    p = CHECKPOINTS[name]
    torch.manual_seed(p.seed)
    start = time.perf_counter()
    if p.kind == "mlm":
        sentences = english_sentences(PRETRAIN_SENTENCES, PRETRAIN_SEED)
        vocab = pretraining_vocab()
        cfg = TransformerConfig(0, 0, **p.config)
        model = MaskedLM(len(vocab), cfg).to(device)
        losses = pretrain_mlm(model, sentences, vocab, p.steps, lr=p.lr, seed=p.seed,
                              clip_norm=p.clip_norm, progress=progress)  # fmt: skip
        meta = {"loss": losses, "vocab": vocab.itos}
    else:
        spec = dict(TASK)
        task = make_task(spec.pop("name"), **spec)
        V_src, V_tgt = len(task.src_vocab), len(task.tgt_vocab)
        if p.kind == "gru":
            model = AttentionSeq2Seq(AttentionConfig(V_src, V_tgt, **p.config)).to(device)
        else:
            model = Transformer(TransformerConfig(V_src, V_tgt, **p.config)).to(device)
        history = timed_training(model, task, p.epochs, lr=p.lr, seed=p.seed,
                                 clip_norm=p.clip_norm, progress=progress)  # fmt: skip
        scores = evaluate(model, task, task.test)
        meta = {
            "task": dict(TASK),
            "history": history,
            "test_greedy": {k: v for k, v in scores.items() if k != "hypotheses"},
            "alignment": alignment_scores(model, task, task.test),
            "device": str(device),
            "threads": torch.get_num_threads(),
        }
    meta["seconds"] = time.perf_counter() - start
    meta["parameters"] = sum(q.numel() for q in model.parameters())
    return model.cpu(), meta


def train_runs(name: str, progress: bool = False) -> dict:
    """The meta of a "warmup" preset: {"task", "runs": :func:`.training.warmup_runs`, ...}."""
    p = CHECKPOINTS[name]
    spec = dict(TASK)
    task = make_task(spec.pop("name"), **spec)
    start = time.perf_counter()
    runs = warmup_runs(task, p.steps, p.lr, p.config["warmup"], p.seed, p.clip_norm, progress)
    return {"task": dict(TASK), "runs": runs, "seconds": time.perf_counter() - start,
            "device": "cpu", "threads": torch.get_num_threads()}  # fmt: skip


def load_runs(name: str) -> dict:
    """The histories a "warmup" preset's file ships (:func:`train_runs`' meta)."""
    return checkpoints.load(checkpoints.path_of(name)).meta


def make_checkpoint(name: str, progress: bool = False, device="cpu") -> Path:
    """Train preset ``name`` and save ``seqlab/checkpoints/<name>.pt``; -> its path.

    A "warmup" preset trains on the CPU whatever ``device`` says, and saves no weights.
    """
    if CHECKPOINTS[name].kind == "warmup":
        return checkpoints.save(checkpoints.path_of(name), CHECKPOINTS[name], {}, None,
                                **train_runs(name, progress))  # fmt: skip
    model, meta = train_preset(name, progress, device)
    return checkpoints.save(checkpoints.path_of(name), CHECKPOINTS[name],
                            checkpoints.cpu_state(model), config_of(model), **meta)  # fmt: skip


def model_from(saved: checkpoints.Saved, device=None) -> nn.Module:
    """The model of a loaded checkpoint file, in eval mode.

    Its training record (history, test scores, seconds, ...) is ``model.meta``,
    the preset it was trained from ``model.preset``.
    """
    model = build(saved.config)
    model.load_state_dict(saved.state)
    model.meta, model.preset = saved.meta, saved.preset
    return model.to(device or "cpu").eval()


def load_checkpoint(name: str, device=None) -> nn.Module:
    """The shipped model ``name`` (a key of :data:`CHECKPOINTS`): :func:`model_from` its file."""
    return model_from(checkpoints.load(checkpoints.path_of(name)), device)
