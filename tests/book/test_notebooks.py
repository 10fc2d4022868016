"""Each chapter as a notebook to run (book/_ext/seqlab_notebooks.py): written beside the
built book, with the page's code, no outputs, and prose that shows what the book shows:
the glued numbers, figure and equation numbers, citations; no MyST role or label left.

The book is the one built for the session (tests/conftest.py), or SEQLAB_BOOK_HTML's.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from myst_nb.core.variables import format_plain_text

pytestmark = pytest.mark.book

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "book" / "_ext"))
import seqlab_notebooks  # noqa: E402 (the book's own extension)

CHAPTERS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
RAW = re.compile(r"\{[a-z]+(?::[a-z]+)?\}`|^\([\w.-]+\)=\s*$|^:::|^```\{", re.MULTILINE)
GLUED = re.compile(r"\{glue:text\}`([^`:]+)(?::([^`]*))?`")
NUMREF = re.compile(r"\{numref\}`([^`<>]+)`")
CITE_P = re.compile(r"\{cite:p\}`([^`]+)`")


def _notebook(html_dir: Path, chapter: str) -> nbformat.NotebookNode:
    return nbformat.read(html_dir / "_notebooks" / "book" / f"{chapter}.ipynb", as_version=4)


def _prose(notebook) -> str:
    return "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")


def _page_text(html_dir: Path, chapter: str) -> str:
    page = (html_dir / "book" / f"{chapter}.html").read_text(encoding="utf-8")
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_notebook_has_the_pages_code_and_no_outputs(html_dir, chapter):
    notebook = _notebook(html_dir, chapter)
    page = jupytext.read(REPO / "book" / f"{chapter}.md")
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    assert code == [c.source for c in page.cells if c.cell_type == "code"]
    assert not [c for c in notebook.cells if c.cell_type == "code" and c.outputs]
    assert "jupytext" not in notebook.metadata  # not paired with the page: its own file


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_prose_shows_what_the_book_shows_not_myst(html_dir, chapter):
    prose = _prose(_notebook(html_dir, chapter))
    flat = " ".join(prose.split())
    text = re.sub(r"^```.*?^```", "", prose, flags=re.MULTILINE | re.DOTALL)  # not in code
    assert not RAW.search(text), text[RAW.search(text).start() :][:200]
    source = (REPO / "book" / f"{chapter}.md").read_text(encoding="utf-8")
    glued = json.loads(
        (html_dir.parent / "jupyter_execute" / "book" / f"{chapter}.glue.json").read_text()
    )
    keys = GLUED.findall(source)
    assert keys
    for key, spec in keys:
        value = format_plain_text(glued[key]["data"]["text/plain"], spec or "")
        assert " ".join(value.split()) in flat, (key, value)
    # figure numbers and citations as the built page has them
    page = _page_text(html_dir, chapter)
    html_page = (html_dir / "book" / f"{chapter}.html").read_text(encoding="utf-8")
    for label in NUMREF.findall(source):
        number = re.search(
            rf'href="#{re.escape(label)}"><span class="std std-numref">([^<]+)</span>', html_page
        )
        assert number and number[1] in flat, label
    cited = re.findall(r"\[([^\[\]]*?\d{4}[a-z]?)\]", flat)  # [Bengio et al., 1994]
    assert len(cited) >= len(CITE_P.findall(source))
    assert not [c for c in cited if f"[{c}]" not in page]


def test_the_renderer_turns_myst_into_jupyterlab_markdown():
    resolved = {("glue:text", "loss"): "0.25", ("eq", "lm"): "(3)", ("cite:p", "a,b"): "[A, 1]"}
    source = (
        "(intro)=\n# Title\n% a comment\n\nLoss {glue:text}`loss` by {eq}`lm` {cite:p}`a,b`, "
        "and $W_{hh}$ stays.\n\n$$\nx = 1\n$$ (lm)\n\n```{math}\n:label: lm\ny = 2\n```\n\n"
        ":::{admonition} Try it\n:class: tip\n\nMove the slider.\n:::\n"
    )
    text = seqlab_notebooks.render_markdown(
        source, lambda role, content: resolved[role, content], lambda label: 3, lambda m: ""
    )
    assert text == (
        "# Title\n\nLoss 0.25 by (3) [A, 1], and $W_{hh}$ stays.\n\n$$\nx = 1\n\\tag{3} $$"
        "\n\n$$\ny = 2 \\tag{3}\n$$\n\n> **Try it**\n>\n> Move the slider.\n"
    )
