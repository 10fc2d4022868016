"""One small training loop, shared by every chapter.

Plain PyTorch: the loop asks for a batch, computes the loss, backpropagates,
optionally clips the gradient by its global norm, and steps the optimiser. It
records what the plotting helpers draw and stops early if the loss stops
being a finite number, which is what an exploding gradient looks like.
Batches are moved to the model's device, so a data iterator can stay on the
CPU while the model trains on a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .env import seed
from .gradients import clip_grad_norm_


@dataclass
class History:
    """What a training run did, step by step."""

    loss: list[float] = field(default_factory=list)  # training loss at each step
    grad_norm: list[float] = field(default_factory=list)  # global gradient norm, before clipping
    diverged: bool = False  # True when the loss became inf or nan and training stopped
    eval_step: list[int] = field(default_factory=list)  # steps after which eval_fn ran
    eval_loss: list[float] = field(default_factory=list)  # what eval_fn returned there

    @property
    def final_loss(self) -> float:
        return self.loss[-1] if self.loss else math.nan


def to_device(batch, device: torch.device):
    """Move every tensor of a batch (a tensor, or tuples, lists and dicts of them) to device."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


def _model_device(model: torch.nn.Module) -> torch.device | None:
    param = next(iter(model.parameters()), None)
    return None if param is None else param.device


def train(
    model: torch.nn.Module,
    batches: Iterator,
    loss_fn: Callable[[torch.nn.Module, object], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    steps: int,
    clip_norm: float | None = None,
    progress: bool = False,
    desc: str = "train",
    after_step: Callable[[], None] | None = None,
    eval_fn: Callable[[torch.nn.Module], float] | None = None,
    eval_every: int = 100,
    random_seed: int | None = None,
) -> History:
    """Train ``model`` for ``steps`` optimiser steps.

    batches: an iterator yielding whatever ``loss_fn(model, batch)`` accepts;
    loss_fn returns a 0-dim loss. clip_norm: clip gradients to this global norm
    (None = no clipping). after_step: called after every optimiser step (for
    example to project the weights back into a box). eval_fn: called with the
    model (in eval mode, without gradients) every ``eval_every`` steps and
    after the last one, for example to compute a test loss. random_seed: when
    given, seeds every generator first (:func:`seqlab.seed`). Batches are moved
    to the device of the model's parameters. Returns a :class:`History`.
    """
    if random_seed is not None:
        seed(random_seed)
    history = History()
    device = _model_device(model)
    model.train()
    for step in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        batch = next(batches)
        if device is not None:
            batch = to_device(batch, device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            history.loss.append(float("inf"))
            history.diverged = True
            break
        loss.backward()
        params = [p for p in model.parameters() if p.grad is not None]
        if clip_norm is not None:
            norm = clip_grad_norm_(params, clip_norm)
        else:
            norm = torch.sqrt(sum((p.grad**2).sum() for p in params))
        history.loss.append(loss.item())
        history.grad_norm.append(norm.item())
        optimizer.step()
        if after_step is not None:
            after_step()
        if eval_fn is not None and ((step + 1) % eval_every == 0 or step + 1 == steps):
            _evaluate(model, eval_fn, step + 1, history)
    return history


def _evaluate(model, eval_fn, step: int, history: History) -> None:
    model.eval()
    with torch.no_grad():
        history.eval_loss.append(float(eval_fn(model)))
    history.eval_step.append(step)
    model.train()
