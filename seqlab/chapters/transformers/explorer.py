"""Chapter 5's explorer: every head of a trained transformer, by attention and layer."""

from __future__ import annotations

import ipywidgets
from matplotlib.figure import Figure

from ...base.explorer import Explorer
from ...base.plots import course_style
from .translation import ATTENTION_KINDS, attention_maps

NAMES = {"encoder": "encoder self-attention", "decoder": "decoder self-attention",
         "cross": "cross-attention"}  # fmt: skip


class HeadExplorer(Explorer):
    """Every head of a trained transformer on one sentence, layer by layer.

    Pick a sentence (or type one) and an attention, the encoder's
    self-attention, the decoder's causal self-attention or the decoder's
    cross-attention over the source, and a layer: the figure shows the
    weights of each head side by side (:func:`attention_maps`, along the
    greedy translation; Vaswani et al., 2017).

    model: a :class:`seqlab.transformer.Transformer`; task: its task; sentences:
    token lists offered in the menu (the static player shows the first one, one
    frame per attention and layer); dpi: resolution of the frames.
    A setting is (source tokens, attention kind, layer from 0).
    """

    interval = 1500

    def __init__(self, model, task, sentences, dpi: int = 72):
        sentences = [list(s) for s in sentences]
        if not sentences:
            raise ValueError("sentences should hold at least one sentence")
        self.model, self.task, self.sentences, self.dpi = model, task, sentences, dpi
        self.n_heads = model.config.n_heads
        self.keys = [(kind, layer) for kind in ATTENTION_KINDS
                     for layer in range(len(model.encoder.layers if kind == "encoder"
                                            else model.layers))]  # fmt: skip
        self.source = sentences[0]  # the sentence the live view shows
        self._seen: dict[tuple[str, ...], dict] = {}

    def __repr__(self) -> str:
        return f"HeadExplorer({len(self.sentences)} sentences, {self.n_heads} heads)"

    def maps(self, source) -> dict:
        """:func:`attention_maps` of a sentence, cached."""
        tokens = tuple(source.split() if isinstance(source, str) else source)
        if tokens not in self._seen:
            self._seen[tokens] = attention_maps(self.model, self.task, list(tokens))
        return self._seen[tokens]

    def frames(self) -> list:
        return [(self.sentences[0], *key) for key in self.keys]

    def figure(self):
        with course_style():
            fig = Figure(figsize=(2.1 * self.n_heads + 1.2, 3.6), dpi=self.dpi,
                         layout="constrained")  # fmt: skip
            axes = fig.subplots(1, self.n_heads, squeeze=False)[0]
        return fig, list(axes)

    def draw(self, setting, axes) -> None:
        """setting: (source, kind, layer); draws one heat map per head on ``axes``."""
        source, kind, layer = setting
        seen = self.maps(source)
        weights = seen["maps"][kind, layer]  # (h, rows, cols)
        out = list(seen["output"]) + ["<eos>"]
        rows = seen["source"] if kind == "encoder" else out
        cols = seen["source"] if kind != "decoder" else ["<bos>", *seen["output"]]
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
            axes[0].figure.suptitle(f"{NAMES[kind]}, layer {layer + 1}", fontsize=10)

    def controls(self) -> dict[str, ipywidgets.Widget]:
        """A sentence menu, a text box, the attention and the layer."""
        options = [(" ".join(s), i) for i, s in enumerate(self.sentences)]
        wide = ipywidgets.Layout(width="95%")
        n_layers = max(layer for _, layer in self.keys) + 1
        return {
            "sentence": ipywidgets.Dropdown(options=options, value=0, description="sentence",
                                            layout=wide),  # fmt: skip
            "typed": ipywidgets.Text(placeholder="or type a sentence and press Enter",
                                     description="your own", continuous_update=False,
                                     layout=wide),  # fmt: skip
            "attention": ipywidgets.ToggleButtons(options=list(ATTENTION_KINDS), value="cross",
                                                  description="attention"),  # fmt: skip
            "layer": ipywidgets.IntSlider(min=1, max=n_layers, value=1, description="layer"),
        }

    def setting(self, controls, changed):
        """The menu or the text box picks the sentence (whichever moved last)."""
        if changed in (None, "sentence"):
            self.source = self.sentences[controls["sentence"].value]
        elif changed == "typed":
            self.source = controls["typed"].value.split()
        key = (controls["attention"].value, controls["layer"].value - 1)
        if key not in self.keys:
            raise ValueError(f"the model has no layer {key[1] + 1} there")
        return (self.source, *key)

    def alt(self) -> str:
        return (
            f"Attention weights of every head of a trained transformer on the sentence "
            f"'{' '.join(self.sentences[0])}': one frame per attention (encoder self-attention, "
            f"decoder self-attention, cross-attention) and layer, {len(self.keys)} frames"
        )


def head_explorer(model, task, sentences, **kwargs) -> HeadExplorer:
    """An explorer of a trained transformer's attention by layer and head.

    Display the result in a notebook cell: live menus in Jupyter, a player of
    precomputed frames in the static book. Keyword arguments go to
    :class:`HeadExplorer`.
    """
    return HeadExplorer(model, task, sentences, **kwargs)
