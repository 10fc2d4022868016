"""Chapter 5's training recipe: learning-rate warm-up and label smoothing.

:func:`noam_lr` is the learning-rate schedule of Vaswani et al. (2017, eq. 3),
:func:`warmup_schedule` the same shape rescaled to peak at a chosen rate, as
``lr_at`` for :func:`seqlab.base.train.train`; :func:`warmup_runs` trains the
chapter's translation transformer briefly, post-norm and pre-norm, with and
without it (Xiong et al., 2020). :func:`smoothed_targets` and
:func:`label_smoothed_loss` are label smoothing (Szegedy et al., 2016), equal
to ``F.cross_entropy(label_smoothing=eps)``; :func:`smoothing_floor` is the
lowest loss it allows, and :func:`calibration` says how confident, and how
well calibrated, a trained model's next-token predictions
(:func:`token_logits`) are.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...base.data import Example, Task, batches
from ...base.env import seed as seed_everything
from ...base.train import train
from ...seq2seq import batch_loss, evaluate, mean_nll
from ...transformer import Transformer, TransformerConfig

# ---------------------------------------------------------------------------
# Warm-up


def noam_lr(step: int, d_model: int, warmup: int, factor: float = 1.0) -> float:
    """Vaswani et al.'s (2017, eq. 3) learning rate at ``step`` (counting from 1):
    factor · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5).

    It grows linearly for ``warmup`` steps, peaks there at
    factor · (d_model · warmup)^-0.5, then decays as 1/sqrt(step).
    """
    if step < 1 or warmup < 1:
        raise ValueError(f"step and warmup count from 1, got step={step}, warmup={warmup}")
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def warmup_schedule(peak: float, warmup: int, d_model: int = 64) -> Callable[[int], float]:
    """``lr_at`` for :func:`seqlab.base.train.train` (0-based steps): :func:`noam_lr`
    with the factor that makes its peak, at step ``warmup``, equal to ``peak``.
    ``warmup=0``: the constant rate ``peak``."""
    if warmup == 0:
        return lambda step: peak
    factor = peak * math.sqrt(d_model * warmup)
    return lambda step: noam_lr(step + 1, d_model, warmup, factor)


def schedule_run(task: Task, norm_first: bool, steps: int, lr: float, warmup: int,
                 seed: int = 0, clip_norm: float | None = 1.0, batch_size: int = 64,
                 eval_every: int = 50, eval_examples: int = 200,
                 progress: bool = False) -> dict:  # fmt: skip
    """Train the chapter's transformer (post-norm or pre-norm) for ``steps`` steps of Adam
    at :func:`warmup_schedule` (``lr``, ``warmup``), as the chapter's models are trained.

    -> {"loss": training loss per step, "eval_step", "eval_loss": teacher-forced loss per
    token on the first ``eval_examples`` validation sentences every ``eval_every`` steps,
    "exact_match": greedy exact match on them at the end, "seconds", "diverged"}.
    """
    seed_everything(seed)
    config = TransformerConfig(len(task.src_vocab), len(task.tgt_vocab), norm_first=norm_first)
    model = Transformer(config)
    g = torch.Generator().manual_seed(seed)
    pad_id = task.tgt_vocab.pad_id
    valid = task.valid[:eval_examples]

    def stream():
        while True:
            yield from batches(task.train, task, batch_size, shuffle=True, generator=g)

    start = time.perf_counter()
    history = train(model, stream(), lambda m, b: batch_loss(m, b, pad_id),
                    torch.optim.Adam(model.parameters(), lr=lr), steps, clip_norm=clip_norm,
                    progress=progress, desc="warm-up" if warmup else "constant",
                    eval_fn=lambda m: mean_nll(m, task, valid), eval_every=eval_every,
                    lr_at=warmup_schedule(lr, warmup, config.d_model))  # fmt: skip
    seconds = time.perf_counter() - start
    return {"loss": history.loss, "eval_step": history.eval_step,
            "eval_loss": history.eval_loss, "diverged": history.diverged,
            "exact_match": evaluate(model, task, valid)["exact_match"],
            "seconds": seconds}  # fmt: skip


def run_name(norm_first: bool, warmup: int) -> str:
    """The key of one of :func:`warmup_runs`' runs: "post-norm, constant", ..."""
    return f"{'pre' if norm_first else 'post'}-norm, {'warm-up' if warmup else 'constant'}"


def warmup_runs(task: Task, steps: int, lr: float, warmup: int, seed: int = 0,
                clip_norm: float | None = 1.0, progress: bool = False) -> dict:  # fmt: skip
    """The four :func:`schedule_run` s, post-norm and pre-norm, at the constant rate ``lr``
    and with ``warmup`` steps of warm-up to it, from the same seed: {:func:`run_name`: run}."""
    return {run_name(norm_first, w): schedule_run(task, norm_first, steps, lr, w, seed,
                                                  clip_norm, progress=progress)
            for norm_first in (False, True) for w in (0, warmup)}  # fmt: skip


# ---------------------------------------------------------------------------
# Label smoothing


def smoothed_targets(target: torch.Tensor, n_classes: int, eps: float,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:  # fmt: skip
    """Label smoothing's target distribution (Szegedy et al., 2016): (1 - eps) on the
    true class plus eps spread uniformly over all ``n_classes`` (the true one included).

    target: (...) class indices. -> (..., n_classes), each row summing to 1.
    """
    q = torch.full((*target.shape, n_classes), eps / n_classes, dtype=dtype,
                   device=target.device)  # fmt: skip
    return q.scatter_add_(-1, target.unsqueeze(-1),
                          torch.full_like(q[..., :1], 1.0 - eps))  # fmt: skip


def label_smoothed_loss(logits: torch.Tensor, target: torch.Tensor, eps: float,
                        ignore_index: int | None = None) -> torch.Tensor:  # fmt: skip
    """The cross-entropy of the model's softmax against :func:`smoothed_targets`,
    averaged over the positions whose target is not ``ignore_index``.

    logits: (N, V); target: (N,). Equal to ``F.cross_entropy(logits, target,
    ignore_index=..., label_smoothing=eps)``; eps = 0 is the plain cross-entropy.
    """
    keep = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        keep = target != ignore_index
    log_p = torch.log_softmax(logits[keep], dim=-1)
    q = smoothed_targets(target[keep], logits.shape[-1], eps, log_p.dtype)
    return -(q * log_p).sum(-1).mean()


def smoothing_floor(n_classes: int, eps: float) -> dict:
    """What label smoothing's loss allows over ``n_classes``: its minimum is the entropy
    of the smoothed target, reached when the model predicts exactly that target.

    -> {"floor": the entropy (nats), "top": the target's probability on the true class,
    "margin": log(top / (eps / n_classes)), the gap between the true class's logit and
    every other's at that minimum (infinite for eps = 0)}.
    """
    top, rest = 1.0 - eps + eps / n_classes, eps / n_classes
    floor = -top * math.log(top) - (n_classes - 1) * rest * math.log(rest) if eps else 0.0
    return {"floor": floor, "top": top, "margin": math.log(top / rest) if eps else math.inf}


@torch.no_grad()
def token_logits(model: nn.Module, task: Task, examples: Sequence[Example],
                 batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """A trained model's teacher-forced next-token logits over the examples' target tokens
    (eos included, padding left out): -> (logits (N, V) in float64, targets (N,))."""
    model.eval()
    pad_id = task.tgt_vocab.pad_id
    device = next(model.parameters()).device
    logits_, targets_ = [], []
    for batch in batches(list(examples), task, batch_size, device=device):
        logits = model(batch.src, batch.src_mask, batch.tgt_in).flatten(0, 1)
        keep = batch.tgt_out.flatten() != pad_id
        logits_.append(logits[keep].double().cpu())
        targets_.append(batch.tgt_out.flatten()[keep].cpu())
    return torch.cat(logits_), torch.cat(targets_)


def calibration(logits: torch.Tensor, target: torch.Tensor, eps: float = 0.1,
                bins: int = 10) -> dict:  # fmt: skip
    """How confident next-token predictions are, and how well calibrated (Guo et al., 2017).

    logits: (N, V); target: (N,). -> {"tokens", "accuracy": argmax = target,
    "confidence": mean largest probability, "ece": expected calibration error over
    ``bins`` equal-width bins of confidence (the tokens' share times |accuracy - mean
    confidence| in each, summed), "nll": cross-entropy per token, "smoothed":
    :func:`label_smoothed_loss` at ``eps``, "above_top": share of tokens whose largest
    probability exceeds the smoothed target's ``top`` (:func:`smoothing_floor`),
    "margin": median (the lower middle one) of log(p_max / mean of the other p)}.
    """
    p = torch.softmax(logits, dim=-1)
    conf, pred = p.max(-1)
    correct = (pred == target).to(p.dtype)
    edges = torch.linspace(0, 1, bins + 1, dtype=p.dtype)
    which = torch.bucketize(conf, edges[1:-1], right=True)  # bin b holds (edge b, edge b+1]
    ece = sum((which == b).sum() / len(conf)
              * (correct[which == b].mean() - conf[which == b].mean()).abs()
              for b in range(bins) if (which == b).any())  # fmt: skip
    V = logits.shape[-1]
    top = smoothing_floor(V, eps)["top"]
    margin = torch.log(conf * (V - 1) / (1 - conf).clamp_min(1e-300))  # p_max / mean other p
    return {"tokens": len(target), "accuracy": correct.mean().item(),
            "confidence": conf.mean().item(), "ece": float(ece),
            "nll": F.cross_entropy(logits, target).item(),
            "smoothed": label_smoothed_loss(logits, target, eps).item(),
            "above_top": (conf > top).to(p.dtype).mean().item(),
            "margin": margin.median().item()}  # fmt: skip


def smoothing_temperature(
    logits: torch.Tensor, target: torch.Tensor, eps: float, lo: float = 0.01, hi: float = 100.0
) -> float:
    """The temperature T whose softened predictions, softmax(logits / T), have the lowest
    :func:`label_smoothed_loss` at ``eps``: how far label smoothing would pull a trained
    model's confidence without retraining it. The loss is convex in 1/T (a log-sum-exp
    of a linear function, minus a linear one), so a golden-section search on 1/T in
    [1/hi, 1/lo] finds the minimum."""
    golden = (math.sqrt(5) - 1) / 2

    def loss(beta: float) -> float:
        return label_smoothed_loss(logits * beta, target, eps).item()

    a, b = 1 / hi, 1 / lo
    for _ in range(100):  # shrinks the bracket by 0.618^100
        c, d = b - golden * (b - a), a + golden * (b - a)
        if loss(c) < loss(d):
            b = d
        else:
            a = c
    return 2 / (a + b)
