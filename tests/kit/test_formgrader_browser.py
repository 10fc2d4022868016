"""nbgrader's formgrader in headless chromium, as section 5 of book/instructors.md tells the
instructor to use it: a Jupyter server started in a scratch course (the course's own
nbgrader_config.py) with one submission as autograde leaves it, a written answer waiting
for its hand grade. The page has the entries the guide names and no warning about the
exchange; Manual Grading leads to the written answer, whose score box saves to the
gradebook. The guide's section is read here, so it cannot drift from the page; a
screenshot of the grading view is kept (and copied to $SEQLAB_SCREENSHOTS when set).
The browser helpers are the book's (tests/book/browser.py).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from course_helpers import REPO, env, fill, release_notebook, scratch_course, submit

from seqlab.kit import course

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book"))
from browser import DESKTOP, browser, jupyter_lab  # noqa: E402 (the book's helpers, beside it)

pytestmark = pytest.mark.browser

AID, STUDENT, WRITTEN = "rnn_gradients", "1001", "why_clip_answer"
ANSWER = "Clamping acts after the step has been taken; clipping bounds the step itself."
# what the guide quotes of the grading path and page, each of which the browser must find
QUOTED = (
    "Submission #1", "Show All Names", "Needs Manual Grade?", "Student's answer", "Full credit",
    "No credit", "Next",
)  # fmt: skip


def guide_section() -> str:
    """Section 5 of the instructor's guide."""
    text = (REPO / "book" / "instructors.md").read_text()
    start = text.index("## 5. Grade the written answers by hand")
    return text[start : text.index("\n## 6.", start)]


def course_with_a_written_answer_to_grade(base: Path) -> Path:
    """A scratch course whose gradebook has one student's submission as nbgrader autograde
    leaves it: the tests scored, the written answers waiting for their hand grade."""
    root = scratch_course(base / "course")
    course.release(root, [AID])  # the gradebook learns the assignment's cells
    nb = fill(release_notebook(root, AID), {WRITTEN: ANSWER})
    submit(root, STUDENT, AID, nb)
    graded = root / "autograded" / STUDENT / AID
    graded.mkdir(parents=True)
    shutil.copy2(root / "submitted" / STUDENT / AID / f"{AID}.ipynb", graded)
    with course.Gradebook(course.gradebook_url(root)) as gb:
        gb.update_or_create_student(STUDENT, first_name="Ada", last_name="Lovelace")
        submission = gb.add_submission(AID, STUDENT)
        for g in (g for nb in submission.notebooks for g in nb.grades):
            if g.cell.cell_type == "code":
                g.auto_score, g.needs_manual_grade = g.max_score, False
        gb.db.commit()
    return root


def _manual_score(root: Path, timeout: float) -> float | None:
    """The written answer's hand grade in the gradebook, once it has one (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        with course.Gradebook(course.gradebook_url(root)) as gb:
            score = gb.find_grade(WRITTEN, AID, AID, STUDENT).manual_score
        if score is not None or time.monotonic() > deadline:
            return score
        time.sleep(0.2)


def test_the_formgrader_is_what_the_guide_describes(tmp_path):
    section = guide_section()
    # the guide's menu is the labextension's: the Nbgrader menu's Formgrader command
    bundles = Path(sys.prefix, "share/jupyter/labextensions/@jupyter/nbgrader/static")
    js = "".join(p.read_text(errors="replace") for p in bundles.glob("*.js"))
    assert 'title.label="Nbgrader"' in js and 'label:"Formgrader"' in js
    assert "Nbgrader > Formgrader" in section
    entries = re.findall(r"^- \*\*([^*]+)\*\*:", section, flags=re.M)

    root = course_with_a_written_answer_to_grade(tmp_path)
    shot = tmp_path / "formgrader-manual-grading.png"
    server = jupyter_lab(root, tmp_path / "jupyter", "jupyter_server", env())
    with server as url, browser() as chromium:
        page = chromium.new_page(viewport=DESKTOP)
        base, _, token = url.partition("/?")
        page.goto(f"{base}/formgrader?{token}", wait_until="load")
        page.wait_for_selector(f"#main-table a:text-is('{AID}')")  # the assignments loaded
        assert page.url.endswith("/formgrader/manage_assignments")
        shown = [t.strip() for t in page.locator("ul.nav-pills > li > a").all_inner_texts()]
        warnings = page.locator(".alert-warning").all_inner_texts()
        seen = page.inner_text("body")
        # Manual Grading > the assignment > its notebook > the submission
        page.click("ul.nav-pills a:text-is('Manual Grading')")
        page.wait_for_url("**/formgrader/gradebook")
        page.click(f"#main-table a:text-is('{AID}')")
        page.wait_for_url(f"**/formgrader/gradebook/{AID}")
        page.click(f"#main-table a:text-is('{AID}')")
        page.wait_for_url(f"**/formgrader/gradebook/{AID}/{AID}")
        page.wait_for_selector("#main-table a:text-is('Submission #1')")
        seen += page.inner_text("body")
        page.click("#main-table a:text-is('Submission #1')")
        score = page.locator(f"input.score#{WRITTEN}")
        score.wait_for()
        seen += page.inner_text("body")
        assert page.locator(f"textarea#{WRITTEN}-comment").count() == 1
        assert ANSWER in seen
        score.scroll_into_view_if_needed()
        page.screenshot(path=str(shot))
        score.fill("2")
        score.press("Tab")  # the box saves when it loses the focus
        saved = _manual_score(root, timeout=10)
        page.close()
    assert shown == ["Manage Assignments", "Manual Grading", "Manage Students"]
    assert entries == shown, "section 5 of book/instructors.md names other entries than the page"
    assert warnings == [], f"the formgrader warns: {warnings}"
    prose, seen = " ".join(section.split()), " ".join(seen.split())  # lines wrapped anywhere
    for quoted in QUOTED:
        assert quoted in prose, f"section 5 no longer quotes {quoted!r}"
        assert quoted in seen, f"{quoted!r}, which section 5 quotes, is not on the page"
    assert saved == 2, "the score typed into the formgrader did not reach the gradebook"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    if folder := os.environ.get("SEQLAB_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, Path(folder) / shot.name)
