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


def global_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of all entries of all tensors together, as a 0-dim tensor."""
    if not tensors:
        raise ValueError("global_norm needs at least one tensor")
    return torch.sqrt(sum((t.detach() ** 2).sum() for t in tensors))


def clip_grad_norm(
    grads: list[torch.Tensor], max_norm: float
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Clip a list of gradients by their global norm (Pascanu et al., 2013).

    total = L2 norm of all entries together. Returns (clipped, total): when
    total > max_norm every tensor is multiplied by max_norm / (total + 1e-6),
    otherwise it is copied unchanged. The direction of the update is kept;
    only its length is capped. The inputs are not modified.
    """
    total = global_norm(grads)
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        return [g * scale for g in grads], total
    return [g.clone() for g in grads], total


def clip_grad_norm_(parameters, max_norm: float) -> torch.Tensor:
    """In-place version for a training loop: clips ``p.grad`` of every parameter.

    Returns the total norm before clipping. Equivalent to
    ``torch.nn.utils.clip_grad_norm_`` except that gradients at or below the
    threshold are left exactly as they are.
    """
    params = [p for p in parameters if p.grad is not None]
    clipped, total = clip_grad_norm([p.grad for p in params], max_norm)
    for p, g in zip(params, clipped, strict=True):
        p.grad.copy_(g)
    return total


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
    """Move every tensor of a batch to device: a tensor, an object with a ``to(device)``
    method (a :class:`seqlab.base.data.Batch`), or tuples, lists and dicts of them."""
    if isinstance(batch, torch.Tensor) or callable(getattr(batch, "to", None)):
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
    after_step: Callable[[int, torch.nn.Module], None] | None = None,
    eval_fn: Callable[[torch.nn.Module], float] | None = None,
    eval_every: int = 100,
    random_seed: int | None = None,
    lr_at: Callable[[int], float] | None = None,
) -> History:
    """Train ``model`` for ``steps`` optimiser steps.

    batches: an iterator yielding whatever ``loss_fn(model, batch)`` accepts;
    loss_fn returns a 0-dim loss (it may also record more, for example
    per-token losses, in a list of its own). clip_norm: clip gradients to this
    global norm (None = no clipping). lr_at: the learning rate of step ``s``
    (0-based), set on every parameter group before the step (a warm-up and
    decay schedule). after_step: called as ``after_step(step, model)`` after
    every optimiser step, ``step`` counting from 1 (for example to project the
    weights back into a box, or to measure the model during training).
    eval_fn: called with the model (in eval mode, without gradients) every
    ``eval_every`` steps and after the last one, for example to compute a test
    loss. random_seed: when given, seeds every generator first
    (:func:`seqlab.seed`). Batches are moved to the device of the model's
    parameters. Returns a :class:`History`.
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
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
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
            after_step(step + 1, model)
        if eval_fn is not None and ((step + 1) % eval_every == 0 or step + 1 == steps):
            _evaluate(model, eval_fn, step + 1, history)
    return history


def _evaluate(model, eval_fn, step: int, history: History) -> None:
    model.eval()
    with torch.no_grad():
        history.eval_loss.append(float(eval_fn(model)))
    history.eval_step.append(step)
    model.train()
