"""The course book: it builds without a warning and its pages show what they promise.

The book is built once per test session (tests/conftest.py) into a temporary folder (the
user's ``_build`` is left alone), with the same flags as ``make book``.
Run only these tests with ``pytest -m book``.
"""

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.book

REPO = Path(__file__).resolve().parents[2]
# Each chapter's page, with what it must show: figures, explorer frames, glued numbers,
# and authors it cites (who must appear in the bibliography).
CHAPTERS = {
    "rnn_gradients": {
        "figures": 4,
        "frames": 10,
        "glued": 40,
        "authors": ("Pascanu", "Bengio", "Hochreiter", "Schuster"),
    },
    "lstm_gru": {
        "figures": 4,
        "frames": 6,
        "glued": 40,
        "authors": ("Hochreiter", "Gers", "Cho", "Jozefowicz"),
    },
    "seq2seq": {
        "figures": 2,
        "frames": 8,
        "glued": 45,
        "authors": ("Sutskever", "Cho", "Papineni", "Wu"),
    },
    "attention": {
        "figures": 5,
        "frames": 8,
        "glued": 40,
        "authors": ("Bahdanau", "Luong", "Och", "Sutskever"),
    },
    "transformers": {
        "figures": 5,
        "frames": 6,
        "glued": 40,
        "authors": ("Vaswani", "Devlin", "Xiong", "Voita"),
    },
    "gpt_prompting": {
        "figures": 6,
        "frames": 8,
        "glued": 75,
        "authors": ("Radford", "Brown", "Kaplan", "Olsson", "Holtzman"),
    },
}


@pytest.fixture(scope="session")
def pages(html_dir) -> dict[str, str]:
    """Every HTML page of the build, by its path relative to the html folder."""
    return {
        str(path.relative_to(html_dir)): path.read_text(encoding="utf-8")
        for path in html_dir.rglob("*.html")
    }


@pytest.fixture(scope="session", params=list(CHAPTERS))
def aid(request) -> str:
    """A chapter's id: its page is book/<aid>.md, its exercise exercises/<aid>/."""
    return request.param


@pytest.fixture(scope="session")
def chapter(html_dir, aid) -> str:
    return (html_dir / "book" / f"{aid}.html").read_text(encoding="utf-8")


def _toc_files() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    stack = list(toc.get("chapters", [])) + [
        chapter for part in toc.get("parts", []) for chapter in part.get("chapters", [])
    ]
    while stack:
        entry = stack.pop(0)
        if "file" in entry:
            files.append(entry["file"])
        stack.extend(entry.get("sections", []))
    return files


def test_every_chapter_with_an_exercise_is_checked_here():
    from seqlab.kit.course import assignments

    assert set(assignments(REPO)) == set(CHAPTERS)


def test_book_builds_without_warnings(build):
    process, html = build
    # a page whose code failed: myst-nb saves the traceback beside the book
    tracebacks = "".join(
        f"\n--- {log.relative_to(html)}\n{log.read_text(errors='replace')[-3000:]}"
        for log in sorted((html / "reports").rglob("*.err.log"))
    )
    assert process.returncode == 0, process.stdout[-4000:] + process.stderr[-4000:] + tracebacks
    assert "WARNING:" not in process.stdout + process.stderr  # Sphinx's warnings


def test_every_page_in_the_toc_becomes_an_html_page(html_dir):
    files = _toc_files()
    assert {f"book/{aid}" for aid in CHAPTERS} <= set(files) and "book/bibliography" in files
    missing = [f for f in files if not (html_dir / f"{f}.html").is_file()]
    assert missing == []


def test_chapter_shows_its_figures_with_alt_text(html_dir, chapter, aid):
    figures = CHAPTERS[aid]["figures"]
    images = re.findall(r'<img [^>]*src="\.\./_images/[^"]+\.png"[^>]*>', chapter)
    assert len(images) >= figures, f"the chapter should show its {figures} figures"
    for img in images:
        src = re.search(r'src="([^"]+)"', img).group(1)
        alt = re.search(r'alt="([^"]*)"', img)
        assert alt and len(alt.group(1)) > 20, f"{src} needs an alt text that describes it"
        assert (html_dir / "book" / src).resolve().is_file(), f"{src} is missing from the build"
    assert len(re.findall(r'<figure [^>]*id="fig-', chapter)) >= figures


def test_chapter_shows_the_explorer_as_a_javascript_player(chapter, aid):
    assert 'class="anim-slider"' in chapter
    frames = re.findall(r'frames\[\d+\] = "data:image/png;base64,', chapter)
    assert len(frames) >= CHAPTERS[aid]["frames"], "the player should hold precomputed frames"
    assert re.search(r'<img alt="[^"]+" id="_anim_img', chapter)
    # the live widget's view has no kernel in a static page: it must not be rendered
    assert 'type="application/vnd.jupyter.widget-view+json"' not in chapter


def test_no_page_loads_widget_javascript_from_a_cdn(pages):
    for name, html in pages.items():
        external = re.findall(r'<script[^>]*\bsrc="(https?://[^"]+)"', html)
        widget_js = [
            src
            for src in external
            if re.search(r"require(\.min)?\.js|jupyter-widgets|html-manager|embed-amd", src)
        ]
        assert widget_js == [], f"{name} loads widget JavaScript from a CDN: {widget_js}"


def test_no_page_shows_unrendered_glue(pages):
    for name, html in pages.items():
        assert "{glue" not in html, f"{name} shows a glue role that was not rendered"


def test_chapter_prose_quotes_numbers_computed_by_the_page(chapter, aid):
    pasted = re.findall(r'<span class="pasted-text">([^<]*)</span>', chapter)
    assert len(pasted) >= CHAPTERS[aid]["glued"]
    assert all(text.strip() for text in pasted)


def test_no_page_reveals_a_solution_or_hidden_test_line(pages):
    from course_helpers import secret_lines

    from seqlab.kit.course import assignments

    secrets = {line for aid in assignments(REPO) for line in secret_lines(aid)}
    assert secrets
    for name, html in pages.items():
        text = re.sub(r"<[^>]+>", "", html)
        for entity, char in (("&quot;", '"'), ("&#39;", "'"), ("&lt;", "<"), ("&gt;", ">")):
            text = text.replace(entity, char)
        text = text.replace("&amp;", "&")
        leaked = [line for line in secrets if line in text]
        assert not leaked, f"{name} shows solution or hidden-test lines: {leaked[:3]}"


def test_no_file_of_the_book_shows_nbgrader_markers_or_metadata(html_dir):
    forbidden = [
        "BEGIN SOLUTION",
        "END SOLUTION",
        "BEGIN HIDDEN TESTS",
        "END HIDDEN TESTS",
        "### BEGIN",
        "### END",
        '"nbgrader": {',  # a cell's nbgrader metadata
        "&quot;nbgrader&quot;: {",
        "grade_id",
    ]
    # the exercise notebooks under _downloads carry nbgrader metadata by design: they
    # are byte-equal to the release (test_downloadable_exercise_is_exactly_the_student_release)
    files = [
        p
        for p in html_dir.rglob("*")
        if p.suffix in {".html", ".md", ".txt", ".ipynb", ".js"} and "_downloads" not in p.parts
    ]
    assert any(p.suffix == ".md" for p in files)  # the page sources are checked too
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        found = [marker for marker in forbidden if marker in text]
        assert found == [], f"{path.relative_to(html_dir)} contains {found}"


def test_downloadable_exercise_is_exactly_the_student_release(html_dir):
    from seqlab.kit.course import assignments

    for aid in assignments(REPO):
        (download,) = html_dir.glob(f"_downloads/*/{aid}.ipynb")
        assert download.read_bytes() == (REPO / "exercises" / aid / f"{aid}.ipynb").read_bytes()


def test_chapter_links_the_downloadable_exercise_notebook(html_dir, chapter, aid):
    links = re.findall(rf'href="(\.\./_downloads/[^"]+/{aid}\.ipynb)"', chapter)
    assert links, "the chapter should link its exercise notebook for download"
    assert (html_dir / "book" / links[0]).resolve().is_file()
    text = re.sub(r"<[^>]+>", "", chapter)  # code blocks are split into highlighted spans
    assert f"nbgrader validate {aid}.ipynb" in text


def test_chapter_citations_point_to_the_bibliography(chapter, pages, aid):
    assert re.search(r'href="bibliography\.html#id\d+"', chapter)
    bibliography = pages["book/bibliography.html"]
    for author in CHAPTERS[aid]["authors"]:
        assert author in bibliography
