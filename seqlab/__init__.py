"""seqlab: the reference library of the course *Sequence Models, from RNN gradients to GPT
prompting*.

One module per idea: :mod:`seqlab.rnn` (a vanilla RNN), :mod:`seqlab.gradients`
(gradient flow and clipping), :mod:`seqlab.base.train` (the shared training loop),
:mod:`seqlab.chapters.rnn_gradients` (chapter 1's experiments), :mod:`seqlab.lstm` (the
LSTM and the GRU), :mod:`seqlab.chapters.lstm_gru` (chapter 2's experiments and its
trained checkpoints), :mod:`seqlab.base.data` (vocabularies, the generated tasks,
batches with masks), :mod:`seqlab.seq2seq` (the encoder-decoder of chapter 3),
:mod:`seqlab.base.decoding` (greedy and beam search), :mod:`seqlab.base.metrics` (exact
match, token accuracy, BLEU), :mod:`seqlab.attention` (chapter 4),
:mod:`seqlab.transformer` (chapter 5), :mod:`seqlab.gpt`, :mod:`seqlab.prompting` and
:mod:`seqlab.induction` (chapter 6),
:mod:`seqlab.base.plots` and :mod:`seqlab.widgets` (figures and explorers),
:mod:`seqlab.grading` (the checks that hidden tests use), :mod:`seqlab.kit.course`
and :mod:`seqlab.kit.cluster` (the instructor's commands).
"""

from __future__ import annotations

__all__ = ["device", "seed"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # seqlab.device and seqlab.seed import torch on first use, not on `import seqlab`:
    # nbgrader loads seqlab.kit.course from its config at every start, and needs no torch.
    if name in __all__:
        from .base import env  # lazily: `import seqlab` (nbgrader loads the kit) needs no torch

        return getattr(env, name)
    raise AttributeError(f"module 'seqlab' has no attribute {name!r}")
