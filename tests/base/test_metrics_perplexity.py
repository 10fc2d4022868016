"""seqlab.base.metrics.perplexity against torch's cross-entropy, and its landmarks."""

import math

import pytest
import torch
import torch.nn.functional as F

from seqlab.base.metrics import perplexity

pytestmark = pytest.mark.base

F64 = torch.float64


def _batch(seed=0, B=4, T=6, V=9, pad_id=0):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(B, T, V, generator=g, dtype=F64)
    targets = torch.randint(1, V, (B, T), generator=g)
    targets[0, 2:] = pad_id
    targets[3, 5:] = pad_id
    return logits, targets


@pytest.mark.parametrize("seed", range(5))
def test_perplexity_is_exp_of_torch_cross_entropy_ignoring_pad(seed):
    logits, targets = _batch(seed)
    want = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0).exp()
    assert perplexity(logits, targets, 0) == pytest.approx(want.item(), rel=1e-6, abs=1e-6)
    # flat (N, V) logits give the same, and no pad_id scores every position
    assert perplexity(logits.flatten(0, 1), targets.flatten(), 0) == pytest.approx(
        want.item(), rel=1e-6
    )
    every = F.cross_entropy(logits.flatten(0, 1), targets.flatten()).exp()
    assert perplexity(logits, targets) == pytest.approx(every.item(), rel=1e-6)


@pytest.mark.parametrize("V", [2, 7, 50])
def test_a_uniform_model_over_v_tokens_has_perplexity_v(V):
    targets = torch.randint(0, V, (3, 5), generator=torch.Generator().manual_seed(V))
    assert perplexity(torch.zeros(3, 5, V, dtype=F64), targets) == pytest.approx(V, rel=1e-9)


def test_a_sure_and_right_model_has_perplexity_one_and_pads_do_not_count():
    targets = torch.tensor([[1, 2, 0], [3, 0, 0]])
    logits = 50.0 * F.one_hot(targets, 4).to(F64)
    assert perplexity(logits, targets, pad_id=0) == pytest.approx(1.0, abs=1e-12)
    # making the padded positions' logits wrong changes nothing
    logits[targets == 0] = torch.tensor([0.0, 0.0, 0.0, 99.0], dtype=F64)
    assert perplexity(logits, targets, pad_id=0) == pytest.approx(1.0, abs=1e-12)
    assert perplexity(logits, targets) > 1e10  # ... unless pads are scored


def test_perplexity_is_a_token_weighted_mean_not_a_mean_over_sentences():
    logits, targets = _batch(1)
    real = targets != 0
    nll = -torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    per_sentence = [(nll[b][real[b]].mean()).item() for b in range(len(targets))]
    got = math.log(perplexity(logits, targets, 0))
    assert got == pytest.approx((nll[real].sum() / real.sum()).item(), rel=1e-9)
    assert got != pytest.approx(sum(per_sentence) / len(per_sentence), rel=1e-3)


def test_perplexity_rejects_mismatched_shapes_and_an_all_padding_batch():
    with pytest.raises(ValueError, match="expected logits"):
        perplexity(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="no real"):
        perplexity(torch.zeros(2, 3, 5), torch.zeros(2, 3, dtype=torch.long), pad_id=0)
