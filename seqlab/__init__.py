"""seqlab: the reference library of the course *Sequence Models, from RNN gradients to GPT
prompting*.

Four layers, one per folder, and nothing imports upward (CONTRIBUTING.md):

- :mod:`seqlab.base`: device and seeding, data, the training loop, metrics,
  decoding, plots, checkpoints, the explorers' base, the book pages' helpers;
- idea modules: :mod:`seqlab.rnn`, :mod:`seqlab.gradients`, :mod:`seqlab.lstm`,
  :mod:`seqlab.seq2seq`, :mod:`seqlab.attention`, :mod:`seqlab.transformer`,
  :mod:`seqlab.gpt`, :mod:`seqlab.prompting`, :mod:`seqlab.induction`, and
  :mod:`seqlab.grading` (the checks the graded notebooks run);
- :mod:`seqlab.chapters`: one module per chapter, named by its id;
- :mod:`seqlab.kit`: the instructor's kit, ``python -m seqlab.kit`` (the ``grade`` extra).
"""

from __future__ import annotations

__all__ = ["device", "seed"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # seqlab.device and seqlab.seed import torch on first use, not on `import seqlab`: nbgrader
    # loads seqlab.kit's plugins and sandbox from its config at every start, and needs no torch.
    if name in __all__:
        from .base import env  # lazily, as said above

        return getattr(env, name)
    raise AttributeError(f"module 'seqlab' has no attribute {name!r}")
