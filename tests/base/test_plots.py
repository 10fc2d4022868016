"""seqlab.base.plots: the course style and the figures the chapters reuse."""

import math

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

from seqlab.base import plots
from seqlab.base.train import History

pytestmark = pytest.mark.base


@pytest.fixture(autouse=True)
def _close_figures_and_restore_style():
    with mpl.rc_context():
        yield
    plt.close("all")


def _diverged_history() -> History:
    return History(loss=[1.0, 10.0, 1e6, math.inf], grad_norm=[2.0, 50.0, 1e9], diverged=True)


def _trained_history() -> History:
    return History(loss=[1.0, 0.5, 0.2, 0.1], grad_norm=[3.0, 1.0, 0.5, 0.2])


def test_use_style_puts_figures_on_an_opaque_white_background():
    plots.use_style()
    assert to_rgba(mpl.rcParams["figure.facecolor"]) == (1.0, 1.0, 1.0, 1.0)
    assert to_rgba(mpl.rcParams["savefig.facecolor"]) == (1.0, 1.0, 1.0, 1.0)
    assert mpl.rcParams["savefig.transparent"] is False
    assert mpl.rcParams["axes.prop_cycle"].by_key()["color"][:3] == list(plots.PALETTE[:3])


def test_course_style_is_undone_after_the_with_block():
    mpl.rcParams["figure.facecolor"] = "black"
    with plots.course_style():
        assert to_rgba(mpl.rcParams["figure.facecolor"]) == (1.0, 1.0, 1.0, 1.0)
    assert to_rgba(mpl.rcParams["figure.facecolor"]) == (0.0, 0.0, 0.0, 1.0)


def test_subplots_makes_white_figures_even_when_the_default_style_is_dark():
    plt.style.use("dark_background")
    fig, axes = plots.subplots(1, 2)
    assert axes.shape == (2,)
    assert to_rgba(fig.get_facecolor()) == (1.0, 1.0, 1.0, 1.0)


def test_plot_gradient_norms_draws_one_labelled_log_scale_curve_per_rho():
    curves = {0.9: 0.9 ** torch.arange(10.0), 1.5: 1.5 ** torch.arange(10.0)}
    ax = plots.plot_gradient_norms(curves, title="linear RNN")
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == [r"$\rho = 0.9$", r"$\rho = 1.5$"]
    assert ax.get_yscale() == "log"
    assert ax.get_title() == "linear RNN"
    x, y = ax.get_lines()[1].get_data()
    np.testing.assert_allclose(x, np.arange(10))
    np.testing.assert_allclose(y, 1.5 ** np.arange(10.0))


def test_plot_gradient_norms_leaves_out_values_that_underflowed_to_zero():
    curve = torch.tensor([1.0, 1e-200, 0.0, 0.0], dtype=torch.float64)
    ax = plots.plot_gradient_norms({0.5: curve})
    x, _ = ax.get_lines()[0].get_data()
    np.testing.assert_array_equal(x, [0, 1])


def test_plot_gradient_norms_draws_on_the_axes_it_is_given():
    fig, axes = plots.subplots(1, 3)
    returned = plots.plot_gradient_norms({1.0: torch.ones(5)}, ax=axes[1])
    assert returned is axes[1]
    assert len(axes[0].get_lines()) == 0 and len(axes[1].get_lines()) > 0
    assert len(fig.axes) == 3


def test_plot_matrix_power_norms_starts_at_the_first_power_and_draws_rho_to_the_k():
    ax = plots.plot_matrix_power_norms({"W": torch.tensor([2.0, 1.0, 0.5])}, rho=0.5)
    x, _ = ax.get_lines()[0].get_data()
    np.testing.assert_array_equal(x, [1, 2, 3])
    reference = [line for line in ax.get_lines() if "rho^k" in line.get_label()]
    assert len(reference) == 1
    np.testing.assert_allclose(reference[0].get_ydata(), [0.5, 0.25, 0.125])


def test_plot_loss_marks_the_step_where_a_run_diverged():
    ax = plots.plot_loss({"no clipping": _diverged_history(), "clipped": _trained_history()})
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["diverged at step 3"]
    marks = [line for line in ax.get_lines() if line.get_marker() == "X"]
    assert len(marks) == 1
    assert marks[0].get_xdata()[0] == 3 and marks[0].get_ydata()[0] == 1e6
    x, _ = ax.get_lines()[0].get_data()
    np.testing.assert_array_equal(x, [0, 1, 2])  # the infinite loss is not drawn


def test_plot_loss_puts_the_divergence_mark_on_the_top_edge_when_the_axis_is_cut():
    ax = plots.plot_loss({"no clipping": _diverged_history()}, ylim=(1e-2, 1e3))
    assert ax.get_ylim() == pytest.approx((1e-2, 1e3))
    mark = next(line for line in ax.get_lines() if line.get_marker() == "X")
    assert mark.get_ydata()[0] == 1e3


def test_plot_loss_draws_the_baseline_and_labels_it_with_its_value():
    ax = plots.plot_loss({"clipped": _trained_history()}, baseline=0.075)
    baseline = [line for line in ax.get_lines() if "predicting 0" in line.get_label()]
    assert len(baseline) == 1
    assert "0.075" in baseline[0].get_label()
    assert set(baseline[0].get_ydata()) == {0.075}


def test_plot_grad_norm_draws_the_clipping_threshold():
    ax = plots.plot_grad_norm({"clipped": _trained_history()}, threshold=1.0)
    threshold = [line for line in ax.get_lines() if "threshold" in line.get_label()]
    assert len(threshold) == 1 and set(threshold[0].get_ydata()) == {1.0}
    assert ax.get_yscale() == "log"


def test_plot_histories_shows_loss_and_gradient_norm_with_one_shared_legend():
    histories = {"no clipping": _diverged_history(), "clipped": _trained_history()}
    fig = plots.plot_histories(histories, baseline=0.075, threshold=1.0, loss_ylim=(1e-3, 1e4))
    left, right = fig.axes
    assert left.get_ylabel() == "loss" and right.get_title() == "gradient norm before clipping"
    assert left.get_legend() is None and right.get_legend() is None
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[:2] == ["no clipping", "clipped"]
    assert any("predicting 0" in label for label in labels)
    assert any("threshold" in label for label in labels)
    assert len(labels) == len(set(labels))


def test_plot_sensitivity_numbers_positions_from_one_and_splits_the_halves():
    shares = {"unidirectional": torch.tensor([0.1, 0.2, 0.3, 0.4])}
    ax = plots.plot_sensitivity(shares)
    x, y = ax.get_lines()[0].get_data()
    np.testing.assert_array_equal(x, [1, 2, 3, 4])
    np.testing.assert_allclose(y, [0.1, 0.2, 0.3, 0.4])
    middle = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert middle and middle[0].get_xdata()[0] == 2.5
    assert ax.get_yscale() == "log"
    assert plots.plot_sensitivity(shares, log=False).get_yscale() == "linear"


def test_plotting_helpers_print_nothing(capsys):
    plots.plot_gradient_norms({1.0: torch.ones(3)})
    plots.plot_histories({"run": _diverged_history()})
    plots.plot_sensitivity({"run": torch.tensor([0.5, 0.5])})
    assert capsys.readouterr().out == ""


def test_plot_attention_draws_one_square_per_true_link():
    links = [(0, 0), (1, 1)]
    ax = plots.plot_attention(torch.eye(3), ["a", " ", "c"], ["x", "y"], links, colorbar=False)
    assert len(ax.patches) == 2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "\u2423", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y", "<eos>"]
    plt.close(ax.figure)
