"""Interactive explorers for the book, live in Jupyter and still usable in a static page.

An explorer is an object that a notebook cell displays. Its
``_repr_mimebundle_`` offers two views of the same figure:

- ``application/vnd.jupyter.widget-view+json``: an ipywidgets slider that
  redraws the figure for any value, which Jupyter, JupyterLab and Colab show;
- ``text/html``: the figure precomputed for a grid of values and packed into a
  self-contained JavaScript player (matplotlib's ``FuncAnimation.to_jshtml``),
  which a page without a kernel (the built book, nbviewer, GitHub) shows.

A front end picks the richest view it can render; the book's ``_config.yml``
tells myst-nb to skip the widget view, so the static page gets the player.
The figures are :class:`matplotlib.figure.Figure` objects made without pyplot,
so the inline backend never shows them a second time as static images.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import NamedTuple

import ipywidgets
import matplotlib as mpl
import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .plots import INK, MUTED, PALETTE, course_style, plot_norms_against_distance
from .rnn_gradients import gradient_norm_curves

# matplotlib's player draws its buttons with Font Awesome loaded from a CDN.
# The book must work offline, so the link goes and each icon becomes a character.
_ICONS = {
    "fa-minus": "\u2212",
    "fa-fast-backward": "\u23ee\ufe0e",
    "fa-step-backward": "\u25c1",
    "fa-play fa-flip-horizontal": "\u25c0\ufe0e",
    "fa-pause": "\u275a\u275a",
    "fa-play": "\u25b6\ufe0e",
    "fa-step-forward": "\u25b7",
    "fa-fast-forward": "\u23ed\ufe0e",
    "fa-plus": "+",
}


# The player shows every frame in one <img>: all frames need the figure's size.
_FRAME_RC = {"savefig.dpi": "figure", "savefig.bbox": "standard", "animation.frame_format": "png"}


def offline_jshtml(html: str, alt: str = "") -> str:
    """Make the HTML of ``FuncAnimation.to_jshtml`` self-contained.

    Removes the stylesheet link to a CDN, replaces the Font Awesome icons of
    the player's buttons by Unicode characters (each button keeps its title
    and aria-label) and gives the frame image an ``alt`` text.
    """
    html = re.sub(r"<link[^>]*font-awesome[^>]*>\s*", "", html)
    html = re.sub(
        r'<i class="fa ([a-z -]+)"></i>',
        lambda m: _ICONS.get(m.group(1), m.group(1).replace("fa-", "")),
        html,
    )
    alt_attr = alt.replace("&", "&amp;").replace('"', "&quot;")
    return html.replace('<img id="_anim_img', f'<img alt="{alt_attr}" id="_anim_img', 1)


class _Explorer:
    """What every explorer shares: a figure drawn for one value of its slider as
    PNG (the live widget shows it), and a mime bundle holding both the live
    widget and the static player, so Jupyter shows the one and the book the
    other. A subclass defines ``_figure() -> (fig, parts)``, ``draw(value,
    parts)``, ``widget()`` and ``to_html()``, and sets ``dpi``."""

    def png(self, value) -> bytes:
        """The figure for one value of the slider as PNG bytes."""
        fig, parts = self._figure()
        self.draw(value, parts)
        buffer = io.BytesIO()
        with course_style():
            fig.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = {"text/plain": repr(self), "text/html": self.to_html()}
        view = self.widget()._repr_mimebundle_() or {}
        if "application/vnd.jupyter.widget-view+json" in view:
            bundle["application/vnd.jupyter.widget-view+json"] = view[
                "application/vnd.jupyter.widget-view+json"
            ]
        return bundle


class SpectralRadiusExplorer(_Explorer):
    """Gradient norm against distance, with the spectral radius of W_hh on a slider.

    For each rho, W_hh is one fixed random Gaussian (H, H) matrix rescaled to
    spectral radius rho, and the figure shows how much of a gradient at the last
    step reaches each earlier hidden state (:func:`seqlab.rnn_gradients.gradient_norm_curves`)
    for a linear RNN and a tanh RNN, beside the rate rho**k that the spectral
    radius predicts (Pascanu et al., 2013).

    rhos: the slider's values, evenly spaced (also the frames of the static
    player). steps: distances 0..steps-1. input_scale: standard deviation of
    the inputs of the tanh RNN; small inputs keep tanh out of saturation.
    dpi: resolution of the frames (the static player embeds one PNG per rho).
    """

    def __init__(
        self,
        rhos: Sequence[float] = tuple(np.round(np.linspace(0.6, 2.2, 17), 2)),
        steps: int = 40,
        hidden_size: int = 32,
        input_scale: float = 0.1,
        random_seed: int = 0,
        dpi: int = 72,
        ylim: tuple[float, float] = (1e-12, 1e12),
    ):
        if len(rhos) < 2:
            raise ValueError(f"rhos should hold at least 2 values, got {list(rhos)}")
        self.rhos = [float(r) for r in rhos]
        self.steps = steps
        self.hidden_size = hidden_size
        self.input_scale = input_scale
        self.random_seed = random_seed
        self.dpi = dpi
        self.ylim = ylim
        self._curves: dict[float, dict[str, torch.Tensor]] = {}
        self._html: str | None = None
        self._widget: ipywidgets.Widget | None = None

    def __repr__(self) -> str:
        return (
            f"SpectralRadiusExplorer(rho from {self.rhos[0]:g} to {self.rhos[-1]:g}, "
            f"{len(self.rhos)} values, {self.steps} steps)"
        )

    def curves(self, rho: float) -> dict[str, torch.Tensor]:
        """{"linear RNN": (steps,), "tanh RNN, ...": (steps,)}: gradient norms for this rho."""
        rho = float(rho)
        if rho not in self._curves:
            common = dict(
                hidden_size=self.hidden_size,
                steps=self.steps,
                orthogonal_at_one=False,  # the same matrix for every rho, only rescaled
                random_seed=self.random_seed,
                input_scale=self.input_scale,
            )
            self._curves[rho] = {
                "linear RNN": gradient_norm_curves([rho], nonlinearity="linear", **common)[rho],
                f"tanh RNN, inputs of std {self.input_scale:g}": gradient_norm_curves(
                    [rho], nonlinearity="tanh", **common
                )[rho],
            }
        return self._curves[rho]

    def draw(self, rho: float, ax: Axes) -> Axes:
        """Draw the figure for one rho on ``ax`` (cleared first)."""
        with course_style():
            ax.clear()
            plot_norms_against_distance(
                self.curves(rho),
                ax=ax,
                ylabel=r"$\|\partial \langle u, h_T \rangle / \partial h_{T-k}\|$",
                title=rf"spectral radius of $W_{{hh}}$: $\rho = {rho:.2f}$",
                ylim=self.ylim,
                reference_rho=rho,
            )
            ax.set_xlim(0, self.steps - 1)
            ax.legend(loc="upper left")
        return ax

    def _figure(self) -> tuple[Figure, Axes]:
        with course_style():
            fig = Figure(figsize=(6.4, 3.4), dpi=self.dpi, layout="constrained")
            ax = fig.add_subplot()
        return fig, ax

    def widget(self) -> ipywidgets.Widget:
        """The live view: a slider over rho and the figure it redraws."""
        if self._widget is None:
            start = min(self.rhos, key=lambda r: abs(r - 1.0))
            slider = ipywidgets.FloatSlider(
                value=start,
                min=self.rhos[0],
                max=self.rhos[-1],
                step=self.rhos[1] - self.rhos[0],
                description="ρ",
                readout_format=".2f",
                continuous_update=False,
            )
            image = ipywidgets.Image(value=self.png(start), format="png")

            def redraw(change: dict) -> None:
                image.value = self.png(change["new"])

            slider.observe(redraw, names="value")
            self._widget = ipywidgets.VBox([slider, image])
        return self._widget

    def to_html(self) -> str:
        """The static view: one frame per rho in a self-contained player."""
        if self._html is None:
            fig, ax = self._figure()
            animation = FuncAnimation(
                fig,
                lambda i: self.draw(self.rhos[i], ax).get_children(),
                frames=len(self.rhos),
                interval=400,
                repeat=False,
            )
            with course_style(), mpl.rc_context(_FRAME_RC):
                html = animation.to_jshtml(default_mode="once")
            alt = (
                "Gradient norm against distance for a linear and a tanh RNN, one frame per "
                f"spectral radius from {self.rhos[0]:g} to {self.rhos[-1]:g}"
            )
            self._html = offline_jshtml(html, alt=alt)
        return self._html


class GateExplorer(_Explorer):
    """An LSTM's gates and cell along one adding-problem sequence, with a marker on a slider.

    The LSTM (a :class:`seqlab.lstm.LSTM`, for example one trained on the
    adding problem) reads a sequence of ``seq_len`` random values whose first
    marker sits at the position the slider chooses and whose second marker is
    fixed at ``second``. The figure shows the inputs, then the input gate
    :math:`i_t`, the forget gate :math:`f_t` and the cell :math:`c_t` of every
    hidden unit as heat maps over time (Hochreiter & Schmidhuber, 1997).

    positions: the slider's values (also the frames of the static player).
    dpi: resolution of the frames.
    """

    def __init__(
        self,
        lstm,
        positions: Sequence[int] = tuple(range(0, 50, 5)),
        second: int = 75,
        seq_len: int = 100,
        random_seed: int = 0,
        dpi: int = 72,
    ):
        positions = [int(p) for p in positions]
        if len(positions) < 2:
            raise ValueError(f"positions should hold at least 2 values, got {positions}")
        if not all(0 <= p < seq_len and p != second for p in positions):
            raise ValueError(
                f"positions should lie in [0, {seq_len}) and differ from second={second}, "
                f"got {positions}"
            )
        self.lstm = lstm
        self.positions = positions
        self.second = second
        self.seq_len = seq_len
        self.dpi = dpi
        g = torch.Generator().manual_seed(random_seed)
        self.values = torch.rand(seq_len, generator=g)  # (T,), the same for every frame
        self._html: str | None = None
        self._widget: ipywidgets.Widget | None = None
        self._order: torch.Tensor | None = None

    def __repr__(self) -> str:
        return (
            f"GateExplorer(first marker at {self.positions[0]}..{self.positions[-1]}, "
            f"second at {self.second}, {self.seq_len} steps)"
        )

    def sequence(self, first: int) -> torch.Tensor:
        """The input (1, T, 2): the fixed values, and markers at ``first`` and ``second``."""
        markers = torch.zeros(self.seq_len)
        markers[[first, self.second]] = 1.0
        return torch.stack([self.values, markers], dim=-1)[None]

    def trace(self, first: int) -> dict[str, torch.Tensor]:
        """{"i", "f", "g", "o", "c", "h"}: each (T, H), from :meth:`seqlab.lstm.LSTM.trace`."""
        p = next(self.lstm.parameters())
        xs = self.sequence(first).to(device=p.device, dtype=p.dtype)
        return {k: v[0].cpu().float() for k, v in self.lstm.trace(xs).items()}

    def unit_order(self) -> torch.Tensor:
        """Units sorted by their mean forget gate on the first frame (most remembering on top)."""
        if self._order is None:
            self._order = self.trace(self.positions[0])["f"].mean(dim=0).argsort(descending=True)
        return self._order

    def draw(self, first: int, axes) -> None:
        """Draw the four panels for one marker position on ``axes`` (4 Axes, cleared first)."""
        trace = self.trace(first)
        order = self.unit_order()
        T = self.seq_len
        with course_style():
            for ax in axes:
                ax.clear()
                ax.grid(False)
            ax = axes[0]
            ax.plot(range(T), self.values.numpy(), color=MUTED, linewidth=1.0)
            for pos in (first, self.second):
                ax.plot([pos, pos], [0, self.values[pos].item()], color=PALETTE[1], linewidth=2.0)
            ax.plot(
                [first, self.second],
                self.values[[first, self.second]].numpy(),
                "o",
                color=PALETTE[1],
            )
            target = self.values[[first, self.second]].sum().item()
            ax.set_title(
                f"marked values (orange) at steps {first} and {self.second}: sum {target:.2f}"
            )
            ax.set_ylim(0, 1.05)
            ax.set_xlim(-0.5, T - 0.5)
            ax.set_ylabel("input")
            panels = (
                ("i", r"input gate $i_t$", 0.0, 1.0, "viridis"),
                ("f", r"forget gate $f_t$", 0.0, 1.0, "viridis"),
                ("c", r"cell $c_t$", -2.0, 2.0, "RdBu_r"),
            )
            for ax, (key, label, low, high, cmap) in zip(axes[1:], panels, strict=True):
                data = trace[key][:, order].T.numpy()  # (H, T)
                image = ax.imshow(
                    data, aspect="auto", vmin=low, vmax=high, cmap=cmap, interpolation="nearest"
                )
                ax.set_ylabel(f"{label}\nunit")
                ax.set_yticks([])
                for pos in (first, self.second):
                    ax.axvline(pos, color=INK, linewidth=0.6, linestyle=":")
                ax.figure.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
            axes[-1].set_xlabel("step t")

    def _figure(self):
        with course_style():
            fig = Figure(figsize=(6.4, 6.4), dpi=self.dpi, layout="constrained")
            axes = fig.subplots(4, 1, sharex=True, height_ratios=(1, 1.4, 1.4, 1.4))
        return fig, axes

    def widget(self) -> ipywidgets.Widget:
        """The live view: a slider over the first marker's position and the figure it redraws."""
        if self._widget is None:
            slider = ipywidgets.IntSlider(
                value=self.positions[0],
                min=0,
                max=self.seq_len // 2 - 1,
                step=1,
                description="1st marker",
                continuous_update=False,
            )
            image = ipywidgets.Image(value=self.png(slider.value), format="png")

            def redraw(change: dict) -> None:
                image.value = self.png(change["new"])

            slider.observe(redraw, names="value")
            self._widget = ipywidgets.VBox([slider, image])
        return self._widget

    def to_html(self) -> str:
        """The static view: one frame per position in a self-contained player."""
        if self._html is None:
            fig, axes = self._figure()
            colorbars: list = []

            def frame(i: int):
                for bar in colorbars:
                    bar.remove()
                colorbars.clear()
                before = set(fig.axes)
                self.draw(self.positions[i], axes)
                colorbars.extend(ax for ax in fig.axes if ax not in before)
                return list(axes)

            animation = FuncAnimation(
                fig, frame, frames=len(self.positions), interval=500, repeat=False
            )
            with course_style(), mpl.rc_context(_FRAME_RC):
                html = animation.to_jshtml(default_mode="once")
            alt = (
                "Inputs, input gate, forget gate and cell state of an LSTM over one "
                "adding-problem sequence, one frame per position of the first marker from "
                f"{self.positions[0]} to {self.positions[-1]}"
            )
            self._html = offline_jshtml(html, alt=alt)
        return self._html


def gate_explorer(lstm, **kwargs) -> GateExplorer:
    """An explorer of an LSTM's gates along an adding-problem sequence.

    Display the result in a notebook cell: a live slider in Jupyter, a player
    of precomputed frames in the static book. Keyword arguments go to
    :class:`GateExplorer`.
    """
    return GateExplorer(lstm, **kwargs)


def spectral_radius_explorer(**kwargs) -> SpectralRadiusExplorer:
    """An explorer of how the spectral radius of W_hh sets the gradient's fate.

    Display the result in a notebook cell: a live slider in Jupyter, a player
    of precomputed frames in the static book. Keyword arguments go to
    :class:`SpectralRadiusExplorer`.
    """
    return SpectralRadiusExplorer(**kwargs)


class AttentionExplorer(_Explorer):
    """A trained attention model's translation, beam and alignment chart for one sentence.

    Pick a test sentence (or type one, words separated by spaces): the figure
    shows the attention weights along the best beam hypothesis as a heat map,
    with the true alignment (when the sentence is one of ``examples`` and the
    task knows it) drawn on top, and lists the greedy translation and the
    beam's hypotheses with their scores (:func:`seqlab.attention.look_inside`;
    Bahdanau et al., 2015).

    model: an :class:`seqlab.attention.AttentionSeq2Seq`; task: its task;
    examples: the sentences offered (also the frames of the static player);
    beam_size: hypotheses kept by the beam; dpi: resolution of the frames.
    """

    def __init__(self, model, task, examples, beam_size: int = 3, dpi: int = 72):
        examples = list(examples)
        if len(examples) < 2:
            raise ValueError(f"examples should hold at least 2 sentences, got {len(examples)}")
        self.model, self.task, self.examples = model, task, examples
        self.beam_size = beam_size
        self.dpi = dpi
        self._html: str | None = None
        self._widget: ipywidgets.Widget | None = None
        self._seen: dict[tuple[str, ...], dict] = {}

    def __repr__(self) -> str:
        return f"AttentionExplorer({len(self.examples)} sentences, beam of {self.beam_size})"

    def inside(self, source) -> dict:
        """:func:`seqlab.attention.look_inside` for a sentence (a string or tokens), cached."""
        from .attention import look_inside

        tokens = tuple(source.split() if isinstance(source, str) else source)
        if not tokens:
            raise ValueError("type at least one word")
        if tokens not in self._seen:
            self._seen[tokens] = look_inside(self.model, self.task, tokens, self.beam_size)
        return self._seen[tokens]

    def _alignment(self, tokens):
        for ex in self.examples:
            if tuple(ex.source) == tuple(tokens):
                return ex.alignment, ex.target
        return None, None

    def draw(self, source, axes) -> None:
        """Draw the chart and the hypotheses for one sentence on ``axes`` (2 Axes, cleared)."""
        from .attention import plot_attention

        seen = self.inside(source)
        best = seen["beam"][0][0]
        alignment, target = self._alignment(seen["source"])
        if target != best:  # the true alignment belongs to the true target only
            alignment = None
        chart, text = axes
        with course_style():
            chart.clear()
            text.clear()
            text.axis("off")
            plot_attention(seen["weights"], seen["source"], best, alignment, ax=chart,
                           colorbar=False)  # fmt: skip
            unknown = [w for w in seen["source"] if w not in self.task.src_vocab.stoi]
            lines = [f"greedy: {' '.join(seen['greedy'])}"]
            lines += [f"beam {i + 1} ({score:.2f}): {' '.join(tokens)}"
                      for i, (tokens, score) in enumerate(seen["beam"])]  # fmt: skip
            if target is not None:
                lines.append(f"reference: {' '.join(target)}")
            if unknown:
                lines.append(f"unknown words (read as <unk>): {' '.join(unknown)}")
            listing = text.text(
                0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=9,
                family="monospace", transform=text.transAxes, color=INK,
            )  # fmt: skip
            listing.set_in_layout(False)  # a long line must not squeeze the chart

    def _figure(self):
        with course_style():
            fig = Figure(figsize=(7.2, 6.4), dpi=self.dpi, layout="constrained")
            axes = fig.subplots(2, 1, height_ratios=(3.2, 1.0))
        return fig, axes

    def widget(self) -> ipywidgets.Widget:
        """The live view: a menu of sentences, a box to type one, and the figure."""
        if self._widget is None:
            options = [(" ".join(ex.source), i) for i, ex in enumerate(self.examples)]
            menu = ipywidgets.Dropdown(options=options, value=0, description="sentence",
                                       layout=ipywidgets.Layout(width="95%"))  # fmt: skip
            typed = ipywidgets.Text(placeholder="or type a sentence and press Enter",
                                    description="your own", continuous_update=False,
                                    layout=ipywidgets.Layout(width="95%"))  # fmt: skip
            image = ipywidgets.Image(value=self.png(self.examples[0].source), format="png")
            message = ipywidgets.HTML("")

            def show(source) -> None:
                try:
                    image.value = self.png(source)
                    message.value = ""
                except ValueError as error:
                    message.value = f"<b>{error}</b>"

            menu.observe(lambda change: show(self.examples[change["new"]].source), names="value")
            typed.observe(lambda change: show(change["new"]), names="value")  # on Enter
            self._widget = ipywidgets.VBox([menu, typed, message, image])
        return self._widget

    def to_html(self) -> str:
        """The static view: one frame per sentence in a self-contained player."""
        if self._html is None:
            fig, axes = self._figure()

            def frame(i: int):
                self.draw(self.examples[i].source, axes)
                return list(axes)

            animation = FuncAnimation(
                fig, frame, frames=len(self.examples), interval=1500, repeat=False
            )
            with course_style(), mpl.rc_context(_FRAME_RC):
                html = animation.to_jshtml(default_mode="once")
            alt = (
                "Attention weights of a trained translation model as a heat map over source "
                f"and output words, with the true alignment outlined, for {len(self.examples)} "
                "test sentences, one per frame, with the greedy translation and the beam's "
                "hypotheses listed below"
            )
            self._html = offline_jshtml(html, alt=alt)
        return self._html


def attention_explorer(model, task, examples, **kwargs) -> AttentionExplorer:
    """An explorer of a trained attention model: translation, beam and alignment chart.

    Display the result in a notebook cell: a live menu and text box in
    Jupyter, a player of precomputed frames in the static book. Keyword
    arguments go to :class:`AttentionExplorer`.
    """
    return AttentionExplorer(model, task, examples, **kwargs)


class HeadExplorer(_Explorer):
    """Every head of a trained transformer on one sentence, layer by layer.

    Pick a sentence (or type one) and an attention, the encoder's
    self-attention, the decoder's causal self-attention or the decoder's
    cross-attention over the source, and a layer: the figure shows the
    weights of each head side by side (:func:`seqlab.transformer.attention_maps`,
    along the greedy translation; Vaswani et al., 2017).

    model: a :class:`seqlab.transformer.Transformer`; task: its task; sentences:
    token lists offered in the menu (the static player shows the first one, one
    frame per attention and layer); dpi: resolution of the frames.
    """

    def __init__(self, model, task, sentences, dpi: int = 72):
        sentences = [list(s) for s in sentences]
        if not sentences:
            raise ValueError("sentences should hold at least one sentence")
        self.model, self.task, self.sentences, self.dpi = model, task, sentences, dpi
        self.n_heads = model.config.n_heads
        self.keys = [(kind, layer) for kind in ("encoder", "decoder", "cross")
                     for layer in range(len(model.encoder.layers if kind == "encoder"
                                            else model.layers))]  # fmt: skip
        self._seen: dict[tuple[str, ...], dict] = {}
        self._html: str | None = None
        self._widget: ipywidgets.Widget | None = None

    def __repr__(self) -> str:
        return f"HeadExplorer({len(self.sentences)} sentences, {self.n_heads} heads)"

    def maps(self, source) -> dict:
        """:func:`seqlab.transformer.attention_maps` of a sentence, cached."""
        from .transformer import attention_maps

        tokens = tuple(source.split() if isinstance(source, str) else source)
        if tokens not in self._seen:
            self._seen[tokens] = attention_maps(self.model, self.task, list(tokens))
        return self._seen[tokens]

    def draw(self, value, axes) -> None:
        """value: (source, kind, layer); draws one heat map per head on ``axes``."""
        source, kind, layer = value
        seen = self.maps(source)
        weights = seen["maps"][kind, layer]  # (h, rows, cols)
        out = list(seen["output"]) + ["<eos>"]
        rows = seen["source"] if kind == "encoder" else out
        cols = seen["source"] if kind != "decoder" else ["<bos>", *seen["output"]]
        names = {"encoder": "encoder self-attention", "decoder": "decoder self-attention",
                 "cross": "cross-attention"}  # fmt: skip
        with course_style():
            for head, ax in enumerate(axes):
                ax.clear()
                ax.imshow(weights[head].numpy(), cmap="Greys", vmin=0.0, vmax=1.0,
                          aspect="auto", interpolation="nearest")  # fmt: skip
                ax.grid(False)
                ax.tick_params(length=0, labelsize=7)
                ax.set_xticks(range(len(cols)), cols, rotation=90)
                ax.set_yticks(range(len(rows)), rows if head == 0 else [""] * len(rows))
                ax.set_title(f"head {head + 1}", fontsize=9)
            axes[0].figure.suptitle(f"{names[kind]}, layer {layer + 1}", fontsize=10)

    def _figure(self):
        with course_style():
            fig = Figure(figsize=(2.1 * self.n_heads + 1.2, 3.6), dpi=self.dpi,
                         layout="constrained")  # fmt: skip
            axes = fig.subplots(1, self.n_heads, squeeze=False)[0]
        return fig, list(axes)

    def widget(self) -> ipywidgets.Widget:
        """The live view: a sentence menu, a text box, the attention, the layer, the figure."""
        if self._widget is None:
            options = [(" ".join(s), i) for i, s in enumerate(self.sentences)]
            menu = ipywidgets.Dropdown(options=options, value=0, description="sentence",
                                       layout=ipywidgets.Layout(width="95%"))  # fmt: skip
            typed = ipywidgets.Text(placeholder="or type a sentence and press Enter",
                                    description="your own", continuous_update=False,
                                    layout=ipywidgets.Layout(width="95%"))  # fmt: skip
            kind = ipywidgets.ToggleButtons(options=["encoder", "decoder", "cross"],
                                            value="cross", description="attention")  # fmt: skip
            n_layers = max(layer for _, layer in self.keys) + 1
            layer = ipywidgets.IntSlider(min=1, max=n_layers, value=1, description="layer")
            current = {"source": self.sentences[0]}
            image = ipywidgets.Image(value=self.png((current["source"], "cross", 0)), format="png")
            message = ipywidgets.HTML("")

            def show(*_) -> None:
                try:
                    key = (kind.value, layer.value - 1)
                    if key not in self.keys:
                        raise ValueError(f"the model has no layer {layer.value} there")
                    image.value = self.png((current["source"], *key))
                    message.value = ""
                except ValueError as error:
                    message.value = f"<b>{error}</b>"

            def pick(source) -> None:
                current["source"] = source
                show()

            menu.observe(lambda c: pick(self.sentences[c["new"]]), names="value")
            typed.observe(lambda c: pick(c["new"].split()), names="value")
            kind.observe(show, names="value")
            layer.observe(show, names="value")
            self._widget = ipywidgets.VBox([menu, typed, kind, layer, message, image])
        return self._widget

    def to_html(self) -> str:
        """The static view: the first sentence, one frame per attention and layer."""
        if self._html is None:
            fig, axes = self._figure()
            source = self.sentences[0]

            def frame(i: int):
                self.draw((source, *self.keys[i]), axes)
                return axes

            animation = FuncAnimation(fig, frame, frames=len(self.keys), interval=1500,
                                      repeat=False)  # fmt: skip
            with course_style(), mpl.rc_context(_FRAME_RC):
                html = animation.to_jshtml(default_mode="once")
            alt = (
                f"Attention weights of every head of a trained transformer on the sentence "
                f"'{' '.join(source)}': one frame per attention (encoder self-attention, decoder "
                f"self-attention, cross-attention) and layer, {len(self.keys)} frames"
            )
            self._html = offline_jshtml(html, alt=alt)
        return self._html


def head_explorer(model, task, sentences, **kwargs) -> HeadExplorer:
    """An explorer of a trained transformer's attention by layer and head.

    Display the result in a notebook cell: live menus in Jupyter, a player of
    precomputed frames in the static book. Keyword arguments go to
    :class:`HeadExplorer`.
    """
    return HeadExplorer(model, task, sentences, **kwargs)


__all__ = [
    "AttentionExplorer",
    "attention_explorer",
    "BeamExplorer",
    "beam_explorer",
    "GateExplorer",
    "HeadExplorer",
    "head_explorer",
    "SpectralRadiusExplorer",
    "gate_explorer",
    "offline_jshtml",
    "PromptPlayground",
    "PromptSetting",
    "prompt_playground",
    "spectral_radius_explorer",
]


class BeamExplorer(_Explorer):
    """Beam search step by step on one source sentence, with the step on a slider.

    ``model`` is an encoder-decoder with ``decoder_start`` (chapter 3); the
    search is :func:`seqlab.decoding.beam_search` with ``beam_size``. Each frame
    shows, after one more step, the live hypotheses (blue) and the finished
    ones (orange) as bars of their log-probability, labelled with their
    tokens (Jurafsky & Martin, ch. 10; Sutskever et al., 2014).
    """

    def __init__(self, model, task, example, beam_size: int = 3, max_len: int = 25,
                 reverse_source: bool = False, dpi: int = 72):  # fmt: skip
        from .data import make_batch
        from .decoding import beam_search

        self.example = example
        self.beam_size = beam_size
        self.dpi = dpi
        vocab = task.tgt_vocab
        p = next(model.parameters())
        batch = make_batch([example], task, reverse_source, p.device)
        step, state = model.decoder_start(batch.src, batch.src_mask)
        self.trace: list[dict] = []
        self.result = beam_search(step, state, vocab.bos_id, vocab.eos_id, beam_size, max_len,
                                  trace=self.trace)  # fmt: skip
        self.itos = vocab.itos
        self.steps = list(range(1, len(self.trace) + 1))
        self._html: str | None = None
        self._widget: ipywidgets.Widget | None = None

    def __repr__(self) -> str:
        return f"BeamExplorer(beam {self.beam_size}, {len(self.steps)} steps)"

    def _label(self, tokens) -> str:
        return " ".join(self.itos[t] for t in tokens)

    def draw(self, t: int, ax: Axes) -> None:
        """The beam after step ``t`` (1-based) on ``ax``, cleared first."""
        snap = self.trace[t - 1]
        rows = [(seq, s, PALETTE[0]) for seq, s in snap["live"]]
        rows += [(seq, s, PALETTE[1]) for seq, s in snap["finished"]]
        lowest = min(s for _, s, _ in rows) if rows else -1.0
        with course_style():
            ax.clear()
            ax.grid(False)
            for i, (seq, s, color) in enumerate(rows):
                ax.barh(i, s, color=color, height=0.6)
                ax.text(0.02 * abs(lowest), i, self._label(seq), va="center", fontsize=8)
            ax.set_yticks([])
            ax.set_ylim(self.beam_size - 0.4, -0.6)
            ax.set_xlim(1.05 * min(lowest, -1.0), 0.9 * abs(min(lowest, -1.0)) * 3)
            ax.axvline(0, color=INK, linewidth=0.6)
            ax.set_xlabel("sum of log-probabilities (bars to the left: less probable)")
            source = " ".join(self.example.source)
            ax.set_title(f"step {t}: live (blue), finished (orange)\n{source}", fontsize=9)

    def _figure(self):
        with course_style():
            fig = Figure(figsize=(7.0, 0.5 * self.beam_size + 1.6), dpi=self.dpi,
                         layout="constrained")  # fmt: skip
            ax = fig.subplots()
        return fig, ax

    def widget(self) -> ipywidgets.Widget:
        """The live view: a slider over the steps and the figure it redraws."""
        if self._widget is None:
            slider = ipywidgets.IntSlider(value=1, min=1, max=self.steps[-1], description="step",
                                          continuous_update=False)  # fmt: skip
            image = ipywidgets.Image(value=self.png(slider.value), format="png")

            def redraw(change: dict) -> None:
                image.value = self.png(change["new"])

            slider.observe(redraw, names="value")
            self._widget = ipywidgets.VBox([slider, image])
        return self._widget

    def to_html(self) -> str:
        """The static view: one frame per step in a self-contained player."""
        if self._html is None:
            fig, ax = self._figure()

            def frame(i: int):
                self.draw(self.steps[i], ax)
                return [ax]

            animation = FuncAnimation(fig, frame, frames=len(self.steps), interval=700,
                                      repeat=False)  # fmt: skip
            with course_style(), mpl.rc_context(_FRAME_RC):
                html = animation.to_jshtml(default_mode="once")
            alt = (
                f"Beam search with beam size {self.beam_size} on one sentence, one frame per "
                "step: bars of the log-probability of each live and finished hypothesis"
            )
            self._html = offline_jshtml(html, alt=alt)
        return self._html


def beam_explorer(model, task, example, **kwargs) -> BeamExplorer:
    """An explorer of beam search on one sentence (chapter 3).

    Keyword arguments go to :class:`BeamExplorer`.
    """
    return BeamExplorer(model, task, example, **kwargs)


class PromptSetting(NamedTuple):
    """One state of the :class:`PromptPlayground`: what is asked and how the model samples."""

    task: str  # a task of seqlab.prompting.TASKS, e.g. "sort"
    query: str  # the input the model should answer, e.g. "dbca"
    k: int  # demonstrations in the prompt
    temperature: float  # 0 = greedy
    top_k: int | None = None  # sample among the top_k most likely tokens (None: all)
    instruction: bool = True  # start the prompt with the task's instruction line


def _show_char(c: str) -> str:
    return {"\n": "\u21b5", " ": "\u2423"}.get(c, c)


class PromptPlayground(_Explorer):
    """Prompt a small GPT: the task, its input, the examples, the temperature and top-k.

    The prompt is :func:`seqlab.prompting.kshot_prompt`: the task's instruction
    line (optional), ``k`` solved examples and the query, "few-shot" in Brown et
    al.'s (2020) sense (``k = 0`` is Radford et al.'s, 2019, zero-shot). The
    figure shows the prompt, ``samples`` continuations drawn by
    :func:`seqlab.gpt.generate` at the chosen temperature and top-k (each up to
    its newline, marked right when it is the task's answer), and the
    distribution of the first answer token: the model's own (grey) and the one
    sampled from after temperature and top-k (coloured).

    model: a :class:`seqlab.gpt.GPT` over characters; tok: its tokenizer
    (``encode``/``decode``, :class:`seqlab.prompting.CharTokenizer`); queries:
    the (task, input) pairs offered in the menu; settings: the frames of the
    static player (:class:`PromptSetting`; default: the first query at k = 0,
    2, 8, greedy and at temperature 1); seed: seeds the demonstrations and the
    sampling, so that a setting always shows the same samples; dpi: resolution
    of the frames.
    """

    def __init__(self, model, tok, queries: Sequence[tuple[str, str]],
                 settings: Sequence[PromptSetting] | None = None, samples: int = 4,
                 seed: int = 0, dpi: int = 72):  # fmt: skip
        from .prompting import KS, TASKS, demonstrations

        queries = [(str(task), str(query)) for task, query in queries]
        if not queries:
            raise ValueError("queries should hold at least one (task, input) pair")
        for task, _ in queries:
            if task not in TASKS:
                raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")
        if samples < 1:
            raise ValueError(f"samples should be >= 1, got {samples}")
        self.model, self.tok, self.queries = model, tok, queries
        self.samples, self.seed, self.dpi = samples, seed, dpi
        self.max_k = max(KS)
        self.demos = demonstrations(1, self.max_k, seed)[0]  # the same examples for every query
        if settings is None:
            task, query = queries[0]
            settings = [PromptSetting(task, query, k, t) for k in (0, 2, 8) for t in (0.0, 1.0)]
        self.settings = [PromptSetting(*s) for s in settings]
        if not self.settings:
            raise ValueError("settings should hold at least one frame")
        self._seen: dict[PromptSetting, dict] = {}
        self._html: str | None = None
        self._widget: ipywidgets.Widget | None = None

    def __repr__(self) -> str:
        return f"PromptPlayground({len(self.queries)} queries, {len(self.settings)} frames)"

    def prompt(self, setting: PromptSetting) -> str:
        """The prompt text of a setting (:func:`seqlab.prompting.kshot_prompt`)."""
        from .prompting import kshot_prompt

        if not 0 <= setting.k <= self.max_k:
            raise ValueError(f"k should be in 0..{self.max_k}, got {setting.k}")
        if not setting.query:
            raise ValueError("type an input of at least one letter")
        return kshot_prompt(setting.task, setting.query, self.demos[: setting.k],
                            setting.instruction)  # fmt: skip

    @torch.no_grad()
    def look(self, setting) -> dict:
        """What the figure shows for a setting, cached.

        -> {"prompt": str, "answer": str, "samples": [str], "right": [bool],
        "p_model": (V,) softmax of the logits, "p_sample": (V,) the distribution
        the first token is drawn from (one-hot at the argmax when greedy)}.
        """
        from .gpt import generate, top_k_filter
        from .prompting import TASKS

        setting = PromptSetting(*setting)
        if setting.temperature < 0:
            raise ValueError(f"temperature should be >= 0, got {setting.temperature}")
        if setting not in self._seen:
            text = self.prompt(setting)
            device = next(self.model.parameters()).device
            # (1, T); the tokenizer raises ValueError on a character it does not know
            ids = torch.tensor([self.tok.encode(text)], device=device)
            room = self.model.config.block_size - ids.shape[1]
            if room < 1:
                raise ValueError(f"the prompt's {ids.shape[1]} tokens fill the model's context "
                                 f"of {self.model.config.block_size}")  # fmt: skip
            self.model.eval()
            logits = self.model(ids)[:, -1].float()  # (1, V)
            p_model = torch.softmax(logits, dim=-1)[0]
            if setting.temperature == 0:
                p_sample = torch.zeros_like(p_model)
                p_sample[p_model.argmax()] = 1.0
            else:
                kept = top_k_filter(logits / setting.temperature, setting.top_k)
                p_sample = torch.softmax(kept, dim=-1)[0]
            n = 1 if setting.temperature == 0 else self.samples
            g = torch.Generator(device=device).manual_seed(self.seed)
            out = generate(self.model, ids.repeat(n, 1), min(room, 8), setting.temperature,
                           setting.top_k, generator=g)  # (n, T + new)  # fmt: skip
            samples = [self.tok.decode(row[ids.shape[1]:].tolist()).split("\n")[0]
                       for row in out]  # fmt: skip
            answer = TASKS[setting.task].rule(setting.query)
            self._seen[setting] = {
                "prompt": text, "answer": answer, "samples": samples,
                "right": [s == answer for s in samples],
                "p_model": p_model.cpu(), "p_sample": p_sample.cpu(),
            }  # fmt: skip
        return self._seen[setting]

    def draw(self, setting, axes) -> None:
        """Draw the prompt, the samples and the next-token distribution on ``axes`` (2 Axes)."""
        setting = PromptSetting(*setting)
        seen = self.look(setting)
        text_ax, bars = axes
        top = seen["p_model"].argsort(descending=True)[:10].tolist()  # the 10 likeliest tokens
        chars = [_show_char(self.tok.decode([i])) for i in top]
        how = ("greedy (temperature 0)" if setting.temperature == 0 else
               f"temperature {setting.temperature:g}, top-k {setting.top_k or 'all'}")  # fmt: skip
        with course_style():
            text_ax.clear()
            bars.clear()
            text_ax.axis("off")
            lines = seen["prompt"].split("\n")
            lines[-1] += "\u2026"  # where the model continues
            lines += ["", f"{how}:"]
            lines += [f"  {s or '(empty)'}   {'right' if ok else 'wrong'}"
                      for s, ok in zip(seen["samples"], seen["right"], strict=True)]  # fmt: skip
            lines.append(f"answer: {seen['answer']}")
            listing = text_ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=9,
                                   family="monospace", transform=text_ax.transAxes,
                                   color=INK)  # fmt: skip
            listing.set_in_layout(False)
            x = np.arange(len(top))
            bars.bar(x - 0.2, seen["p_model"][top].numpy(), width=0.4, color=MUTED,
                     label="model (temperature 1)")  # fmt: skip
            bars.bar(x + 0.2, seen["p_sample"][top].numpy(), width=0.4, color=PALETTE[0],
                     label="sampled from")  # fmt: skip
            bars.set_xticks(x, chars, family="monospace")
            bars.set_ylim(0, 1.05)
            bars.set_ylabel("probability")
            bars.set_title("first token of the answer", fontsize=10)
            bars.legend(loc="upper right")
            title = f"{setting.task}, k = {setting.k}"
            if not setting.instruction:
                title += ", no instruction"
            text_ax.set_title(title, fontsize=10, loc="left")

    def _figure(self):
        with course_style():
            fig = Figure(figsize=(8.4, 3.8), dpi=self.dpi, layout="constrained")
            axes = fig.subplots(1, 2, width_ratios=(1.2, 1.0))
        return fig, list(axes)

    def widget(self) -> ipywidgets.Widget:
        """The live view: task, input, k, instruction, temperature and top-k, and the figure."""
        from .prompting import TASKS

        if self._widget is None:
            first = self.settings[0]
            V = self.model.config.vocab_size
            task = ipywidgets.Dropdown(options=sorted(TASKS), value=first.task,
                                       description="task")  # fmt: skip
            query = ipywidgets.Text(value=first.query, description="input",
                                    continuous_update=False)  # fmt: skip
            k = ipywidgets.IntSlider(value=first.k, min=0, max=self.max_k, description="examples k",
                                     continuous_update=False)  # fmt: skip
            instruction = ipywidgets.Checkbox(value=first.instruction, description="instruction")
            temperature = ipywidgets.FloatSlider(value=first.temperature, min=0.0, max=2.0,
                                                 step=0.1, description="temperature",
                                                 continuous_update=False)  # fmt: skip
            top_k = ipywidgets.IntSlider(value=first.top_k or V, min=1, max=V, description="top-k",
                                         continuous_update=False)  # fmt: skip
            image = ipywidgets.Image(value=self.png(first), format="png")
            message = ipywidgets.HTML("")

            def show(*_) -> None:
                setting = PromptSetting(task.value, query.value.strip(), k.value,
                                        round(temperature.value, 2),
                                        None if top_k.value >= V else top_k.value,
                                        instruction.value)  # fmt: skip
                try:
                    image.value = self.png(setting)
                    message.value = ""
                except ValueError as error:
                    message.value = f"<b>{error}</b>"

            for control in (task, query, k, instruction, temperature, top_k):
                control.observe(show, names="value")
            self._widget = ipywidgets.VBox(
                [task, query, k, instruction, temperature, top_k, message, image]
            )
        return self._widget

    def to_html(self) -> str:
        """The static view: one frame per setting in a self-contained player."""
        if self._html is None:
            fig, axes = self._figure()

            def frame(i: int):
                self.draw(self.settings[i], axes)
                return axes

            animation = FuncAnimation(fig, frame, frames=len(self.settings), interval=1500,
                                      repeat=False)  # fmt: skip
            with course_style(), mpl.rc_context(_FRAME_RC):
                html = animation.to_jshtml(default_mode="once")
            alt = (
                f"A small GPT prompted with {len(self.settings)} settings, one per frame: the "
                "prompt with its instruction and k solved examples, the continuations sampled "
                "at the frame's temperature and top-k marked right or wrong, and a bar chart of "
                "the probability of each first answer letter"
            )
            self._html = offline_jshtml(html, alt=alt)
        return self._html


def prompt_playground(model, tok, queries, **kwargs) -> PromptPlayground:
    """A playground for prompting a small GPT (chapter 6).

    Display the result in a notebook cell: live controls in Jupyter, a player
    of precomputed frames in the static book. Keyword arguments go to
    :class:`PromptPlayground`.
    """
    return PromptPlayground(model, tok, queries, **kwargs)
