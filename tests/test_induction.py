"""seqlab.induction: repeated random tokens, a causal attention-only transformer, the
induction and previous-token scores on hand-made patterns, and a short training run
in which the repeated tokens' loss falls well below the first ones' (Olsson et al., 2022)."""

import math

import matplotlib as mpl
import matplotlib.pyplot as plt
import pytest
import torch

from seqlab.induction import (
    AttentionOnlyTransformer,
    InductionConfig,
    InductionHistory,
    example,
    head_scores,
    induction_score,
    induction_targets,
    phase_change_step,
    plot_head_attention,
    plot_head_scores_during_training,
    plot_position_losses,
    plot_training,
    position_losses,
    previous_token_score,
    repeated_tokens,
    token_losses,
    train_induction,
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


def test_phase_change_step_finds_where_the_repeated_loss_falls_below_half():
    first = [4.0] * 100
    second = [4.0] * 60 + [0.5] * 40
    history = InductionHistory(loss=first, loss_first=first, loss_second=second)
    assert phase_change_step(history, window=1) == 61
    flat = InductionHistory(loss=first, loss_first=first, loss_second=first)
    assert phase_change_step(flat) is None


# ---------------------------------------------------------------------------
# Training: the phase change


@pytest.fixture(scope="module")
def trained():
    cfg = InductionConfig(steps=600, eval_every=50)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return cfg, *train_induction(cfg)
    finally:
        torch.set_num_threads(threads)


def test_a_short_run_learns_the_repeated_tokens_and_not_the_first_ones(trained):
    cfg, model, history = trained
    assert len(history.loss) == len(history.loss_first) == len(history.loss_second) == 600
    first = sum(history.loss_first[-50:]) / 50
    second = sum(history.loss_second[-50:]) / 50
    assert first > 0.9 * math.log(cfg.vocab), "random first-time tokens cannot be predicted"
    assert second < 0.5, f"the repeated tokens' loss should be small, got {second:.2f}"
    step = phase_change_step(history)
    assert step is not None and 100 < step < 600, f"phase change at step {step}"
    losses = position_losses(model, batch_size=64)
    L = cfg.max_period
    assert losses.shape == (2 * L,)
    # after 600 steps the last few positions still lag (their keys are rarely new tokens in
    # training); the full run of the chapter brings them down too
    assert losses[: L - 1].mean() > 3.0 and losses[L:].median() < 0.5


def test_the_trained_model_has_an_induction_head_in_layer_1_and_a_previous_token_head_in_layer_0(
    trained,
):
    cfg, model, history = trained
    ids, _ = repeated_tokens(64, cfg.vocab, cfg.max_period, cfg.max_period,
                             torch.Generator().manual_seed(5))  # fmt: skip
    scores = head_scores(model, ids)
    assert scores["induction"].shape == scores["previous_token"].shape == (2, 2)
    assert scores["induction"][1].max() > 0.6
    assert scores["induction"][0].max() < 0.2
    assert scores["previous_token"][0].max() > 0.3
    assert len(history.eval_step) == len(history.induction) and history.eval_step[-1] == 600
    assert history.induction[0][1][0] < 0.2, "no induction head before training"


def test_training_is_deterministic_for_a_seed():
    cfg = InductionConfig(steps=5, eval_every=5)
    _, a = train_induction(cfg)
    _, b = train_induction(cfg)
    assert a.loss == b.loss and a.induction == b.induction


def test_the_figures_draw_the_runs_curves_and_a_heads_pattern(trained):
    cfg, model, history = trained
    ax = plot_training(history, vocab=cfg.vocab)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:3] == ["first time", "repeated", "all tokens"]
    assert any(label.startswith("phase change") for label in labels)
    ax = plot_head_scores_during_training(history)
    assert len(ax.get_lines()) >= 4
    ax = plot_position_losses(position_losses(model, batch_size=8), vocab=cfg.vocab)
    assert len(ax.patches) == 2 * cfg.max_period
    ids, weights = example(model)
    assert ids.shape == (48,) and weights[1].shape == (2, 48, 48)
    ax = plot_head_attention(weights[1][0], ids, title="head 1.0")
    assert ax.get_title() == "head 1.0" and len(ax.patches) == cfg.max_period
    with pytest.raises(ValueError, match="got \\(48, 47\\)"):
        plot_head_attention(weights[1][0][:, :47], ids)
