"""Chapter 5, transformers: the experiments, trained models and explorer of the book page.

The transformer itself (attention, positions, layers, models) is the idea
module :mod:`seqlab.transformer`; this package holds what the chapter does
with it, in four modules:

- :mod:`.translation`: chapter 3's translation task, training against the
  clock (:func:`timed_training`), the attention of a trained model
  (:func:`attention_maps`, :func:`head_alignment`) and timing a training step
  (:func:`step_seconds`, :func:`race`);
- :mod:`.pretraining`: masked-token pretraining and fine-tuning on few labels
  (:func:`pretrain_mlm`, :func:`fine_tune`, :func:`agreement_examples`);
- :mod:`.presets`: the shipped models (:data:`CHECKPOINTS`,
  :func:`make_checkpoint`, :func:`load_checkpoint`, :func:`load_runs`);
- :mod:`.training`: the training recipe: warm-up (:func:`noam_lr`,
  :func:`warmup_schedule`, :func:`warmup_runs`) and label smoothing
  (:func:`label_smoothed_loss`, :func:`smoothing_floor`, :func:`calibration`,
  :func:`smoothing_temperature`);
- :mod:`.explorer`: :func:`head_explorer`, every head by attention and layer;
- :mod:`.scaling`: attention itself measured: why 1/sqrt(d)
  (:func:`softmax_saturation`), its cost against the length
  (:func:`attention_cost`, :func:`sdpa_backend`) and what rotary positions
  keep (:func:`offset_spread`).
"""

from .explorer import HeadExplorer, head_explorer
from .presets import (
    CHECKPOINTS,
    Preset,
    build,
    config_of,
    load_checkpoint,
    load_runs,
    make_checkpoint,
    model_from,
    train_preset,
    train_runs,
)
from .pretraining import (
    PRETRAIN_SEED,
    PRETRAIN_SENTENCES,
    agreement_examples,
    classifier_accuracy,
    classifier_from,
    classifier_loss,
    encode_batch,
    english_sentences,
    fine_tune,
    labelled_batches,
    mask_tokens,
    mlm_batches,
    mlm_loss,
    pretrain_mlm,
    pretraining_vocab,
    smooth,
    verb_forms,
)
from .scaling import attention_cost, offset_spread, sdpa_backend, softmax_saturation
from .training import (
    calibration,
    label_smoothed_loss,
    noam_lr,
    run_name,
    schedule_run,
    smoothed_targets,
    smoothing_floor,
    smoothing_temperature,
    token_logits,
    warmup_runs,
    warmup_schedule,
)
from .translation import (
    ATTENTION_KINDS,
    TASK,
    attention_maps,
    head_alignment,
    race,
    random_batch,
    step_seconds,
    steps_to,
    task_of,
    time_to,
    timed_training,
)

__all__ = [
    "ATTENTION_KINDS",
    "CHECKPOINTS",
    "HeadExplorer",
    "PRETRAIN_SEED",
    "PRETRAIN_SENTENCES",
    "Preset",
    "TASK",
    "agreement_examples",
    "attention_cost",
    "attention_maps",
    "build",
    "calibration",
    "classifier_accuracy",
    "classifier_from",
    "classifier_loss",
    "config_of",
    "encode_batch",
    "english_sentences",
    "fine_tune",
    "head_alignment",
    "head_explorer",
    "label_smoothed_loss",
    "labelled_batches",
    "load_checkpoint",
    "load_runs",
    "make_checkpoint",
    "mask_tokens",
    "mlm_batches",
    "mlm_loss",
    "model_from",
    "noam_lr",
    "offset_spread",
    "pretrain_mlm",
    "pretraining_vocab",
    "race",
    "random_batch",
    "run_name",
    "schedule_run",
    "sdpa_backend",
    "smooth",
    "smoothed_targets",
    "smoothing_floor",
    "smoothing_temperature",
    "softmax_saturation",
    "step_seconds",
    "steps_to",
    "task_of",
    "time_to",
    "timed_training",
    "token_logits",
    "train_preset",
    "train_runs",
    "verb_forms",
    "warmup_runs",
    "warmup_schedule",
]
