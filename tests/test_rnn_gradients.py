"""seqlab.chapters.rnn_gradients: chapter 1's experiments, the numbers of its page, and
its explorer (live in Jupyter, a player in the book)."""

import math
import re
from pathlib import Path

import ipywidgets
import matplotlib.pyplot as plt
import pytest
import torch

from seqlab.base.explorer import player_frames
from seqlab.base.train import History
from seqlab.chapters.rnn_gradients import (
    ClippingSetup,
    SavedTensorMeter,
    SpectralRadiusExplorer,
    baseline_mse,
    clipping_experiment,
    depth_experiment,
    gradient_norm_curves,
    late_loss,
    mean_task_batch,
    sensitivity_experiment,
    share_on_wall,
    spectral_radius_explorer,
    truncation_experiment,
)

pytestmark = pytest.mark.rnn_gradients

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_baseline_mse_is_the_variance_of_the_target():
    cfg = ClippingSetup()
    x = torch.rand(200_000, cfg.seq_len, generator=torch.Generator().manual_seed(0)) * 2 - 1
    target = cfg.target_scale * x.mean(dim=1)
    assert target.var().item() == pytest.approx(baseline_mse(cfg), rel=0.02)


def test_without_clipping_training_diverges_and_gradient_clipping_trains():
    cfg = ClippingSetup()  # the setup the book shows
    plain, _ = clipping_experiment("none", cfg=cfg)
    assert plain.diverged and math.isinf(plain.loss[-1])
    # the book's statistic: the median over seeds (seed 0 learns slowly, and where it
    # ends within its 400 steps depends on the CPU's floating-point kernels)
    late = []
    for s in range(3):
        clipped, _ = clipping_experiment("gradient", cfg=cfg, random_seed=s)
        assert not clipped.diverged
        assert max(clipped.grad_norm) > 1.0  # clipping was actually needed
        late.append(sum(clipped.loss[-20:]) / 20)
    assert sorted(late)[1] < baseline_mse(cfg)


def test_weight_clamping_bounds_the_weights_but_does_not_bound_the_steps():
    history, model = clipping_experiment("weights", threshold=1.0, cfg=ClippingSetup(steps=150))
    assert all(p.abs().max() <= 1.0 for p in model.parameters())
    assert max(history.grad_norm) > 100.0


def test_clipping_experiment_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="mode should be"):
        clipping_experiment("norm")


def test_gradient_norm_curves_are_flat_at_one_for_orthogonal_linear_rnn():
    curves = gradient_norm_curves([0.5, 1.0, 1.5], steps=30, nonlinearity="linear")
    assert curves[0.5][-1] < 1e-6 and curves[1.5][-1] > 1e4
    torch.testing.assert_close(curves[1.0], torch.ones(30, dtype=torch.float64))


def test_sensitivity_experiment_shares_sum_to_one():
    shares = sensitivity_experiment(seq_len=20, batch_size=8)
    for s in shares.values():
        assert s.sum().item() == pytest.approx(1.0, rel=1e-5)
    assert shares["unidirectional"][:10].sum() < 0.05


def test_late_loss_averages_the_last_steps():
    history = History(loss=[100.0] * 10 + [1.0, 2.0, 3.0])
    assert late_loss(history, last=3) == 2.0
    assert late_loss(History(loss=[4.0, 2.0]), last=50) == 3.0  # a short run: all of it


def test_share_on_wall_counts_the_entries_clamped_to_either_wall():
    w = torch.tensor([1.0, -1.0, 0.5, 0.0, -0.9999999])
    assert share_on_wall(w, 1.0) == pytest.approx(3 / 5)
    assert share_on_wall(w, 2.0) == 0.0


# ------------------------------------------------------------------ truncated BPTT and depth


def test_saved_tensor_meter_counts_what_autograd_keeps_and_sees_it_freed():
    w = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 4, dtype=torch.float64)
    with SavedTensorMeter() as meter:
        h = x
        for _ in range(5):
            h = torch.tanh(h @ w)  # saves h and w for the matmul, the output for tanh
        assert meter.live == 14  # the first matmul keeps no w: x needs no gradient
        h.sum().backward()
    assert meter.peak == 14 and meter.live == 0
    # distinct storages: x and w once, and the five outputs of tanh
    assert meter.peak_bytes == (x.numel() + w.numel() + 5 * 3 * 4) * 8
    with SavedTensorMeter() as meter:
        with torch.no_grad():
            torch.tanh(x @ w)
    assert meter.peak == 0


@pytest.fixture(scope="module")
def truncation():
    _, model = clipping_experiment("gradient", cfg=ClippingSetup(steps=30), random_seed=1)
    cfg = ClippingSetup()
    return truncation_experiment(model, cfg, ks=(1, 4, 10, 40), batch_size=32, repeats=2)


def test_truncation_to_the_whole_sequence_is_full_bptt(truncation):
    results, _ = truncation
    full = results[-1]
    assert full.k == 40 and full.cosine == pytest.approx(1.0) and full.relative_error == 0.0


def test_truncated_gradient_is_the_sum_of_the_last_k_per_step_terms(truncation):
    """The loss reads the last state only: truncation to k keeps the terms of the
    last chunk, exactly those of full BPTT (their deltas never cross a detach)."""
    results, terms = truncation
    T = terms.shape[0]
    for r in results:
        torch.testing.assert_close(terms[T - r.k :].sum(0), r.gradient, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(terms.sum(0), results[-1].gradient, rtol=1e-10, atol=1e-12)


def test_truncation_is_biased_and_its_memory_grows_with_k(truncation):
    results, _ = truncation
    assert results[0].cosine < 0.9 and results[0].relative_error > 0.1
    saved = [r.saved_tensors for r in results]
    assert saved == sorted(saved) and saved[-1] > 10 * saved[0]
    assert all(r.seconds > 0 for r in results)
    nbytes = [r.saved_bytes for r in results]
    assert nbytes == sorted(nbytes)


def test_truncation_experiment_leaves_the_model_untouched():
    _, model = clipping_experiment("gradient", cfg=ClippingSetup(steps=5))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    truncation_experiment(model, ks=(5,), batch_size=4, repeats=1)
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32
        assert torch.equal(p.detach(), before[name]), name


def test_mean_task_batch_targets_the_scaled_mean():
    cfg = ClippingSetup()
    x, y = mean_task_batch(cfg, batch_size=8)
    assert x.shape == (8, cfg.seq_len, 1) and y.shape == (8, 1)
    torch.testing.assert_close(y, cfg.target_scale * x.mean(dim=1))
    assert x.min() >= -1 and x.max() <= 1


def test_depth_experiment_counts_parameters_and_the_gradient_fades_with_depth():
    out = depth_experiment(depths=(1, 2, 3), seq_len=20, batch_size=16)
    D, H = 8, 32
    for depth, row in out.items():
        assert row["parameters"] == H * (D + H + 1) + (depth - 1) * H * (2 * H + 1)
        assert row["sensitivity"].shape == (20,)
    last = [out[depth]["sensitivity"][-1].item() for depth in (1, 2, 3)]
    assert last[0] > last[1] > last[2]


# ------------------------------------------------------------------ the explorer


@pytest.fixture(scope="module")
def explorer() -> SpectralRadiusExplorer:
    return spectral_radius_explorer(rhos=(0.5, 1.0, 2.0), steps=12, hidden_size=8)


@pytest.fixture(scope="module")
def bundle(explorer) -> dict:
    return explorer._repr_mimebundle_()


def test_mime_bundle_offers_the_live_widget_and_a_static_html_fallback(explorer, bundle):
    assert {"text/plain", "text/html", WIDGET_VIEW} <= set(bundle)
    assert bundle[WIDGET_VIEW]["model_id"] == explorer.widget().model_id
    assert bundle[WIDGET_VIEW]["version_major"] == 2
    assert "SpectralRadiusExplorer" in bundle["text/plain"]


def test_html_fallback_is_a_player_with_one_png_frame_per_rho(explorer, bundle):
    html = bundle["text/html"]
    assert 'class="anim-slider"' in html and "anim-buttons" in html
    frames = player_frames(html)
    assert len(frames) == len(explorer.rhos)
    assert all(frame.startswith(PNG_SIGNATURE) for frame in frames)


def test_html_fallback_frames_differ_between_rho_values(bundle):
    frames = player_frames(bundle["text/html"])
    assert len(set(frames)) == len(frames)


def test_html_fallback_loads_nothing_from_the_network(bundle):
    html = bundle["text/html"]
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html
    assert 'class="fa ' not in html  # Font Awesome icons need its stylesheet
    assert re.findall(r"<script[^>]*\bsrc=", html) == []


def test_html_fallback_frame_image_has_alt_text(bundle):
    img = re.search(r'<img [^>]*id="_anim_img[^>]*>', bundle["text/html"]).group(0)
    assert re.search(r'alt="[^"]*spectral radius[^"]*"', img)


def test_live_widget_is_a_slider_over_rho_and_an_image(explorer):
    box = explorer.widget()
    slider, message, image = box.children
    assert isinstance(slider, ipywidgets.FloatSlider) and isinstance(image, ipywidgets.Image)
    assert (slider.min, slider.max) == (0.5, 2.0)
    assert slider.value == 1.0
    assert message.value == ""
    assert bytes(image.value).startswith(PNG_SIGNATURE)


def test_moving_the_slider_redraws_the_image(explorer):
    slider, _, image = explorer.widget().children
    before = bytes(image.value)
    slider.value = 2.0
    assert bytes(image.value) != before
    assert bytes(image.value) == explorer.png(2.0)
    slider.value = 1.0


def test_explorer_curves_vanish_below_the_edge_and_explode_above_it(explorer):
    low, high = explorer.curves(0.5), explorer.curves(2.0)
    far = explorer.steps - 1
    for name in low:  # the linear RNN and the tanh RNN with small inputs
        assert low[name][0] == pytest.approx(1.0)
        assert low[name][far] < 0.01, name
        assert high[name][far] > 1, name


def test_explorer_leaves_no_pyplot_figures_behind():
    before = plt.get_fignums()
    small = spectral_radius_explorer(rhos=(0.9, 1.1), steps=5, hidden_size=4)
    small._repr_mimebundle_()
    small.png(1.1)
    assert plt.get_fignums() == before


def test_explorer_rejects_fewer_than_two_rho_values():
    with pytest.raises(ValueError, match=r"at least 2 values, got \[1.0\]"):
        SpectralRadiusExplorer(rhos=(1.0,))


# ------------------------------------------------------------------ the page's new sections


def test_page_derives_the_weight_gradient_and_measures_truncation_and_depth():
    """Issue 19, item 2: dL/dW_hh as a sum over time checked against autograd, truncated
    BPTT's bias and cost measured on the chapter's task, and stacked RNNs."""
    page = (Path(__file__).resolve().parents[1] / "book" / "rnn_gradients.md").read_text()
    assert "$$ (w-hh-sum)" in page and "$$ (bptt-recursion)" in page
    assert "assert sum_difference < 1e-12" in page
    assert "truncation_experiment(trained, setup, ks=ks)" in page
    assert "depth_experiment(depths=" in page
    for key in ("williams1990", "sutskever2013", "graves2013", "pascanu2014"):
        assert key in page
