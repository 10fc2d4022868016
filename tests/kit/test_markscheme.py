"""What the instructor reads while grading written answers by hand (book/instructors.md,
section 5): ``make markscheme`` prints each hand-graded answer's points and mark scheme,
which the formgrader does not show, and the summary's mean per item counts a written
answer only once it has its hand grade. Neither needs a grading run: the first reads
solutions/, the second a gradebook written here with nbgrader's API.
"""

from __future__ import annotations

import shutil

import nbformat
import pytest
from course_helpers import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    REPO,
    env,
    regions,
    run,
)

from seqlab.kit import course, grade

pytestmark = pytest.mark.grading


def _cells(aid: str) -> list[dict]:
    nb = nbformat.read(REPO / "solutions" / aid / f"{aid}.ipynb", as_version=4)
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")]


def test_markscheme_prints_every_written_answer_with_its_points_and_no_test():
    out = run(REPO, "seqlab.kit", "markscheme").stdout
    ids = course.assignments(REPO)
    assert len(ids) >= 6
    for aid in ids:
        manual = [c for c in _cells(aid) if c.metadata.nbgrader.get("grade")]
        manual = [c for c in manual if c.metadata.nbgrader.get("solution")]
        assert manual, f"{aid} has no answer graded by hand"
        assert f"{aid}: {len(manual)} answer(s) graded by hand" in out
        for cell in manual:
            meta = cell.metadata.nbgrader
            heading = f"{aid} / {meta.grade_id} ({meta.points:g} points)"
            assert out.count(heading) == 1, heading
            scheme, _ = regions(cell.source, BEGIN_SOLUTION, END_SOLUTION)
            text = "\n".join(scheme).strip()
            assert text.startswith("Mark scheme") and text in out, heading
        for cell in _cells(aid):  # the autograded answers and tests stay out
            meta = cell.metadata.nbgrader
            if cell in manual:
                continue
            assert f"/ {meta.grade_id} (" not in out
            hidden, _ = regions(cell.source, BEGIN_HIDDEN, END_HIDDEN)
            solution, _ = regions(cell.source, BEGIN_SOLUTION, END_SOLUTION)
            for line in hidden + solution:
                if len(line.strip()) >= 20:
                    assert line not in out, f"{aid}: {line!r} of {meta.grade_id}"
    proc = run(REPO, "seqlab.kit", "markscheme", "--assignment", "rnn_gradient", check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().startswith("error: no assignment 'rnn_gradient'")


AID = "hw"
# item -> (max score, a written answer?)
ITEMS = {"test_f": (2.0, False), "why": (3.0, True), "derivation": (4.0, True)}
# student -> item -> (auto score, manual score); None: not set
SCORES = {
    "1001": {"test_f": (2.0, None), "why": (None, None), "derivation": (None, None)},
    "1002": {"test_f": (2.0, None), "why": (None, 3.0), "derivation": (None, None)},
    # a blank written answer: nbgrader's autograde gives it 0, no hand grade needed;
    # a test with no score, as in a submission that failed to grade, counts 0
    "1003": {"test_f": (None, None), "why": (0.0, None), "derivation": (None, None)},
}


def test_mean_per_item_counts_a_written_answer_once_it_is_graded_by_hand(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("PATH", env()["PATH"])  # a new gradebook runs alembic from PATH
    root = tmp_path / "course"
    root.mkdir()
    shutil.copy2(REPO / "nbgrader_config.py", root)
    with course.Gradebook(course.gradebook_url(root)) as gb:
        gb.add_assignment(AID)
        gb.add_notebook(AID, AID)
        for name, (top, written) in ITEMS.items():
            kind = "markdown" if written else "code"
            gb.add_grade_cell(name, AID, AID, max_score=top, cell_type=kind)
            if written:
                gb.add_solution_cell(name, AID, AID)
        for student, scores in SCORES.items():
            gb.add_student(student)
            gb.add_submission(AID, student)
            for name, (auto, manual) in scores.items():
                g = gb.find_grade(name, AID, AID, student)
                g.auto_score, g.manual_score = auto, manual
        gb.db.commit()
    assert course.item_means(root, AID) == {
        "test_f": (pytest.approx(4 / 3), 2.0, 3),
        "why": (1.5, 3.0, 2),  # 1001's waits: not a 0
        "derivation": (None, 4.0, 0),
    }
    assert course.hand_waiting(root, AID) == {"why": 1, "derivation": 3}
    grade.print_summary(root, grade.Summary(graded=[(AID, s) for s in SCORES]))
    lines = capsys.readouterr().out.splitlines()
    (head,) = [line for line in lines if line.startswith(f"mean score per item of {AID}")]
    assert "over 3 submissions" in head
    shown = {line.split()[0]: line.split(maxsplit=1)[1] for line in lines if line[:2] == "  "}
    assert shown["test_f"] == "1.33 / 2"
    assert shown["why"] == "1.50 / 3  (2 graded, 1 still to grade by hand)"
    assert shown["derivation"] == "- / 4  (0 graded, 3 still to grade by hand)"
