"""A term as an instructor lives it, through ``python -m seqlab.kit`` (``make grade``):
a due date and an extension; an LMS zip with two students of one name, a name with
non-ASCII letters, a browser's " (1)", files marked late by the LMS and files late by
their submission time (one penalised, one inside its extension) and a file that fits
no pattern; a hidden test changed mid-term; next week's zip, whose times are the LMS's
local time; the grade table and the LMS file as the instructor sees them. Graded in
the sandbox, like every class."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from datetime import datetime

import nbformat
import pytest
from course_helpers import (
    REPO,
    env,
    fill,
    release_notebook,
    run,
    scratch_course,
    solution_answers,
)

from seqlab.kit import course, report

pytestmark = pytest.mark.grading

AID = "seq2seq"  # the quickest notebook to grade (about 7 s)
DUE, EXTENDED = "2027-01-15 17:00 UTC", "2027-01-22 17:00 UTC"  # 1001's extension


def _zip(path, files: dict[str, tuple[nbformat.NotebookNode, tuple[int, ...]]]):
    """A zip as the LMS makes it: each file with its submission time as its zip time."""
    with zipfile.ZipFile(path, "w") as z:
        for name, (content, when) in files.items():
            z.writestr(zipfile.ZipInfo(name, date_time=when), nbformat.writes(content))
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
    # the due date and the extension come before the grading they apply to
    run(root, "seqlab.kit", "due", "--assignment", AID, "--when", DUE)
    run(root, "seqlab.kit", "extension", "--assignment", AID, "--student", "1001",
        "--until", EXTENDED)  # fmt: skip
    week1 = _zip(root.parent / "week1.zip", {
        # after the due date, before the end of the extension
        f"smithjohn_1001_50001_{AID}.ipynb": (solved, (2027, 1, 18, 9, 0, 0)),
        # marked late by the LMS (whose due date was another), on time by the course's
        f"smithjohn_LATE_1002_50002_{AID}.ipynb": (released, (2027, 1, 15, 16, 59, 0)),
        # late on both counts: 1 d 2 h 30 min
        f"müllerjürgen_LATE_1003_50003_{AID} (1).ipynb": (solved, (2027, 1, 16, 19, 30, 0)),
        f"Submission for {AID}.ipynb": (solved, (2027, 1, 14, 12, 0, 0)),
    })  # fmt: skip
    with pytest.MonkeyPatch.context() as env:  # nbgrader's late penalty: a late one scores 0
        env.setenv("SEQLAB_LATE_PENALTY", "zero")
        env.delenv(course.LMS_TIMEZONE, raising=False)
        first = run(root, "seqlab.kit", "grade", "--zip", str(week1), "--assignment", AID)
        later = _the_rest_of_the_term(root, solved, env)
    return root, first.stdout, *later


def _the_rest_of_the_term(root, solved, env):
    # the instructor fixes a hidden test mid-term (here: one more check that passes)
    source = root / "solutions" / AID / f"{AID}.ipynb"
    nb = nbformat.read(source, as_version=4)
    test = next(c for c in nb.cells if "### END HIDDEN TESTS" in c.source)
    test.source = test.source.replace("### END HIDDEN TESTS", "assert True\n### END HIDDEN TESTS")
    nbformat.write(nb, source)
    run(root, "seqlab.kit", "release", AID)
    second = run(root, "seqlab.kit", "grade", "--assignment", AID)
    # this LMS writes Berlin's time: 17:30 there is 16:30 UTC, before the due date
    week2 = _zip(root.parent / "week2.zip", {
        f"newstudent_1004_60004_{AID}.ipynb": (solved, (2027, 1, 15, 17, 30, 0)),
    })  # fmt: skip
    env.setenv(course.LMS_TIMEZONE, "Europe/Berlin")
    third = run(root, "seqlab.kit", "grade", "--zip", str(week2), "--assignment", AID)
    return second.stdout, third.stdout


def test_same_name_students_stay_two_and_every_file_is_accounted_for(term):
    root, first, *_ = term
    assert "collected 3 submission(s)" in first
    rows = _rows(first, "assignment")
    assert len(rows) == 3
    by_id = {row.split()[1]: row for row in rows}
    assert "smithjohn" in by_id["1001"] and "smithjohn" in by_id["1002"]
    assert "müllerjürgen" in by_id["1003"] and "(late in the LMS)" in by_id["1003"]
    assert "(late by 1 d 2 h, penalty " in by_id["1003"]  # the time's fact and the LMS's
    assert "(late in the LMS but on time for the due date)" in by_id["1002"]
    assert "late by" not in by_id["1001"] + by_id["1002"]
    assert "waiting for hand grading" in by_id["1001"]
    # a written answer left as released is worth 0 without a hand grader (nbgrader's rule)
    assert "graded" in by_id["1002"] and "waiting" not in by_id["1002"]
    not_collected = [line for line in first.splitlines() if "not collected from the zip" in line]
    assert not_collected == [
        f"  not collected from the zip: Submission for {AID}.ipynb: "
        "its name does not fit the LMS pattern"
    ]
    assert f"late   {AID} / 1003: marked late by the LMS" in first
    assert f"late   {AID} / 1002: marked late by the LMS" in first
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
    assert rows["1001"].extended_until == EXTENDED and not rows["1002"].extended_until
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


def test_submission_times_are_kept_and_the_late_one_is_penalised(term):
    root, *_, third = term
    lms = json.loads((root / "downloaded" / AID / "lms.json").read_text())
    assert {student: record["submitted"] for student, record in lms.items()} == {
        "1001": "2027-01-18 09:00:00 UTC",
        "1002": "2027-01-15 16:59:00 UTC",
        "1003": "2027-01-16 19:30:00 UTC",
        "1004": "2027-01-15 16:30:00 UTC",  # read in Europe/Berlin
    }
    with course.Gradebook(course.gradebook_url(root)) as gb:
        got = {s: gb.find_submission(AID, s) for s in ("1001", "1002", "1003", "1004")}
        stamps = {s: sub.timestamp for s, sub in got.items()}
        late = {s: sub.total_seconds_late for s, sub in got.items()}
        penalties = {s: sub.late_submission_penalty for s, sub in got.items()}
        raw = {s: sub.score for s, sub in got.items()}
    assert stamps["1003"] == datetime(2027, 1, 16, 19, 30)
    assert stamps["1001"] == datetime(2027, 1, 18, 9, 0)
    assert late == {"1001": 0, "1002": 0, "1003": (26 * 60 + 30) * 60, "1004": 0}
    # SEQLAB_LATE_PENALTY=zero: the late one loses its points, the extended one keeps them
    assert penalties["1003"] == raw["1003"] == raw["1001"] > 0
    assert penalties["1001"] == penalties["1004"] == 0
    rows = {row.student: row for row in report.grade_table(root, [AID])}
    assert rows["1003"].late_by == "1 d 2 h" and rows["1003"].penalty == raw["1003"]
    assert rows["1003"].score == 0.0
    assert rows["1003"].submitted == "2027-01-16 19:30 UTC" and rows["1003"].late
    assert (rows["1001"].late_by, rows["1001"].penalty) == ("", 0.0)
    assert rows["1001"].score == raw["1001"]
    table = list(csv.DictReader(io.StringIO((root / "grade-table.csv").read_text())))
    written = {row["student"]: row for row in table}
    assert (written["1003"]["late_by"], written["1003"]["score"]) == ("1 d 2 h", "0.0")
    assert written["1001"]["submitted"] == "2027-01-18 09:00 UTC"
    line = next(row for row in _rows(third, "assignment") if row.split()[1] == "1003")
    assert line.endswith(f"(late by 1 d 2 h, penalty {raw['1003']:g} points) (late in the LMS)")


def test_a_zip_time_is_read_in_the_lms_zone(monkeypatch):
    def at(*when):
        return course.submission_time(zipfile.ZipInfo("a.ipynb", date_time=when), zone)

    monkeypatch.delenv(course.LMS_TIMEZONE, raising=False)
    zone = course.lms_zone()
    assert at(2027, 1, 15, 18, 0, 0) == datetime(2027, 1, 15, 18, 0)  # UTC by default
    assert at(1980, 1, 1, 0, 0, 0) is None  # the zip format's "no time"
    monkeypatch.setenv(course.LMS_TIMEZONE, "Europe/Berlin")
    zone = course.lms_zone()
    assert at(2027, 1, 15, 18, 0, 0) == datetime(2027, 1, 15, 17, 0)  # winter: UTC+1
    assert at(2027, 7, 15, 18, 0, 0) == datetime(2027, 7, 15, 16, 0)  # summer: UTC+2
    monkeypatch.setenv(course.LMS_TIMEZONE, "Mars/Olympus")
    with pytest.raises(course.CourseError, match="SEQLAB_LMS_TIMEZONE='Mars/Olympus' is not"):
        course.lms_zone()


def test_the_summary_says_both_the_time_and_the_lms_marker():
    def row(**facts):
        return report.Row(AID, "1001", "ada", report.GRADED, 3.0, 5.0, 0.0, **facts)

    assert report.lateness(row(late=False)) == ""
    assert report.lateness(row(late=True)) == " (late in the LMS)"  # no time known
    assert report.lateness(row(late=True, submitted="2027-01-15 16:00 UTC")) == (
        " (late in the LMS but on time for the due date)"
    )
    late = row(late=False, in_lms=True, submitted="x", late_by="2 h 5 min", penalty=2.0)
    said = " (late by 2 h 5 min, penalty 2 points) (not marked late in the LMS)"
    assert report.lateness(late) == said
    late.penalty = 0.0
    assert report.lateness(late).startswith(" (late by 2 h 5 min, no penalty)")
    assert [report.duration(s) for s in (1, 60, 61, 3600 * 5 + 600, 86400 * 2 + 3600 * 3)] == [
        "1 min", "1 min", "2 min", "5 h 10 min", "2 d 3 h"
    ]  # fmt: skip


def test_a_due_date_or_extension_given_after_grading_updates_the_penalty(tmp_path, monkeypatch):
    """nbgrader decides a late penalty when it autogrades; the kit decides it again from
    the gradebook's dates and scores whenever they change (no grading run here: a
    gradebook as autograde leaves it, written with nbgrader's API)."""
    monkeypatch.setenv("PATH", env()["PATH"])  # a new gradebook runs alembic from PATH
    monkeypatch.setenv("SEQLAB_LATE_PENALTY", "zero")
    root = tmp_path / "course"
    root.mkdir()
    shutil.copy2(REPO / "nbgrader_config.py", root)
    for folder in ("submitted", "autograded"):  # what the grade table looks for
        (root / folder / "1001" / "hw").mkdir(parents=True)
        (root / folder / "1001" / "hw" / "hw.ipynb").write_text("{}")
    with course.Gradebook(course.gradebook_url(root)) as gb:
        gb.add_assignment("hw")
        gb.add_notebook("hw", "hw")
        gb.add_grade_cell("test_f", "hw", "hw", max_score=2.0, cell_type="code")
        gb.add_student("1001")
        gb.add_submission("hw", "1001", timestamp=datetime(2027, 1, 16, 12, 0))
        gb.find_grade("test_f", "hw", "hw", "1001").auto_score = 2.0
        gb.db.commit()

    def penalty() -> float | None:
        with course.Gradebook(course.gradebook_url(root)) as gb:
            return gb.find_submission_notebook("hw", "hw", "1001").late_submission_penalty

    assert penalty() is None  # graded before any due date: on time
    report.set_due_date(root, "hw", "2027-01-15 17:00 UTC")
    assert penalty() == 2.0  # 19 h late: zero points
    (row,) = report.grade_table(root, ["hw"])
    assert (row.late_by, row.penalty, row.score) == ("19 h 0 min", 2.0, 0.0)
    report.grant_extension(root, "hw", "1001", "2027-01-17 17:00 UTC")
    assert penalty() is None
    (row,) = report.grade_table(root, ["hw"])
    assert (row.late_by, row.penalty, row.score) == ("", 0.0, 2.0)
    monkeypatch.setenv("SEQLAB_LATE_PENALTY", "none")
    report.set_due_date(root, "hw", "2027-01-10 17:00 UTC")  # late again, but no penalty
    assert penalty() is None


def test_an_unknown_late_penalty_stops_before_any_grading(monkeypatch):
    monkeypatch.setenv(report.LATE_PENALTY, "half")
    with pytest.raises(course.CourseError, match="SEQLAB_LATE_PENALTY='half' is not a late"):
        report.check_late_penalty()
    monkeypatch.setenv(report.LATE_PENALTY, "zero")
    assert report.check_late_penalty() == "zero"
