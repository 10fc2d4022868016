"""One small training loop, shared by every chapter.

Plain PyTorch: the loop asks for a batch, computes the loss, backpropagates,
optionally clips the gradient by its global norm, and steps the optimiser. It
records what the plotting helpers draw and stops early if the loss stops
being a finite number, which is what an exploding gradient looks like.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .gradients import clip_grad_norm_


@dataclass
class History:
    """What a training run did, step by step."""

    loss: list[float] = field(default_factory=list)  # training loss at each step
    grad_norm: list[float] = field(default_factory=list)  # global gradient norm, before clipping
    diverged: bool = False  # True when the loss became inf or nan and training stopped

    @property
    def final_loss(self) -> float:
        return self.loss[-1] if self.loss else math.nan


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
) -> History:
    """Train ``model`` for ``steps`` optimiser steps.

    batches: an iterator yielding whatever ``loss_fn(model, batch)`` accepts;
    loss_fn returns a 0-dim loss. clip_norm: clip gradients to this global norm
    (None = no clipping). after_step: called after every optimiser step (for
    example to project the weights back into a box). Returns a :class:`History`.
    """
    history = History()
    model.train()
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        batch = next(batches)
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
    return history
