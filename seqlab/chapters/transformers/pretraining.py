"""Chapter 5's pretraining experiment: masked tokens on unlabelled text, then few labels.

An encoder learns to predict hidden words of unlabelled English sentences
(:func:`pretrain_mlm`, Devlin et al., 2019); a copy of it and a fresh encoder
are then fine-tuned on a handful of labelled sentences (:func:`fine_tune`) of
a task the text never labels: does the verb agree with its subject
(:func:`agreement_examples`)? Both loops are :func:`seqlab.base.train.train`.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from ...base.data import VERBS, Vocab, pad_rows, translation_task
from ...base.train import train
from ...transformer import Classifier, MaskedLM, TransformerConfig

PRETRAIN_SENTENCES = 30_000  # unlabelled English sentences for the masked-token pretraining
PRETRAIN_SEED = 1  # their seed; the labelled agreement examples use another and exclude them


def english_sentences(n: int, seed: int) -> list[list[str]]:
    """n distinct English sentences of chapter 3's toy grammar (the source side only)."""
    task = translation_task(n_train=n, n_valid=0, n_test=0, seed=seed)
    return [ex.source for ex in task.train]


def pretraining_vocab() -> Vocab:
    """The vocabulary of the pretraining sentences (chapter 3's English words)."""
    return Vocab(t for s in english_sentences(PRETRAIN_SENTENCES, PRETRAIN_SEED) for t in s)


def verb_forms() -> dict[str, str]:
    """Each English verb form -> the same verb in the other number ("sees" <-> "see")."""
    flip = {}
    for sg, pl, _, _ in VERBS:
        flip[sg], flip[pl] = pl, sg
    return flip


def agreement_examples(n: int, seed: int, exclude=()) -> list[tuple[list[str], int]]:
    """A labelled task for fine-tuning: does the verb agree with its subject?

    Half of the sentences keep their verb (label 1), the other half get the
    verb in the wrong number ("the cats sees a dog", label 0). Telling them
    apart needs the number of every noun, which the sentences alone never
    label. Sentences in ``exclude`` (token tuples) are skipped.
    -> n pairs (tokens, label).
    """
    flip = verb_forms()
    rng = random.Random(seed)
    exclude = set(exclude)
    out = []
    for sentence in english_sentences(3 * n, seed):
        if tuple(sentence) in exclude:
            continue
        label = rng.random() < 0.5
        if not label:
            i = next(i for i, tok in enumerate(sentence) if tok in flip)
            sentence = sentence[:i] + [flip[sentence[i]]] + sentence[i + 1 :]
        out.append((sentence, int(label)))
        if len(out) == n:
            return out
    raise ValueError(f"could draw only {len(out)} of {n} examples")


def encode_batch(sentences: Sequence[Sequence[str]], vocab: Vocab,
                 device=None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Token lists -> (ids (B, T) padded with pad_id, real (B, T) True at real tokens)."""
    ids = pad_rows([vocab.encode(list(s)) for s in sentences], vocab.pad_id)  # (B, T)
    real = ids != vocab.pad_id
    return ids.to(device), real.to(device)


def mask_tokens(ids: torch.Tensor, real: torch.Tensor, mask_id: int, p: float,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Masked tokens, in the plainest of BERT's variants: each real token is chosen with
    probability p, and every chosen token becomes ``mask_id``. (Devlin et al., 2019,
    section 3.1, replace 80 % of the chosen tokens by [MASK], 10 % by a random token and
    leave 10 % unchanged; appendix C.2 compares the variants.) ids, real: (B, T).
    -> (inputs (B, T), targets (B, T): the original id where chosen, -100 elsewhere)."""
    chosen = (torch.rand(ids.shape, generator=generator) < p).to(ids.device) & real
    inputs = torch.where(chosen, torch.full_like(ids, mask_id), ids)
    targets = torch.where(chosen, ids, torch.full_like(ids, -100))
    return inputs, targets


def mlm_batches(sentences, vocab: Vocab, batch_size: int, p: float,
                generator: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:  # fmt: skip
    """Endless masked-token batches of sentences drawn with replacement:
    (inputs, real, targets), each (B, T), as :func:`mask_tokens` makes them.
    The vocabulary's unk token serves as the mask: the generated text never contains it."""
    while True:
        rows = torch.randint(len(sentences), (batch_size,), generator=generator).tolist()
        ids, real = encode_batch([sentences[i] for i in rows], vocab)
        inputs, targets = mask_tokens(ids, real, vocab.unk_id, p, generator)
        yield inputs, real, targets


def mlm_loss(model: MaskedLM, batch) -> torch.Tensor:
    """Cross-entropy of the masked positions of an :func:`mlm_batches` batch."""
    inputs, real, targets = batch
    logits = model(inputs, real)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)


def pretrain_mlm(model: MaskedLM, sentences, vocab: Vocab, steps: int, batch_size: int = 64,
                 lr: float = 1e-3, p: float = 0.15, seed: int = 0,
                 clip_norm: float | None = 1.0, progress: bool = False) -> list[float]:  # fmt: skip
    """Masked-token pretraining on unlabelled sentences with Adam; -> the loss at every step.

    clip_norm: global-norm gradient clipping (None = none).
    """
    g = torch.Generator().manual_seed(seed)
    history = train(model, mlm_batches(sentences, vocab, batch_size, p, g), mlm_loss,
                    torch.optim.Adam(model.parameters(), lr=lr), steps, clip_norm=clip_norm,
                    progress=progress, desc="pretrain", random_seed=seed)  # fmt: skip
    return history.loss


def labelled_batches(examples, vocab: Vocab, batch_size: int,
                     generator: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:  # fmt: skip
    """Endless batches of (tokens, label) pairs drawn with replacement:
    (ids (B, T), real (B, T), labels (B,))."""
    size = min(batch_size, len(examples))
    while True:
        rows = torch.randint(len(examples), (size,), generator=generator).tolist()
        ids, real = encode_batch([examples[i][0] for i in rows], vocab)
        yield ids, real, torch.tensor([examples[i][1] for i in rows])


def classifier_loss(classifier: Classifier, batch) -> torch.Tensor:
    """Cross-entropy of a :func:`labelled_batches` batch."""
    ids, real, labels = batch
    return F.cross_entropy(classifier(ids, real), labels)


def fine_tune(classifier: Classifier, examples, vocab: Vocab, steps: int = 200,
              batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
              clip_norm: float | None = None) -> list[float]:  # fmt: skip
    """Train a :class:`Classifier` (every weight) on labelled (tokens, label) pairs with Adam;
    -> the loss at every step. The classifier is left in eval mode."""
    g = torch.Generator().manual_seed(seed)
    history = train(classifier, labelled_batches(examples, vocab, batch_size, g),
                    classifier_loss, torch.optim.Adam(classifier.parameters(), lr=lr), steps,
                    clip_norm=clip_norm, desc="fine-tune", random_seed=seed)  # fmt: skip
    classifier.eval()
    return history.loss


@torch.no_grad()
def classifier_accuracy(classifier: Classifier, examples, vocab: Vocab,
                        batch_size: int = 500) -> float:  # fmt: skip
    """The fraction of (tokens, label) pairs the classifier gets right."""
    device = next(classifier.parameters()).device
    classifier.eval()
    right = 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        ids, real = encode_batch([s for s, _ in chunk], vocab, device)
        pred = classifier(ids, real).argmax(-1).cpu()
        right += (pred == torch.tensor([y for _, y in chunk])).sum().item()
    return right / len(examples)


def classifier_from(pretrained: MaskedLM | None, vocab_size: int, cfg: TransformerConfig,
                    seed: int = 0) -> Classifier:  # fmt: skip
    """A fresh two-class :class:`Classifier`, its encoder copied from ``pretrained`` if given."""
    torch.manual_seed(seed)
    clf = Classifier(vocab_size, cfg, 2)
    if pretrained is not None:
        clf.encoder.load_state_dict(pretrained.encoder.state_dict())
    return clf


def smooth(values: Sequence[float], n: int = 20) -> list[float]:
    """The running mean of the last ``n`` values (fewer at the start), for loss curves."""
    return [statistics.fmean(values[max(0, i - n + 1) : i + 1]) for i in range(len(values))]
