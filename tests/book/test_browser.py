"""The built book as a reader meets it: served on localhost, opened in chromium.

Each test fails when a reader would be let down: a page with a JavaScript
error or a missing file, a broken link, raw TeX, a figure without alt text, a
player that does not move, a search that finds nothing, launch buttons that
point elsewhere, or text wider than a phone. The book is the one built for
tests/book/test_build.py (tests/conftest.py builds it once per session).
Run only these with ``pytest -m browser``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
import yaml
from browser import DESKTOP, PHONE, browser, serve, toc_pages, wait_for_math

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
REPOSITORY_URL = "https://github.com/seqlab-course/sequence-models"
PAGES = toc_pages()
# a chapter is a page with an exercise
CHAPTER_PAGES = [p for p in PAGES if (REPO / "solutions" / Path(p).stem).is_dir()]


@pytest.fixture(scope="module")
def site(html_dir):
    with serve(html_dir) as base:
        yield base


@pytest.fixture(scope="module")
def chromium():
    with browser() as b:
        yield b


@pytest.fixture(scope="module")
def visits(site, chromium) -> dict[str, dict]:
    """Every page opened once at desktop width: what the browser reported while loading."""
    results = {}
    page = chromium.new_page(viewport=DESKTOP)
    for name in PAGES + ["search.html", "genindex.html"]:
        record = {"errors": [], "failed": [], "external": []}
        page.on(
            "console", lambda m, r=record: r["errors"].append(m.text) if m.type == "error" else None
        )
        page.on("pageerror", lambda e, r=record: r["errors"].append(str(e)))
        page.on("requestfailed", lambda q, r=record: r["failed"].append(q.url))
        page.on(
            "response",
            lambda s, r=record: (
                r["failed"].append(f"{s.status} {s.url}") if s.status >= 400 else None
            ),
        )
        page.on(
            "request",
            lambda q, r=record: (
                r["external"].append(q.url)
                if not q.url.startswith((site, "data:", "blob:", "about:"))
                else None
            ),
        )
        page.goto(site + name, wait_until="load")
        wait_for_math(page)
        page.wait_for_timeout(200)  # late console messages
        record["math"] = page.locator("mjx-container").count()
        record["text"] = page.evaluate(
            "() => { const main = document.querySelector('main') || document.body;"
            " const copy = main.cloneNode(true);"
            " copy.querySelectorAll('pre, code, script, style').forEach(e => e.remove());"
            " return copy.innerText; }"
        )
        record["images"] = page.evaluate(
            "() => Array.from(document.querySelectorAll('main img')).map(i =>"
            " ({src: i.getAttribute('src'), alt: i.alt, ok: i.complete && i.naturalWidth > 0}))"
        )
        record["outputs"] = page.locator(".cell_output").count()
        results[name] = record
        page.close()
        page = chromium.new_page(viewport=DESKTOP)
    page.close()
    return results


def test_every_page_loads_without_errors_or_missing_files(visits):
    for name, record in visits.items():
        assert record["errors"] == [], f"{name}: JavaScript errors {record['errors'][:3]}"
        assert record["failed"] == [], f"{name}: files that did not load {record['failed'][:3]}"


def test_no_page_fetches_anything_from_another_host(visits):
    """The book works offline: MathJax, fonts and players are served with it."""
    for name, record in visits.items():
        assert record["external"] == [], f"{name} loads {record['external'][:3]}"


def test_math_is_typeset_and_no_raw_tex_is_left(visits):
    for name in CHAPTER_PAGES + ["book/notation.html"]:
        assert visits[name]["math"] > 0, f"{name} shows no typeset equation"
    for name, record in visits.items():
        raw = re.findall(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\frac|\\mathbf", record["text"])
        assert raw == [], f"{name} shows raw TeX: {raw[:5]}"


def test_code_cells_show_their_outputs(visits):
    for name in CHAPTER_PAGES:
        assert visits[name]["outputs"] >= 5, f"{name} shows too few cell outputs"


def test_every_image_loads_and_has_alt_text(visits):
    for name, record in visits.items():
        for image in record["images"]:
            assert image["ok"], f"{name}: {image['src']} did not load"
            assert image["alt"].strip(), f"{name}: {image['src']} has no alt text"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag in ("a", "link") and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if tag in ("img", "script") and attrs.get("src"):
            self.hrefs.append(attrs["src"])


def test_every_internal_link_and_anchor_resolves(html_dir):
    parsed = {}
    for path in html_dir.rglob("*.html"):
        if "_static" in path.relative_to(html_dir).parts:  # the theme's templates
            continue
        links = _Links()
        links.feed(path.read_text(encoding="utf-8"))
        parsed[path.resolve()] = links
    broken = []
    for path, links in parsed.items():
        for href in links.hrefs:
            if urlparse(href).scheme or href.startswith(("//", "mailto:", "javascript:")):
                continue
            target, anchor = urldefrag(href)
            file = (path.parent / unquote(target.split("?")[0])).resolve() if target else path
            if not file.exists():
                broken.append(f"{path.relative_to(html_dir)} -> {href}")
            elif anchor and file.suffix == ".html" and file in parsed:
                if unquote(anchor) not in parsed[file].ids:
                    broken.append(f"{path.relative_to(html_dir)} -> {href} (no such anchor)")
    assert broken == [], "\n".join(broken[:20])


@pytest.mark.parametrize("name", CHAPTER_PAGES)
def test_each_explorer_player_moves_when_clicked_and_dragged(site, chromium, name):
    page = chromium.new_page(viewport=DESKTOP)
    page.goto(site + name, wait_until="load")
    players = page.locator(".animation")
    assert players.count() >= 1, f"{name} has no explorer player"
    for i in range(players.count()):
        player = players.nth(i)
        player.scroll_into_view_if_needed()
        image = player.locator("img[id^=_anim_img]")
        first = image.get_attribute("src")
        player.locator("button[title='Next frame']").click()
        after_click = image.get_attribute("src")
        assert after_click != first, f"{name}: player {i} did not move on 'Next frame'"
        slider = player.locator("input.anim-slider")
        slider.focus()
        page.keyboard.press("End")
        assert image.get_attribute("src") not in (first, after_click), (
            f"{name}: player {i} did not move when its slider was dragged to the end"
        )
    page.close()


@pytest.mark.parametrize(
    "term,chapter",
    [
        ("spectral", "book/rnn_gradients.html"),
        ("forget", "book/lstm_gru.html"),
        ("beam", "book/seq2seq.html"),
        ("alignment", "book/attention.html"),
        ("equivariant", "book/transformers.html"),
        ("induction", "book/gpt_prompting.html"),
    ],
)
def test_search_finds_a_term_of_each_chapter(site, chromium, term, chapter):
    page = chromium.new_page(viewport=DESKTOP)
    page.goto(f"{site}search.html?q={term}", wait_until="load")
    results = page.locator("ul.search li a")
    results.first.wait_for(timeout=30_000)
    hrefs = [results.nth(i).get_attribute("href") for i in range(results.count())]
    assert any(chapter in (h or "") for h in hrefs), f"searching {term!r} gave {hrefs}"
    page.close()


@pytest.mark.parametrize("name", CHAPTER_PAGES)
def test_chapter_launch_buttons_and_download_point_at_this_repository(visits, html_dir, name):
    html = (html_dir / name).read_text(encoding="utf-8")
    source = name.removesuffix(".html")
    hrefs = set(re.findall(r'href="([^"]+)"', html.replace("&amp;", "&")))
    binder = [h for h in hrefs if h.startswith("https://mybinder.org/v2/gh/")]
    # the JupyterHub button comes from _config.yml's jupyterhub_url alone (an nbgitpuller
    # link); when it is empty there is none, never a placeholder (tests/book/test_launch.py)
    hub_url = (yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
               ["launch_buttons"].get("jupyterhub_url") or "").rstrip("/")  # fmt: skip
    hub = [h for h in hrefs if "/hub/user-redirect/git-pull" in h]
    colab = [h for h in hrefs if h.startswith("https://colab.research.google.com/github/")]
    repo = REPOSITORY_URL.removeprefix("https://github.com/")
    assert binder and all(repo in h and source in h for h in binder), binder
    if hub_url:
        assert hub and all(h.startswith(f"{hub_url}/hub/user-redirect/git-pull?") for h in hub)
        assert all(repo.replace("/", "%2F") in h or repo in h for h in hub), hub
    else:
        assert hub == [] and "logo_jupyterhub" not in html, hub
    assert "hub.example.edu" not in html
    assert colab and all(f"{repo}/blob/main/" in h for h in colab), colab
    for link in colab:
        path = link.split("/blob/main/", 1)[1]
        assert (REPO / path).is_file(), f"Colab opens {path}, which is not in the repository"
    assert re.search(r'href="[^"]*_sources/' + re.escape(source) + r'\.(md|ipynb)"', html), (
        f"{name} offers no download of its source"
    )


def test_pages_fit_a_phone_screen(site, chromium):
    page = chromium.new_page(viewport=PHONE)
    for name in PAGES:
        page.goto(site + name, wait_until="load")
        wait_for_math(page)
        width = page.evaluate("() => document.scrollingElement.scrollWidth")
        assert width <= PHONE["width"] + 1, f"{name} scrolls sideways at 375 px ({width} px)"
    page.close()


# Every display equation, table and code block on the page that is wider than its text
# column (its left edge, or its right edge with its overflowing content, outside the
# column's content box; the theme's display math overflows to the left), and
# whether it sits in an element of the column that scrolls sideways: overflow-x auto or
# scroll, scrollWidth > clientWidth (a scroll bar is there), and itself inside the column.
# The first element up from it that does not let it overflow decides; hidden ones (a closed
# dropdown) are skipped. Also every display equation that scrolls inside its own box.
_WIDE = """() => {
  const column = document.querySelector('article.bd-article')
    || document.querySelector('main') || document.body;
  const bounds = column.getBoundingClientRect(), style = getComputedStyle(column);
  const left = bounds.left + parseFloat(style.paddingLeft) - 1;
  const right = bounds.right - parseFloat(style.paddingRight) + 1;
  const describe = (el) => {
    const math = el.closest('div.math');
    const number = math && math.querySelector('.eqno');  // its text, not the link's
    const where = el.closest('section[id]');
    const text = (el.textContent || '').replace(/\\s+/g, ' ').trim().slice(0, 50);
    return el.tagName.toLowerCase() + (number ? ' ' + number.firstChild.textContent.trim() : '')
      + (math && math.id ? ' #' + math.id : where ? ' in #' + where.id : '')
      + (number ? '' : ' ' + JSON.stringify(text));
  };
  const selector = 'mjx-container[display="true"], table, div.highlight pre';
  const wide = [], scrolling = [];
  for (const el of column.querySelectorAll(selector)) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (el.matches('mjx-container') && el.scrollWidth > el.clientWidth + 1) {
      scrolling.push(describe(el) + ' is ' + el.scrollWidth + ' px wide in a box of '
        + el.clientWidth + ' px');
    }
    const extent = Math.max(box.right, box.left + el.scrollWidth);
    if (extent <= right && box.left >= left) continue;
    let scrolls = false;
    for (let node = el; node && node !== column; node = node.parentElement) {
      const overflow = getComputedStyle(node).overflowX;
      if (overflow === 'visible') continue;
      scrolls = (overflow === 'auto' || overflow === 'scroll')
        && node.scrollWidth > node.clientWidth
        && node.getBoundingClientRect().right <= right
        && node.getBoundingClientRect().left >= left;
      break;
    }
    if (!scrolls) {
      wide.push(describe(el) + ' spans ' + Math.round(box.left) + '-' + Math.round(extent)
        + ' px, the column ' + Math.round(left + 1) + '-' + Math.round(right - 1) + ' px');
    }
  }
  return {cut: wide, scrolling: scrolling};
}"""


@pytest.fixture(scope="module")
def widths(site, chromium) -> dict[tuple[str, str], dict]:
    """Every page at desktop and phone width, once MathJax is done: what is wider than the
    column with no scroll bar ("cut"), and the display equations that scroll."""
    results = {}
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page = chromium.new_page(viewport=size)
        for name in PAGES:
            page.goto(site + name, wait_until="load")
            wait_for_math(page)
            results[name, size_name] = page.evaluate(_WIDE)
        page.close()
    return results


@pytest.mark.parametrize("size_name", ["desktop", "phone"])
def test_equations_tables_and_code_fit_their_column_or_scroll(widths, size_name):
    """A display equation, table or code block wider than the text column scrolls inside
    itself: it never runs past the column's right edge, cut off or widening the page."""
    width = {"desktop": DESKTOP, "phone": PHONE}[size_name]["width"]
    cut = [
        f"{name} at {size_name} width ({width} px): {element}"
        for name in PAGES
        for element in widths[name, size_name]["cut"]
    ]
    assert cut == [], "wider than the column, with no scroll bar:\n" + "\n".join(cut)


@pytest.mark.parametrize("name", PAGES)
def test_display_equations_are_shown_whole_at_desktop_width(widths, name):
    """At desktop width a reader sees every display equation whole. Its scroll bar is hidden
    until used where scroll bars overlay the page (macOS, phones, the headless screenshots),
    and then an equation wider than the column looks cut at the right edge."""
    scrolling = widths[name, "desktop"]["scrolling"]
    assert scrolling == [], (
        f"{name} at desktop width ({DESKTOP['width']} px): a display equation scrolls; "
        "break it over lines:\n" + "\n".join(scrolling)
    )
