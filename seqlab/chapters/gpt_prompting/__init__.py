"""Chapter 6, GPT and prompting: the small GPT's pretraining, checkpoint and evaluation,
the induction-head experiment, the page's measurements and the prompt playground.

A package, since the chapter does more than one module should hold; every
public name is re-exported here, so the page and the tests import
``from seqlab.chapters.gpt_prompting import ...``:

- :mod:`.pretraining`: :class:`TrainConfig`, :func:`train_model`, :data:`CHECKPOINTS`,
  :func:`make_checkpoint`, :func:`load`, :func:`finetune`, :func:`evaluate`;
- :mod:`.heads`: :func:`train_induction` and its :class:`InductionHistory`,
  :func:`phase_change_step` and the figures of the phase change;
- :mod:`.analysis`: sampling at several temperatures, the scale of GPT-2 and
  GPT-3, the k-shot table and figure, scoring choices, perplexity, and what the
  first position sees in the three shapes of transformer;
- :mod:`.playground`: :func:`prompt_playground` and :class:`PromptSetting`.
"""

from .analysis import (
    NAMES,
    PUBLISHED,
    SCALE_HEADER,
    SECONDS_PER_YEAR,
    TOKENS,
    answer_flags,
    choice_rows,
    choice_scores,
    continuations_by_temperature,
    conventions,
    document_lines,
    duration,
    first_position_change,
    follows_rule,
    kshot_rows,
    matmul_flops_per_second,
    perplexity,
    plot_kshot,
    readable,
    scale,
    scale_rows,
    seconds_per_training_step,
)
from .heads import (
    InductionHistory,
    head_score_rows,
    induction_batches,
    moving_average,
    phase_change_step,
    plot_head_attention,
    plot_head_scores_during_training,
    plot_position_losses,
    plot_training,
    train_induction,
)
from .playground import PromptPlayground, PromptSetting, prompt_playground, show_char
from .pretraining import (
    CHECKPOINT,
    CHECKPOINTS,
    Evaluation,
    FinetuneConfig,
    TrainConfig,
    evaluate,
    finetune,
    finetune_batches,
    finetuned_accuracy,
    history_of,
    load,
    lr_at,
    make_checkpoint,
    optimizer,
    save_model,
    train_model,
)

__all__ = [
    "CHECKPOINT", "CHECKPOINTS", "NAMES", "PUBLISHED", "SCALE_HEADER", "SECONDS_PER_YEAR",
    "TOKENS", "Evaluation", "FinetuneConfig", "InductionHistory", "PromptPlayground",
    "PromptSetting", "TrainConfig", "answer_flags", "choice_rows", "choice_scores",
    "continuations_by_temperature", "conventions", "document_lines", "duration", "evaluate",
    "first_position_change",
    "finetune", "finetune_batches", "finetuned_accuracy", "follows_rule", "head_score_rows",
    "history_of", "induction_batches", "kshot_rows", "load", "lr_at", "make_checkpoint",
    "matmul_flops_per_second", "perplexity",
    "seconds_per_training_step", "moving_average", "optimizer", "phase_change_step",
    "plot_head_attention", "plot_head_scores_during_training", "plot_kshot",
    "plot_position_losses", "plot_training", "prompt_playground", "readable", "save_model",
    "scale", "scale_rows", "show_char", "train_induction", "train_model",
]  # fmt: skip
