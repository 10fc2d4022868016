"""The course's figures: one style and the plots that every chapter reuses.

Every helper draws on the Axes it is given (``ax=None`` makes a new figure in
the course style) and returns what it drew on, so a page can combine helpers
in one figure (:func:`subplots`) or use them alone.

The style puts every figure on an opaque white card with dark text and the
Okabe-Ito colours (Okabe & Ito, 2008), which colour-blind readers can tell
apart. An opaque background is what makes a figure readable on a light *and*
a dark page (JupyterLab's dark theme, the book's dark mode): a transparent
figure with dark text disappears on a dark page.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .train import History

# Okabe-Ito colours, darkest first, all readable on white.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
)
INK = "#222222"  # text, axes and reference lines
MUTED = "#777777"  # thresholds, baselines, annotations

COURSE_STYLE: dict[str, object] = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "figure.dpi": 100,
    "figure.figsize": (6.4, 3.6),
    "figure.constrained_layout.use": True,  # no clipped labels, and fixed frame sizes
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.edgecolor": INK,
    "xtick.color": INK,
    "ytick.color": INK,
    "axes.prop_cycle": mpl.cycler(color=list(PALETTE)),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.8,
}


def use_style() -> None:
    """Make the course style the default for every figure that follows."""
    mpl.rcParams.update(COURSE_STYLE)


@contextmanager
def course_style() -> Iterator[None]:
    """Draw in the course style inside a ``with`` block, and restore the old style after."""
    with mpl.rc_context(COURSE_STYLE):
        yield


def subplots(nrows: int = 1, ncols: int = 1, **kwargs) -> tuple[Figure, np.ndarray | Axes]:
    """``plt.subplots`` in the course style; the figure is wider per column by default."""
    kwargs.setdefault("figsize", (3.6 * ncols + 0.6, 3.2 * nrows + 0.2))
    with course_style():
        return plt.subplots(nrows, ncols, **kwargs)


def new_axes(ax: Axes | None, figsize: tuple[float, float] | None = None) -> Axes:
    if ax is not None:
        return ax
    with course_style():
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _as_numpy(values: torch.Tensor | Sequence[float] | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=float)


def plot_norms_against_distance(
    curves: Mapping[str, torch.Tensor | Sequence[float]],
    ax: Axes | None = None,
    start: int = 0,
    xlabel: str = "distance k (steps back)",
    ylabel: str = "gradient norm",
    title: str | None = None,
    ylim: tuple[float, float] | None = None,
    reference_rho: float | None = None,
) -> Axes:
    """Norms against distance on a log y axis, one line per curve.

    curves: {label: (K,)}, entry i drawn at distance ``start + i``. Values
    that are zero or not finite are left out, so a curve that underflows
    simply stops. A thin horizontal line marks 1: above it the signal grows.
    reference_rho: when given, a dashed grey line rho**k, the rate that the
    spectral radius rho predicts in the long run.
    """
    ax = new_axes(ax)
    K = 0
    for i, (label, values) in enumerate(curves.items()):
        y = _as_numpy(values)
        K = max(K, len(y))
        k = np.arange(start, start + len(y))
        ok = np.isfinite(y) & (y > 0)
        ax.plot(k[ok], y[ok], color=PALETTE[i % len(PALETTE)], label=label)
    if reference_rho is not None:
        k = np.arange(start, start + K, dtype=float)
        ax.plot(
            k,
            float(reference_rho) ** k,
            linestyle="--",
            linewidth=1.0,
            color=MUTED,
            label=rf"$\rho^k$, $\rho = {reference_rho:g}$",
        )
    ax.set_yscale("log")
    ax.axhline(1.0, color=MUTED, linewidth=0.8, zorder=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    ax.legend(loc="best")
    return ax


def plot_gradient_norms(
    curves: Mapping[float, torch.Tensor],
    ax: Axes | None = None,
    title: str | None = None,
    ylim: tuple[float, float] | None = None,
) -> Axes:
    """Gradient norm against distance for several spectral radii (log y).

    curves: {rho: (K,)} as returned by
    :func:`seqlab.chapters.rnn_gradients.gradient_norm_curves`; entry k is the norm of
    the gradient k steps before the last one, so every curve starts at 1.
    """
    labelled = {rf"$\rho = {rho:g}$": values for rho, values in curves.items()}
    return plot_norms_against_distance(
        labelled,
        ax=ax,
        ylabel=r"$\|\partial \langle u, h_T \rangle / \partial h_{T-k}\|$",
        title=title,
        ylim=ylim,
    )


def plot_matrix_power_norms(
    norms: Mapping[str, torch.Tensor],
    ax: Axes | None = None,
    rho: float | None = None,
    title: str | None = None,
) -> Axes:
    """Spectral norm of W^k against k = 1, 2, ... (log y), one line per matrix.

    norms: {label: (K,)} from :func:`seqlab.gradients.matrix_power_norms`.
    rho: when given, a dashed line rho**k, the rate that every matrix with
    spectral radius rho reaches in the long run (Gelfand's formula).
    """
    return plot_norms_against_distance(
        norms,
        ax=ax,
        start=1,
        xlabel="power k",
        ylabel=r"$\|W^k\|_2$",
        title=title,
        reference_rho=rho,
    )


def _divergence_marks(
    ax: Axes, histories: Mapping[str, History], series: str, top: float | None = None
) -> None:
    """An X where each diverged run stopped, at its last finite value (or at ``top``)."""
    for i, history in enumerate(histories.values()):
        values = getattr(history, series)
        if history.diverged and values:
            finite = [v for v in values if math.isfinite(v)]
            step = len(history.loss) - 1  # the step whose loss was not finite
            y = finite[-1] if finite else 1.0
            if top is not None:
                y = min(y, top)
            color = PALETTE[i % len(PALETTE)]
            ax.plot(
                [step],
                [y],
                marker="X",
                markersize=10,
                linestyle="none",
                color=color,
                clip_on=False,
                zorder=5,
            )
            ax.annotate(
                f"diverged at step {step}",
                (step, y),
                textcoords="offset points",
                xytext=(8, -4),
                ha="left",
                va="top",
                fontsize=8,
                color=color,
            )


def _plot_series(
    ax: Axes, histories: Mapping[str, History], series: str, ylim: tuple[float, float] | None
) -> None:
    for i, (label, history) in enumerate(histories.items()):
        values = np.array(getattr(history, series), dtype=float)
        ok = np.isfinite(values) & (values > 0)
        ax.plot(
            np.flatnonzero(ok),
            values[ok],
            color=PALETTE[i % len(PALETTE)],
            label=label,
            linewidth=1.2,
        )
    ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    _divergence_marks(ax, histories, series, top=None if ylim is None else ylim[1])
    ax.set_xlabel("step")


def _finish_loss(ax: Axes, baseline: float | None, baseline_label: str, title: str | None) -> Axes:
    """A loss figure's dotted baseline (when given), y label, title and legend."""
    if baseline is not None:
        ax.axhline(
            baseline,
            color=MUTED,
            linestyle=":",
            linewidth=1.4,
            label=f"{baseline_label} ({baseline:.3g})",
        )
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    ax.legend(loc="best")
    return ax


def plot_loss(
    histories: Mapping[str, History],
    ax: Axes | None = None,
    baseline: float | None = None,
    title: str | None = "training loss",
    ylim: tuple[float, float] | None = None,
    baseline_label: str = "loss of predicting 0",
) -> Axes:
    """Training loss per step (log y), one line per run.

    histories: {label: History} from :func:`seqlab.base.train.train`. A run that
    diverged ends with an X at the step where its loss stopped being finite
    (at the top edge when ``ylim`` cuts its curve off). baseline: a dotted
    horizontal line, for example the loss of always predicting 0, labelled
    ``baseline_label``.
    """
    ax = new_axes(ax)
    _plot_series(ax, histories, "loss", ylim)
    return _finish_loss(ax, baseline, baseline_label, title)


def plot_test_loss(
    histories: Mapping[str, History],
    ax: Axes | None = None,
    baseline: float | None = None,
    baseline_label: str = "trivial baseline",
    title: str | None = "test loss",
) -> Axes:
    """The loss that ``eval_fn`` measured during training (log y), one line per run.

    histories: {label: History} whose ``eval_step`` and ``eval_loss`` were
    filled by :func:`seqlab.base.train.train`. baseline: a dotted horizontal line,
    labelled ``baseline_label``.
    """
    ax = new_axes(ax)
    for i, (label, history) in enumerate(histories.items()):
        ax.plot(
            history.eval_step,
            history.eval_loss,
            color=PALETTE[i % len(PALETTE)],
            label=label,
            marker="o",
            markersize=2.5,
        )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    return _finish_loss(ax, baseline, baseline_label, title)


def plot_grad_norm(
    histories: Mapping[str, History],
    ax: Axes | None = None,
    threshold: float | None = None,
    title: str | None = "gradient norm before clipping",
    ylim: tuple[float, float] | None = None,
) -> Axes:
    """Global gradient norm per step, before any clipping (log y), one line per run.

    threshold: a dotted horizontal line at the clipping threshold. A run that
    diverged ends with an X, as in :func:`plot_loss`.
    """
    ax = new_axes(ax)
    _plot_series(ax, histories, "grad_norm", ylim)
    if threshold is not None:
        ax.axhline(
            threshold,
            color=MUTED,
            linestyle="--",
            linewidth=1.2,
            label=f"clipping threshold ({threshold:g})",
        )
    ax.set_ylabel(r"$\|g\|$")
    if title:
        ax.set_title(title)
    ax.legend(loc="best")
    return ax


def plot_histories(
    histories: Mapping[str, History],
    baseline: float | None = None,
    threshold: float | None = None,
    loss_ylim: tuple[float, float] | None = None,
) -> Figure:
    """Loss (left) and gradient norm (right) per step for several runs, one legend below.

    loss_ylim: limits of the loss axis, so that a diverging run does not
    squash the others against the bottom.
    """
    fig, (left, right) = subplots(1, 2, figsize=(9.6, 4.0))
    plot_loss(histories, ax=left, baseline=baseline, ylim=loss_ylim)
    plot_grad_norm(histories, ax=right, threshold=threshold)
    handles, labels = left.get_legend_handles_labels()
    for handle, label in zip(*right.get_legend_handles_labels(), strict=True):
        if label not in labels:
            handles.append(handle)
            labels.append(label)
    left.get_legend().remove()
    right.get_legend().remove()
    fig.legend(handles, labels, loc="outside lower center", ncols=3)
    return fig


def plot_sensitivity(
    shares: Mapping[str, torch.Tensor],
    ax: Axes | None = None,
    log: bool = True,
    title: str | None = None,
) -> Axes:
    """Each input position's share of a summary's sensitivity, one line per model.

    shares: {label: (T,)}, each summing to 1, as returned by
    :func:`seqlab.chapters.rnn_gradients.sensitivity_experiment`; positions are numbered
    from 1. A dotted vertical line splits the sequence into halves. ``log``
    uses a log y axis, where an exponential decay is a straight line.
    """
    ax = new_axes(ax)
    for i, (label, values) in enumerate(shares.items()):
        y = _as_numpy(values)
        t = np.arange(1, len(y) + 1)
        ok = y > 0 if log else np.ones_like(y, dtype=bool)
        ax.plot(
            t[ok], y[ok], marker="o", markersize=3, color=PALETTE[i % len(PALETTE)], label=label
        )
    T = max(len(_as_numpy(v)) for v in shares.values())
    ax.axvline(T / 2 + 0.5, color=MUTED, linestyle=":", linewidth=1.0)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("input position t")
    ax.set_ylabel("share of sensitivity")
    if title:
        ax.set_title(title)
    ax.legend(loc="best")
    return ax


def plot_attention(
    weights: torch.Tensor,
    source: Sequence[str],
    target: Sequence[str],
    alignment: Sequence[tuple[int, int]] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    colorbar: bool = True,
) -> Axes:
    """A heat map of attention weights, with a true alignment drawn on top.

    weights: (T, S), row t the attention while producing target token t
    (rows beyond len(target) are labelled <eos>); source, target: the tokens
    that label the columns and the rows; alignment: pairs (target index,
    source index), each drawn as an outlined square. -> the Axes.
    """
    w = weights.detach().float().cpu().numpy()
    T, S = w.shape
    rows = list(target) + ["<eos>"] * (T - len(target))
    with course_style():
        ax = new_axes(ax, figsize=(0.32 * S + 1.8, 0.3 * T + 1.2))
        image = ax.imshow(w, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto",
                          interpolation="nearest")  # fmt: skip
        ax.grid(False)
        labels = [tok if tok.strip() else "\u2423" for tok in list(source)[:S]]  # a visible space
        ax.set_xticks(range(S), labels, rotation=90)
        ax.set_yticks(range(T), rows[:T])
        ax.tick_params(length=0)
        for t, s in alignment or ():
            ax.add_patch(Rectangle((s - 0.5, t - 0.5), 1, 1, fill=False, linewidth=1.5,
                                   edgecolor=PALETTE[1]))  # fmt: skip
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        if title:
            ax.set_title(title)
        if colorbar:
            ax.figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="attention weight")
    return ax
