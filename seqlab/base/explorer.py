"""Interactive explorers for the book, live in Jupyter and still usable in a static page.

An explorer is an object that a notebook cell displays. Its
``_repr_mimebundle_`` offers two views of the same figure:

- ``application/vnd.jupyter.widget-view+json``: ipywidgets controls that
  redraw the figure for any setting, which Jupyter, JupyterLab and Colab show;
- ``text/html``: the figure precomputed for a list of settings (the frames)
  and packed into a self-contained JavaScript player (matplotlib's
  ``FuncAnimation.to_jshtml``), which a page without a kernel shows.

A front end picks the richest view it can render; the book's ``_config.yml``
tells myst-nb to skip the widget view, so the static page gets the player.

:class:`Explorer` holds both views. A chapter's explorer supplies what is its
own: the frames, the figure and how to draw one setting on it, the controls and
how they combine into a setting, and the player's alt text. The figures are
:class:`matplotlib.figure.Figure` objects made without pyplot, so the inline
backend never shows them a second time as static images.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Sequence

import ipywidgets
import matplotlib as mpl
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure

from .plots import course_style

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


def player_frames(html: str) -> list[bytes]:
    """The PNG frames a player from :meth:`Explorer.to_html` embeds, decoded, in order."""
    found = re.findall(r'frames\[(\d+)\] = "data:image/png;base64,([^"]*)"', html)
    ordered = sorted(found, key=lambda match: int(match[0]))
    return [base64.b64decode(data.replace("\\\n", "")) for _, data in ordered]


class Explorer:
    """The live widget and the static player of one figure that depends on a setting.

    A subclass supplies:

    - ``frames() -> Sequence``: the settings the static player shows, in order;
    - ``figure() -> (Figure, parts)``: a fresh figure and whatever ``draw`` needs
      (usually its axes);
    - ``draw(setting, parts)``: clear and redraw the figure for one setting;
      raise ``ValueError`` for a setting it cannot show (the message is shown);
    - ``controls() -> dict[str, ipywidgets.Widget]``: the live view's controls,
      in display order;
    - ``setting(controls, changed) -> setting``: the setting the controls ask
      for (``changed`` names the control just moved, None at first);
    - ``alt() -> str``: the player's alt text.

    ``dpi`` is the frames' resolution, ``interval`` the player's milliseconds
    per frame. Axes that ``draw`` adds (colorbars) are removed before the next frame.
    """

    dpi: int = 72
    interval: int = 500

    _widget: ipywidgets.Widget | None = None
    _html: str | None = None

    # ------------------------------------------------------------ what a chapter supplies

    def frames(self) -> Sequence:
        raise NotImplementedError

    def figure(self) -> tuple[Figure, object]:
        raise NotImplementedError

    def draw(self, setting, parts) -> None:
        raise NotImplementedError

    def controls(self) -> dict[str, ipywidgets.Widget]:
        raise NotImplementedError

    def setting(self, controls: dict[str, ipywidgets.Widget], changed: str | None):
        """By default the value of the only control."""
        if len(controls) != 1:
            raise NotImplementedError("an explorer with several controls defines setting()")
        return next(iter(controls.values())).value

    def alt(self) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------ the two views

    def png(self, setting) -> bytes:
        """The figure for one setting as PNG bytes."""
        fig, parts = self.figure()
        self.draw(setting, parts)
        buffer = io.BytesIO()
        with course_style():
            fig.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()

    def widget(self) -> ipywidgets.Widget:
        """The live view: the controls, a line for messages, and the figure they redraw."""
        if self._widget is None:
            controls = self.controls()
            message = ipywidgets.HTML("")
            image = ipywidgets.Image(format="png")

            def show(changed: str | None) -> None:
                try:
                    image.value = self.png(self.setting(controls, changed))
                    message.value = ""
                except ValueError as error:
                    message.value = f"<b>{error}</b>"

            for name, control in controls.items():
                control.observe(lambda _change, name=name: show(name), names="value")
            show(None)
            self._widget = ipywidgets.VBox([*controls.values(), message, image])
        return self._widget

    def to_html(self) -> str:
        """The static view: one frame per setting of ``frames()`` in a self-contained player."""
        if self._html is None:
            frames = list(self.frames())
            if not frames:
                raise ValueError("an explorer needs at least one frame")
            fig, parts = self.figure()
            base_axes = list(fig.axes)

            def frame(i: int):
                for ax in list(fig.axes):
                    if ax not in base_axes:
                        ax.remove()
                self.draw(frames[i], parts)
                return list(fig.axes)

            animation = FuncAnimation(
                fig, frame, frames=len(frames), interval=self.interval, repeat=False
            )
            with course_style(), mpl.rc_context(_FRAME_RC):
                html = animation.to_jshtml(default_mode="once")
            self._html = offline_jshtml(html, alt=self.alt())
        return self._html

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = {"text/plain": repr(self), "text/html": self.to_html()}
        view = self.widget()._repr_mimebundle_() or {}
        if "application/vnd.jupyter.widget-view+json" in view:
            bundle["application/vnd.jupyter.widget-view+json"] = view[
                "application/vnd.jupyter.widget-view+json"
            ]
        return bundle
