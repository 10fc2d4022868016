"""Chapter 2's experiments (seqlab.chapters.lstm_gru), its checkpoints, and the training loop they use."""

import itertools

import pytest
import torch

from seqlab.base.train import History, to_device, train
from seqlab.chapters.lstm_gru import (
    CHECKPOINTS,
    KINDS,
    AddingModel,
    AddingSetup,
    adding_batch,
    input_gradient_curves,
    load_checkpoints,
    mse,
    save_checkpoints,
    train_adding,
    trivial_baseline_mse,
)

pytestmark = pytest.mark.lstm_gru


def test_adding_batch_marks_one_value_in_each_half_and_sums_them():
    xs, ys = adding_batch(500, 20, torch.Generator().manual_seed(0))
    assert xs.shape == (500, 20, 2) and ys.shape == (500, 1)
    markers = xs[..., 1]
    assert torch.equal(markers.sum(dim=1), torch.full((500,), 2.0))
    assert torch.equal(markers[:, :10].sum(dim=1), torch.ones(500))
    torch.testing.assert_close(ys[:, 0], (xs[..., 0] * markers).sum(dim=1))
    with pytest.raises(ValueError, match="seq_len >= 2, got 1"):
        adding_batch(4, 1)


def test_trivial_baseline_is_the_error_of_predicting_one():
    _, ys = adding_batch(200_000, 10, torch.Generator().manual_seed(1))
    assert ((ys - 1) ** 2).mean().item() == pytest.approx(trivial_baseline_mse(), rel=0.01)


@pytest.mark.parametrize("kind", KINDS)
def test_explicit_adding_model_matches_its_fused_twin(kind):
    torch.manual_seed(0)
    fused = AddingModel(kind, 8, forget_bias=1.0, fused=True).double()
    explicit = fused.explicit()
    assert not explicit.fused and explicit.explicit() is explicit
    xs, _ = adding_batch(3, 15)
    xs = xs.double()
    torch.testing.assert_close(explicit(xs), fused(xs), rtol=1e-6, atol=1e-6)


def test_adding_model_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="kind should be one of"):
        AddingModel("transformer", 4)


def test_short_training_run_records_losses_and_test_losses():
    cfg = AddingSetup(seq_len=10, hidden_size=8, steps=30, eval_every=10, test_size=50)
    model, history = train_adding("gru", cfg)
    assert len(history.loss) == 30 and history.eval_step == [10, 20, 30]
    assert all(loss > 0 for loss in history.eval_loss)
    assert model.fused and model.training


def test_checkpoints_round_trip_into_explicit_models(tmp_path):
    cfg = AddingSetup(seq_len=6, hidden_size=4, steps=5, eval_every=5, test_size=20)
    path = tmp_path / "ckpt.pt"
    saved = save_checkpoints(path, cfg, progress=False)
    loaded_cfg, models, histories = load_checkpoints(path)
    assert loaded_cfg == cfg and set(models) == set(KINDS)
    for kind in KINDS:
        assert not models[kind].fused
        assert histories[kind].loss == pytest.approx(saved["models"][kind]["loss"].tolist())
    assert path.stat().st_size < 100_000


def test_saved_checkpoints_are_small_and_solve_the_adding_problem_except_the_rnn():
    assert CHECKPOINTS.stat().st_size < 500_000
    cfg, models, histories = load_checkpoints()
    assert cfg.seq_len >= 100
    xs, ys = adding_batch(500, cfg.seq_len, torch.Generator().manual_seed(7))
    baseline = trivial_baseline_mse()
    assert mse(models["lstm"], xs, ys) < baseline / 100
    assert mse(models["gru"], xs, ys) < baseline / 100
    assert mse(models["rnn"], xs, ys) > baseline / 2
    assert all(len(h.loss) == cfg.steps for h in histories.values())


def test_gradients_reach_further_back_through_an_lstm_with_a_forget_bias():
    curves = input_gradient_curves(steps=40, hidden_size=16, forget_bias=2.0, probes=8)
    rnn, lstm0, lstm2, gru = curves.values()
    for curve in curves.values():
        assert curve[0].item() == pytest.approx(1.0)
    assert rnn[-1] < lstm2[-1] / 1e3 and lstm0[-1] < lstm2[-1] and gru[-1] < lstm2[-1]


def test_train_moves_batches_to_the_model_device_and_seeds_itself():
    def run(draws_before):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 1).double()
        torch.randn(draws_before)  # leaves the global generator somewhere else each time
        batches = ((torch.randn(4, 2), torch.randn(4, 1)) for _ in itertools.count())

        def loss_fn(m, batch):
            x, y = batch
            assert x.dtype == torch.float32  # moved to the device, dtype left alone
            return ((m(x.double()) - y.double()) ** 2).mean()

        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return train(model, batches, loss_fn, opt, 5, random_seed=3, eval_fn=lambda m: 1.0)

    first, second = run(1), run(7)
    assert isinstance(first, History) and first.loss == second.loss
    assert first.eval_step == [5] and first.eval_loss == [1.0]


def test_to_device_handles_nested_batches():
    batch = {"x": torch.zeros(2), "pair": (torch.ones(1), [torch.ones(3)]), "n": 3}
    moved = to_device(batch, torch.device("cpu"))
    assert moved["n"] == 3 and isinstance(moved["pair"], tuple)
    assert isinstance(moved["pair"][1], list) and torch.equal(moved["pair"][1][0], torch.ones(3))
