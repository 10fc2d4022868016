"""seqlab.induction: repeated random tokens, a causal attention-only transformer and the
induction and previous-token scores on hand-made patterns (the training run and its
phase change are tested in test_gpt_prompting.py)."""

import math

import matplotlib as mpl
import matplotlib.pyplot as plt
import pytest
import torch

from seqlab.induction import (
    AttentionOnlyTransformer,
    InductionConfig,
    example,
    head_name,
    head_scores,
    induction_score,
    induction_targets,
    position_losses,
    previous_token_score,
    repeated_tokens,
    token_losses,
)

pytestmark = pytest.mark.gpt_prompting


@pytest.fixture(autouse=True)
def _one_thread_and_closed_figures():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with mpl.rc_context():
        yield
    torch.set_num_threads(threads)
    plt.close("all")


def _pattern(T: int, targets: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) causal weights: one-hot on targets (B, T) where >= 0, uniform elsewhere."""
    B = targets.shape[0]
    w = torch.ones(T, T).tril()
    w = (w / w.sum(-1, keepdim=True)).repeat(B, 1, 1)  # (B, T, T)
    rows = targets >= 0
    w[rows] = 0.0
    b, t = rows.nonzero(as_tuple=True)
    w[b, t, targets[rows]] = 1.0
    return w[:, None]


# ---------------------------------------------------------------------------
# The data


def test_rows_of_one_period_are_a_segment_of_distinct_tokens_followed_by_itself():
    ids, seen = repeated_tokens(16, vocab=50, min_period=20, max_period=20,
                                generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert ids.shape == seen.shape == (16, 40) and ids.dtype == torch.long
    assert torch.equal(ids[:, 20:], ids[:, :20])
    assert all(len(set(row[:20].tolist())) == 20 for row in ids)
    assert ids.min() >= 0 and ids.max() < 50
    assert not seen[:, :20].any() and seen[:, 20:].all()
    longer, _ = repeated_tokens(16, vocab=50, min_period=20, max_period=20, length=41,
                                generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.equal(longer[:, :40], ids) and torch.equal(longer[:, 40], ids[:, 0])


def test_rows_of_varying_period_repeat_from_where_seen_starts():
    ids, seen = repeated_tokens(64, vocab=30, min_period=4, max_period=12,
                                generator=torch.Generator().manual_seed(1))  # fmt: skip
    periods = seen.int().argmax(dim=1)  # first position whose token came before
    assert periods.min() >= 4 and periods.max() <= 12 and len(set(periods.tolist())) > 3
    for row, L in zip(ids, periods.tolist(), strict=True):
        assert torch.equal(row[L:], row[: 24 - L]), "each row should repeat with period L"
        assert len(set(row[:L].tolist())) == L, "the segment's tokens should be distinct"


def test_the_same_generator_seed_gives_the_same_rows():
    a = repeated_tokens(8, 50, 8, 24, torch.Generator().manual_seed(3))
    b = repeated_tokens(8, 50, 8, 24, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_config_rejects_a_period_longer_than_the_vocabulary():
    with pytest.raises(ValueError, match="max_period=60"):
        InductionConfig(vocab=50, max_period=60)


# ---------------------------------------------------------------------------
# The model


def test_model_is_causal_changing_a_later_token_leaves_earlier_logits_alone():
    torch.manual_seed(0)
    model = AttentionOnlyTransformer(InductionConfig()).eval()
    ids, _ = repeated_tokens(2, 50, 8, 24, torch.Generator().manual_seed(0))
    changed = ids.clone()
    changed[:, 30] = (changed[:, 30] + 1) % 50
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert a.shape == (2, 48, 50)
    torch.testing.assert_close(a[:, :30], b[:, :30], rtol=0, atol=0)
    assert not torch.allclose(a[:, 30:], b[:, 30:])


def test_attention_returns_causal_weights_of_every_layer_and_head():
    torch.manual_seed(0)
    cfg = InductionConfig(n_layers=3, n_heads=4)
    model = AttentionOnlyTransformer(cfg)
    ids, _ = repeated_tokens(2, 50, 8, 24, torch.Generator().manual_seed(0))
    logits, weights = model.attention(ids)
    torch.testing.assert_close(logits, model(ids))
    assert len(weights) == 3 and all(w.shape == (2, 4, 48, 48) for w in weights)
    assert all((w.triu(1) == 0).all() for w in weights)
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(2, 4, 48))
    assert all(not layer.keep_weights for layer in model.layers)


def test_token_losses_are_the_cross_entropy_of_the_next_token():
    torch.manual_seed(0)
    model = AttentionOnlyTransformer(InductionConfig())
    ids, _ = repeated_tokens(3, 50, 8, 24, torch.Generator().manual_seed(0), length=49)
    losses = token_losses(model, ids)
    assert losses.shape == (3, 48)
    log_probs = torch.log_softmax(model(ids[:, :-1]), dim=-1)
    torch.testing.assert_close(losses[1, 5], -log_probs[1, 5, ids[1, 6]])


# ---------------------------------------------------------------------------
# Reading the heads


def test_induction_targets_point_after_the_last_earlier_occurrence():
    ids = torch.tensor([[5, 6, 7, 5, 6, 9, 5]])
    assert induction_targets(ids).tolist() == [[-1, -1, -1, 1, 2, -1, 4]]


def test_induction_targets_of_a_repeated_segment_are_the_offset_diagonal():
    ids, _ = repeated_tokens(4, 50, 10, 10, torch.Generator().manual_seed(0))
    targets = induction_targets(ids)
    assert (targets[:, :10] == -1).all()
    assert (targets[:, 10:] == torch.arange(10, 20) - 10 + 1).all()


def test_a_hand_made_induction_pattern_scores_one_and_a_uniform_one_scores_little():
    ids, _ = repeated_tokens(4, 50, 8, 16, torch.Generator().manual_seed(0))
    T = ids.shape[1]
    perfect = _pattern(T, induction_targets(ids))
    assert induction_score(perfect, ids).tolist() == pytest.approx([1.0])
    uniform = _pattern(T, torch.full_like(ids, -1))
    assert induction_score(uniform, ids).item() < 0.1
    assert previous_token_score(perfect).item() < 0.2


def test_induction_score_is_per_head():
    ids, _ = repeated_tokens(2, 50, 8, 16, torch.Generator().manual_seed(0))
    T = ids.shape[1]
    uniform = _pattern(T, torch.full_like(ids, -1))
    weights = torch.cat([uniform, _pattern(T, induction_targets(ids))], dim=1)  # (B, 2, T, T)
    scores = induction_score(weights, ids)
    assert scores.shape == (2,) and scores[0] < 0.1 and scores[1] == pytest.approx(1.0)


def test_a_hand_made_previous_token_pattern_scores_one():
    T = 12
    previous = (torch.arange(T) - 1).clamp(min=0)[None].repeat(3, 1)  # t -> t - 1 (0 -> 0)
    weights = _pattern(T, previous)
    assert previous_token_score(weights).item() == pytest.approx(1.0)


def test_scores_say_what_shapes_they_got():
    with pytest.raises(ValueError, match=r"\(B, h, T, T\).*\(2, 5, 5\)"):
        previous_token_score(torch.ones(2, 5, 5))
    with pytest.raises(ValueError, match="nothing to induce"):
        induction_score(torch.ones(1, 1, 3, 3), torch.tensor([[1, 2, 3]]))


def test_head_scores_give_every_layer_and_head_and_name_them_layer_dot_head():
    torch.manual_seed(0)
    model = AttentionOnlyTransformer(InductionConfig(n_layers=3, n_heads=2)).eval()
    ids, _ = repeated_tokens(4, 50, 24, 24, torch.Generator().manual_seed(0))
    scores = head_scores(model, ids)
    assert scores["induction"].shape == scores["previous_token"].shape == (3, 2)
    assert head_name(1, 0) == "1.0"


def test_position_losses_and_example_read_an_untrained_model_on_rows_s_s():
    torch.manual_seed(0)
    cfg = InductionConfig()
    model = AttentionOnlyTransformer(cfg).eval()
    losses = position_losses(model, batch_size=8)
    assert losses.shape == (2 * cfg.max_period,)
    assert losses.mean() > 0.8 * math.log(cfg.vocab)  # untrained: no better than a guess
    assert position_losses(model, period=10, batch_size=4).shape == (20,)
    with pytest.raises(ValueError, match="period should be in 1..24"):
        position_losses(model, period=25)
    ids, weights = example(model)
    assert ids.shape == (48,) and torch.equal(ids[:24], ids[24:])
    assert len(weights) == 2 and weights[1].shape == (2, 48, 48)
