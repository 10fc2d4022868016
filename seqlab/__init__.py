"""seqlab: the reference library of the course *Sequence Models, from RNN gradients to GPT
prompting*.

One module per idea: :mod:`seqlab.rnn` (a vanilla RNN), :mod:`seqlab.gradients`
(gradient flow and clipping), :mod:`seqlab.train` (the shared training loop),
:mod:`seqlab.rnn_gradients` (chapter 1's experiments), :mod:`seqlab.lstm` (the
LSTM and the GRU), :mod:`seqlab.lstm_gru` (chapter 2's experiments and its
trained checkpoints), :mod:`seqlab.plots` and :mod:`seqlab.widgets` (figures
and explorers), :mod:`seqlab.grading` (the checks that hidden tests use).
"""

from .env import device, seed

__all__ = ["device", "seed"]
__version__ = "0.1.0"
