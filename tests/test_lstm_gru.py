"""seqlab.chapters.lstm_gru: chapter 2's experiments, its shipped checkpoint, the
analysis its page runs on the trained models, and its gate explorer."""

import re

import ipywidgets
import matplotlib.pyplot as plt
import pytest
import torch

from seqlab.base import checkpoints
from seqlab.base.explorer import player_frames
from seqlab.base.plots import plot_test_loss
from seqlab.base.train import History
from seqlab.chapters.lstm_gru import (
    ADDING,
    CHECKPOINTS,
    KINDS,
    AddingModel,
    AddingSetup,
    GateExplorer,
    adding_batch,
    gate_explorer,
    input_gradient_curves,
    load_adding,
    make_checkpoint,
    mse,
    prediction_sensitivity,
    train_adding,
    training_seconds,
    trivial_baseline_mse,
)
from seqlab.lstm import LSTM

pytestmark = pytest.mark.lstm_gru

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def test_make_checkpoint_round_trips_into_explicit_models(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "FOLDER", tmp_path)
    tiny = AddingSetup(seq_len=6, hidden_size=4, steps=5, eval_every=5, test_size=20)
    monkeypatch.setitem(CHECKPOINTS, "tiny", tiny)
    path = make_checkpoint("tiny")
    assert path == tmp_path / "tiny.pt" and path.stat().st_size < 100_000
    saved = checkpoints.load(path)
    assert saved.preset == checkpoints.as_dict(tiny) and set(saved.state) == set(KINDS)
    loaded_cfg, models, histories = load_adding("tiny")
    assert loaded_cfg == tiny and set(models) == set(KINDS)
    for kind in KINDS:
        assert not models[kind].fused and not models[kind].training
        assert histories[kind].loss == pytest.approx(saved.meta["histories"][kind]["loss"])
        assert len(histories[kind].loss) == 5 and histories[kind].eval_step == [5]
    assert set(training_seconds("tiny")) == set(KINDS)
    with pytest.raises(ValueError, match="no adding-problem preset named 'huge'"):
        make_checkpoint("huge")


def test_shipped_checkpoints_were_made_from_todays_presets():
    for name, preset in CHECKPOINTS.items():
        why = checkpoints.stale(name, preset)
        assert why is None, (
            f"{why}: retrain it with `python -m seqlab.chapters checkpoints lstm_gru --only {name}`"
        )


def test_saved_checkpoints_are_small_and_solve_the_adding_problem_except_the_rnn():
    assert checkpoints.path_of(ADDING).stat().st_size < 500_000
    cfg, models, histories = load_adding()
    assert cfg.seq_len >= 100
    xs, ys = adding_batch(500, cfg.seq_len, torch.Generator().manual_seed(7))
    baseline = trivial_baseline_mse()
    assert mse(models["lstm"], xs, ys) < baseline / 100
    assert mse(models["gru"], xs, ys) < baseline / 100
    assert mse(models["rnn"], xs, ys) > baseline / 2
    assert all(len(h.loss) == cfg.steps for h in histories.values())
    assert all(seconds > 0 for seconds in training_seconds().values())


def test_prediction_sensitivity_is_a_share_per_step_and_follows_the_inputs_that_matter():
    torch.manual_seed(0)
    xs = torch.randn(4, 6, 2)
    share = prediction_sensitivity(lambda x: 3 * x[:, -2:, 0].sum(1, keepdim=True), xs)
    torch.testing.assert_close(share, torch.tensor([0, 0, 0, 0, 0.5, 0.5]))
    model = AddingModel("gru", 5)
    share = prediction_sensitivity(model, xs)
    assert share.shape == (6,) and share.sum().item() == pytest.approx(1.0)
    assert not xs.requires_grad  # the input is left alone


def test_gradients_reach_further_back_through_an_lstm_with_a_forget_bias():
    curves = input_gradient_curves(steps=40, hidden_size=16, forget_bias=2.0, probes=8)
    rnn, lstm0, lstm2, gru = curves.values()
    for curve in curves.values():
        assert curve[0].item() == pytest.approx(1.0)
    assert rnn[-1] < lstm2[-1] / 1e3 and lstm0[-1] < lstm2[-1] and gru[-1] < lstm2[-1]


def test_plot_test_loss_draws_one_line_per_run_and_the_baseline():
    runs = {
        "a": History(eval_step=[10, 20], eval_loss=[0.5, 0.1]),
        "b": History(eval_step=[10, 20], eval_loss=[0.4, 0.3]),
    }
    ax = plot_test_loss(runs, baseline=0.167, baseline_label="predicting 1")
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:2] == ["a", "b"] and "predicting 1 (0.167)" in labels
    assert ax.get_yscale() == "log"
    plt.close(ax.figure)


# ------------------------------------------------------------------ the explorer


@pytest.fixture(scope="module")
def gates():
    torch.manual_seed(0)
    return gate_explorer(LSTM(2, 6, forget_bias=1.0), positions=(0, 4, 8), second=15, seq_len=20)


def test_gate_explorer_offers_a_widget_and_an_offline_player_with_a_frame_per_position(gates):
    bundle = gates._repr_mimebundle_()
    assert {"text/plain", "text/html", WIDGET_VIEW} <= set(bundle)
    assert "GateExplorer" in bundle["text/plain"]
    html = bundle["text/html"]
    frames = player_frames(html)
    assert len(frames) == 3 and len(set(frames)) == 3
    assert all(frame.startswith(PNG_SIGNATURE) for frame in frames)
    assert "https://" not in html and "<link" not in html
    img = re.search(r'<img [^>]*id="_anim_img[^>]*>', html).group(0)
    assert re.search(r'alt="[^"]*forget gate[^"]*"', img)


def test_gate_explorer_slider_moves_the_first_marker(gates):
    slider, message, image = gates.widget().children
    assert isinstance(slider, ipywidgets.IntSlider) and slider.value == 0
    slider.value = 8
    assert bytes(image.value) == gates.png(8)
    xs = gates.sequence(8)
    assert xs.shape == (1, 20, 2) and xs[0, :, 1].nonzero().flatten().tolist() == [8, 15]
    trace = gates.trace(8)
    assert set(trace) == set("ifgoch") and trace["f"].shape == (20, 6)
    slider.value = 0
    assert message.value == ""


def test_gate_explorer_explains_a_first_marker_on_the_second():
    torch.manual_seed(0)
    explorer = gate_explorer(LSTM(2, 3), positions=(0, 4), second=5, seq_len=20)
    slider, message, image = explorer.widget().children
    shown = bytes(image.value)
    slider.value = 5  # the slider spans the first half, where this second marker sits
    assert "differ from the second" in message.value and bytes(image.value) == shown
    slider.value = 4
    assert message.value == "" and bytes(image.value) == explorer.png(4)


def test_gate_explorer_rejects_positions_outside_the_sequence():
    with pytest.raises(ValueError, match="positions should lie in"):
        GateExplorer(LSTM(2, 3), positions=(0, 30), seq_len=20, second=15)
