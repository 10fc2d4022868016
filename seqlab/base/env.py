"""Where computations run and how they are made repeatable.

Every notebook and book page calls these two helpers, so that one line decides
the device and one line makes a figure reproducible.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def device() -> torch.device:
    """The best device this machine offers: CUDA, then Apple's MPS, then the CPU.

    ``SEQLAB_DEVICE=cpu`` (or any torch device string) overrides the choice, so
    a course machine with a busy GPU can still grade on the CPU.
    """
    forced = os.environ.get("SEQLAB_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed(value: int = 0) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's generators (CPU and CUDA).

    Returns a fresh CPU ``torch.Generator`` seeded with ``value`` for code that
    wants its own stream of random numbers, independent of the global one.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"seed expects an int, got {type(value).__name__}")
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(value)
    return torch.Generator().manual_seed(value)
