"""The instructor's commands in seqlab.kit.course, on a scratch copy of the course."""

import os
import zipfile

import pytest
from course_helpers import release_notebook, run, scratch_course

from seqlab.kit import course

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


def test_zip_of_lms_downloads_is_collected_into_submitted(root, tmp_path):
    release = (root / "exercises" / "rnn_gradients" / "rnn_gradients.ipynb").read_bytes()
    archive = tmp_path / "canvas.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("lovelaceada_1234_56789_rnn_gradients.ipynb", release)
        z.writestr("turingalan_LATE_2345_67890_rnn_gradients-1.ipynb", release)
        z.writestr("hoppergrace_3456_78901_notes.txt", "not a notebook")
    course.sync_gradebook(root, "rnn_gradients")
    course.collect_zip(root, archive, "rnn_gradients")
    got = sorted(
        p.relative_to(root / "submitted").as_posix() for p in (root / "submitted").rglob("*.ipynb")
    )
    assert got == [
        "lovelaceada/rnn_gradients/rnn_gradients.ipynb",
        "turingalan/rnn_gradients/rnn_gradients.ipynb",
    ]
    with pytest.raises(course.CourseError, match="zip file not found"):
        course.collect_zip(root, tmp_path / "missing.zip", "rnn_gradients")


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
    assert not course.is_graded(root, "rnn_gradients", "ada")
    graded = root / "autograded" / "ada" / "rnn_gradients"
    graded.mkdir(parents=True)
    (graded / "rnn_gradients.ipynb").write_text("{}")  # a run that was stopped half way
    assert not course.is_graded(root, "rnn_gradients", "ada")
    course._mark_graded(
        root, "rnn_gradients", "ada", course._fingerprint(root, "rnn_gradients", "ada")
    )
    assert course.is_graded(root, "rnn_gradients", "ada")
    sub.write_text(str(nb) + " ")  # a resubmission, whatever its file time
    os.utime(sub, (0, 0))
    assert not course.is_graded(root, "rnn_gradients", "ada")
