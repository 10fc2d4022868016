"""seqlab.base.explorer: one figure, live in Jupyter and a self-contained player in the book.

The base is tested on a toy explorer defined here (a line whose slope is the
setting), so that no chapter is needed.
"""

import re

import ipywidgets
import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from seqlab.base.explorer import Explorer, offline_jshtml, player_frames

pytestmark = pytest.mark.base

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Slopes(Explorer):
    """y = slope * x for the slope on a slider; a colorbar on every frame; no slope 0."""

    def __init__(self, slopes=(1, 2, 3)):
        self.slopes = list(slopes)
        self.drawn = 0  # how many times draw ran

    def __repr__(self) -> str:
        return f"Slopes({self.slopes})"

    def frames(self):
        return self.slopes

    def figure(self):
        self.last_figure = Figure(figsize=(2, 2), dpi=self.dpi, layout="constrained")
        return self.last_figure, self.last_figure.add_subplot()

    def draw(self, slope, ax):
        if slope == 0:
            raise ValueError("a slope of 0 draws nothing")
        self.drawn += 1
        ax.clear()
        ax.plot([0, 1], [0, slope])
        ax.set_ylim(-3, 3)
        image = ax.imshow([[slope]], extent=(0, 0.2, 0, 0.2), vmin=-3, vmax=3, aspect="auto")
        ax.figure.colorbar(image, ax=ax)  # an axes that draw adds: gone before the next frame

    def controls(self):
        return {"slope": ipywidgets.IntSlider(value=self.slopes[0], min=-3, max=3)}

    def alt(self):
        return 'a line whose "slope" goes from 1 to 3'


@pytest.fixture(scope="module")
def toy() -> Slopes:
    return Slopes()


@pytest.fixture(scope="module")
def bundle(toy) -> dict:
    return toy._repr_mimebundle_()


def test_offline_jshtml_removes_the_cdn_stylesheet_and_replaces_icons():
    html = (
        '<link rel="stylesheet"\nhref="https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/'
        'css/font-awesome.min.css">\n<img id="_anim_img1">'
        '<button title="Play"><i class="fa fa-play"></i></button>'
        '<button title="Play backwards"><i class="fa fa-play fa-flip-horizontal"></i></button>'
    )
    out = offline_jshtml(html, alt='frames "for" a & b')
    assert "font-awesome" not in out and "<i " not in out
    assert "\u25b6" in out and "\u25c0" in out
    assert '<img alt="frames &quot;for&quot; a &amp; b" id="_anim_img1">' in out


def test_mime_bundle_offers_the_live_widget_and_a_static_html_fallback(toy, bundle):
    assert {"text/plain", "text/html", WIDGET_VIEW} <= set(bundle)
    assert bundle[WIDGET_VIEW]["model_id"] == toy.widget().model_id
    assert bundle[WIDGET_VIEW]["version_major"] == 2
    assert bundle["text/plain"] == "Slopes([1, 2, 3])"


def test_html_fallback_is_a_player_with_one_distinct_png_frame_per_setting(bundle):
    html = bundle["text/html"]
    assert 'class="anim-slider"' in html and "anim-buttons" in html
    frames = player_frames(html)
    assert len(frames) == 3 and len(set(frames)) == 3
    assert all(frame.startswith(PNG_SIGNATURE) for frame in frames)


def test_html_fallback_loads_nothing_from_the_network_and_has_alt_text(bundle):
    html = bundle["text/html"]
    assert "http://" not in html and "https://" not in html and "<link" not in html
    assert 'class="fa ' not in html
    assert re.findall(r"<script[^>]*\bsrc=", html) == []
    img = re.search(r'<img [^>]*id="_anim_img[^>]*>', html).group(0)
    assert 'alt="a line whose &quot;slope&quot; goes from 1 to 3"' in img


def test_html_fallback_and_widget_are_computed_once(toy, bundle):
    drawn = toy.drawn
    assert toy.to_html() is bundle["text/html"]
    assert toy.widget() is toy.widget()
    assert toy._repr_mimebundle_()["text/html"] is bundle["text/html"]
    assert toy.drawn == drawn


def test_frames_do_not_pile_up_the_axes_that_draw_adds():
    toy = Slopes(slopes=(1, 2, 3, -1, -2))
    toy.to_html()
    # each frame removed the previous frame's colorbar: the player's figure ends with one
    assert len(toy.last_figure.axes) == 2


def test_the_widget_redraws_on_a_change_and_shows_the_message_of_a_setting_it_cannot_draw(toy):
    slider, message, image = toy.widget().children
    assert bytes(image.value) == toy.png(1) and message.value == ""
    slider.value = 3
    assert bytes(image.value) == toy.png(3)
    slider.value = 0
    assert message.value == "<b>a slope of 0 draws nothing</b>"
    assert bytes(image.value) == toy.png(3)  # the last figure it could draw stays
    slider.value = 2
    assert message.value == "" and bytes(image.value) == toy.png(2)


def test_an_explorer_with_several_controls_says_how_they_combine():
    class Two(Slopes):
        def controls(self):
            return {"a": ipywidgets.IntSlider(value=1), "b": ipywidgets.IntSlider(value=2)}

    with pytest.raises(NotImplementedError, match="several controls defines setting"):
        Two().widget()


def test_an_explorer_needs_a_frame():
    with pytest.raises(ValueError, match="at least one frame"):
        Slopes(slopes=()).to_html()


def test_explorer_leaves_no_pyplot_figures_behind():
    before = plt.get_fignums()
    toy = Slopes(slopes=(1, -1))
    toy._repr_mimebundle_()
    toy.png(2)
    assert plt.get_fignums() == before
