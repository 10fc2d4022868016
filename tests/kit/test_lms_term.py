"""A term as an instructor lives it, through ``python -m seqlab.kit`` (``make grade``):
an LMS zip with two students of one name, a name with non-ASCII letters, a
browser's " (1)", a late file and a file that fits no pattern; a hidden test
changed mid-term; next week's zip; an extension; the grade table and the LMS
file as the instructor sees them. Graded in the sandbox, like every class."""

from __future__ import annotations

import csv
import io
import zipfile

import nbformat
import pytest
from course_helpers import fill, release_notebook, run, scratch_course, solution_answers

from seqlab.kit import report

pytestmark = pytest.mark.grading

AID = "seq2seq"  # the quickest notebook to grade (about 7 s)


def _zip(path, files: dict[str, nbformat.NotebookNode | bytes]):
    with zipfile.ZipFile(path, "w") as z:
        for name, content in files.items():
            z.writestr(name, content if isinstance(content, bytes) else nbformat.writes(content))
    return path


def _rows(text: str, header: str) -> list[str]:
    """The lines of the summary's grade table (after its header line)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    return [line for line in lines[start + 1 :] if line.startswith(AID)]


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    root = scratch_course(tmp_path_factory.mktemp("term") / "course")
    released = release_notebook(root, AID)
    solved = fill(released, solution_answers(AID))
    week1 = _zip(root.parent / "week1.zip", {
        f"smithjohn_1001_50001_{AID}.ipynb": solved,
        f"smithjohn_1002_50002_{AID}.ipynb": released,
        f"müllerjürgen_LATE_1003_50003_{AID} (1).ipynb": solved,
        f"Submission for {AID}.ipynb": solved,
    })  # fmt: skip
    first = run(root, "seqlab.kit", "grade", "--zip", str(week1), "--assignment", AID)
    # the instructor fixes a hidden test mid-term (here: one more check that passes)
    source = root / "solutions" / AID / f"{AID}.ipynb"
    nb = nbformat.read(source, as_version=4)
    test = next(c for c in nb.cells if "### END HIDDEN TESTS" in c.source)
    test.source = test.source.replace("### END HIDDEN TESTS", "assert True\n### END HIDDEN TESTS")
    nbformat.write(nb, source)
    run(root, "seqlab.kit", "release", AID)
    second = run(root, "seqlab.kit", "grade", "--assignment", AID)
    week2 = _zip(root.parent / "week2.zip", {f"newstudent_1004_60004_{AID}.ipynb": solved})
    run(root, "seqlab.kit", "due", "--assignment", AID, "--when", "2027-01-15 17:00 UTC")
    run(root, "seqlab.kit", "extension", "--assignment", AID, "--student", "1002",
        "--until", "2027-01-22 17:00 UTC")  # fmt: skip
    third = run(root, "seqlab.kit", "grade", "--zip", str(week2), "--assignment", AID)
    return root, first.stdout, second.stdout, third.stdout


def test_same_name_students_stay_two_and_every_file_is_accounted_for(term):
    root, first, *_ = term
    assert "collected 3 submission(s)" in first
    rows = _rows(first, "assignment")
    assert len(rows) == 3
    by_id = {row.split()[1]: row for row in rows}
    assert "smithjohn" in by_id["1001"] and "smithjohn" in by_id["1002"]
    assert "müllerjürgen" in by_id["1003"] and "(late in the LMS)" in by_id["1003"]
    assert "waiting for hand grading" in by_id["1001"]
    # a written answer left as released is worth 0 without a hand grader (nbgrader's rule)
    assert "graded" in by_id["1002"] and "waiting" not in by_id["1002"]
    not_collected = [line for line in first.splitlines() if "not collected from the zip" in line]
    assert not_collected == [
        f"  not collected from the zip: Submission for {AID}.ipynb: "
        "its name does not fit the LMS pattern"
    ]
    assert f"late   {AID} / 1003: marked late by the LMS" in first
    assert "points still to be graded by hand, in 2 submission(s)" in first


def test_a_changed_hidden_test_regrades_the_chapter(term):
    _, first, second, _ = term
    assert f"the tests of {AID} changed since 3 submission(s) were graded" in second
    assert "graded 3 submission(s), 0 failed, 0 unchanged" in second
    assert _rows(first, "assignment") == _rows(second, "assignment")  # the new check passes


def test_next_weeks_zip_grades_only_whats_new_and_the_extension_shows(term):
    root, *_, third = term
    assert "graded 1 submission(s), 0 failed, 3 unchanged" in third
    rows = {row.student: row for row in report.grade_table(root, [AID])}
    assert sorted(rows) == ["1001", "1002", "1003", "1004"]
    assert rows["1002"].extended_until == "2027-01-22 17:00 UTC"
    assert rows["1001"].score == rows["1004"].score > rows["1002"].score == 0
    assert rows["1003"].late and not rows["1004"].late  # week 1's marker stays
    assert [row.status for row in rows.values()] == [
        report.WAITING, report.GRADED, report.WAITING, report.WAITING
    ]  # fmt: skip


def test_the_lms_file_has_the_import_columns_and_no_score_that_is_not_final(term):
    root, *_ = term
    lines = list(csv.reader(io.StringIO((root / "lms-grades.csv").read_text())))
    assert lines[0] == [*report.LMS_ID_COLUMNS, AID]
    assert lines[1][0] == "Points Possible" and float(lines[1][-1]) > 0
    assert [line[1] for line in lines[2:]] == ["1001", "1002", "1003", "1004"]
    assert lines[2][0] == "smithjohn"
    # only 1002's score is final (its written answer was left blank: 0 without a grader);
    # the others wait for a hand grade, and the file leaves them blank
    assert [line[-1] for line in lines[2:]] == ["", "0", "", ""]
