"""A chapter as a student runs it: opened in a real JupyterLab, the way the book's Binder
button opens it (``lab/tree/<the chapter's notebook>``), run from top to bottom, and its
explorer moved.

The notebook is the one the book's build writes beside the book
(book/_ext/seqlab_notebooks.py): the chapter's cells with the numbers of its prose filled
in. The chapter is attention, the quickest to run that has an explorer (about 15 s).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser import DESKTOP, browser, jupyter_lab

pytestmark = pytest.mark.browser

CHAPTER = "attention"
NOTEBOOK = f"_notebooks/book/{CHAPTER}.ipynb"
# a MyST role as JupyterLab's Markdown shows it: "{glue:text}name" (the backticks make code)
ROLE = re.compile(r"\{(glue:text|numref|eq|cite:[pt]|doc|ref|download)\}")

# JupyterLab's own objects (exposed to the page with --LabApp.expose_app_in_browser): the
# notebook open in the main area, its kernel ready, and each code cell's execution count
_READY = """() => window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel
  ?.status === 'idle'"""
_RUN_ALL = """async () => {
  await window.jupyterapp.commands.execute('notebook:run-all-cells');
  return true;
}"""
_CODE_CELLS = """() => window.jupyterapp.shell.currentWidget.content.widgets
  .filter(cell => cell.model.type === 'code')
  .map(cell => ({count: cell.model.executionCount,
                 errors: cell.model.outputs.toJSON().filter(o => o.output_type === 'error')
                   .map(o => o.ename + ': ' + o.evalue)}))"""
_KERNEL_IDLE = """() => window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status
  === 'idle'"""
_SCROLL_TO_WIDGET = """async () => {
  const notebook = window.jupyterapp.shell.currentWidget.content;
  const i = notebook.widgets.findIndex(cell => cell.model.type === 'code' &&
    cell.model.outputs.toJSON().some(o => o.data?.['application/vnd.jupyter.widget-view+json']));
  if (i >= 0) await notebook.scrollToItem(i, 'start');
  return i;
}"""
# the rendered text of every markdown cell (each brought into view first: JupyterLab
# renders only the cells near the viewport)
_PROSE = """async () => {
  const notebook = window.jupyterapp.shell.currentWidget.content;
  const texts = [];
  for (const [i, cell] of notebook.widgets.entries()) {
    if (cell.model.type !== 'markdown') continue;
    await notebook.scrollToItem(i);
    await cell.ready;
    let shown = '';
    for (let tries = 0; tries < 50 && !shown; tries++) {
      shown = cell.node.querySelector('.jp-RenderedMarkdown')?.innerText?.trim() ?? '';
      if (!shown) await new Promise(resolve => setTimeout(resolve, 100));
    }
    texts.push(shown);
  }
  return texts;
}"""


@pytest.fixture(scope="module")
def lab_page(html_dir, tmp_path_factory):
    """The chapter open in JupyterLab, run to its end: (page, its code cells, page errors)."""
    scratch = tmp_path_factory.mktemp("lab")
    with jupyter_lab(html_dir, scratch) as url, browser() as chromium:
        page = chromium.new_page(viewport=DESKTOP)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        base = url.partition("/?")[0]
        page.goto(f"{base}/api/status?{url.partition('/?')[2]}")  # logs in: a cookie
        page.goto(f"{base}/lab/tree/{NOTEBOOK}", wait_until="domcontentloaded")
        page.wait_for_function(_READY, timeout=120_000, polling=500)
        page.evaluate(_RUN_ALL)
        page.wait_for_function(
            f"() => ({_CODE_CELLS})().every(cell => cell.count !== null) && ({_KERNEL_IDLE})()",
            timeout=300_000,
            polling=1000,
        )
        yield page, page.evaluate(_CODE_CELLS), errors


def test_the_chapter_opens_as_a_notebook_whose_prose_quotes_numbers_not_roles(lab_page):
    page, *_ = lab_page
    shown = page.evaluate(_PROSE)
    assert shown and all(shown), "a markdown cell was not rendered"
    prose = " ".join(" ".join(shown).split())
    assert not ROLE.search(prose), prose[max(0, ROLE.search(prose).start() - 80) :][:200]
    # the paragraph before the explorer quotes the number of sentences it shows
    quoted = re.search(r"one for each of (\d+) test", prose)
    assert quoted, "the explorer's paragraph lost its number"
    assert int(quoted[1]) > 1


def test_every_cell_runs_without_an_error(lab_page):
    _, cells, errors = lab_page
    assert len(cells) > 10 and all(isinstance(cell["count"], int) for cell in cells)
    assert not [cell["errors"] for cell in cells if cell["errors"]]
    assert not errors, errors


def test_moving_the_explorer_redraws_it(lab_page):
    page, *_ = lab_page
    assert page.evaluate(_SCROLL_TO_WIDGET) >= 0, "no cell shows a live widget"
    widget = page.locator(".jp-OutputArea-output .widget-vbox").last
    widget.scroll_into_view_if_needed()
    image = widget.locator("img").first
    image.wait_for(timeout=30_000)
    before = image.get_attribute("src")
    control = widget.locator(".widget-slider .ui-slider-handle, .widget-slider .noUi-handle, "
                             "select, .widget-toggle-button").first  # fmt: skip
    control.wait_for(timeout=10_000)
    tag = control.evaluate("e => e.tagName.toLowerCase()")
    if tag == "select":
        options = control.locator("option").all_inner_texts()
        control.select_option(options[-1])
    else:
        control.focus()
        control.press("End")
    page.wait_for_function(
        "([img, before]) => img.getAttribute('src') !== before",
        arg=[image.element_handle(), before],
        timeout=30_000,
    )
    assert image.get_attribute("src") != before


def test_the_notebook_sits_where_the_binder_button_opens_it(html_dir):
    assert Path(html_dir, NOTEBOOK).is_file()
