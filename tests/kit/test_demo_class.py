"""`make demo-class`: a synthetic class with hostile submissions, graded in one run.

Every submission must end with the score it deserves or a clear reason, every
other student's grade must be as if graded alone, grading again must change
nothing, and a run that is killed half way must be resumable without loss.

These are properties of the grading machinery, not of a chapter, so the demo
class here is chapter 1's (every chapter's own graded cells are judged by
test_grading_roundtrip.py); `make demo-class` grades one for every chapter.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time

import nbformat
import psutil
import pytest
from course_helpers import REPO, env, run

from seqlab.kit import course, grade
from seqlab.kit.demo import graded_tests

pytestmark = pytest.mark.grading
CHAPTER = "rnn_gradients"


def _grades(root) -> dict[tuple[str, str], str]:
    with open(root / "grades.csv", newline="") as f:
        return {(r["assignment"], r["student_id"]): r["score"] for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "class"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "seqlab.kit", "demo-class", "--dir", str(root)]
        + ["--assignment", CHAPTER],
        cwd=REPO,
        env=env() | {"SEQLAB_CELL_TIMEOUT": "20"},
        capture_output=True,
        text=True,
    )
    print(f"\n[timing] demo class graded in {time.perf_counter() - t0:.1f}s")
    return root, proc


def test_demo_class_gets_every_expected_score_and_reason(demo):
    root, proc = demo
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "every submission of the demo class got the score it should" in proc.stdout
    assert "FAIL " not in proc.stdout


def test_hostile_submissions_do_not_change_the_correct_students_grade(demo):
    root, _ = demo
    for aid in [CHAPTER]:
        auto = sum(
            c.metadata["nbgrader"]["points"]
            for c in graded_tests(
                nbformat.read(root / "exercises" / aid / f"{aid}.ipynb", 4)
            )
        )
        grades = _grades(root)
        assert float(grades[aid, "correct"]) == float(grades[aid, "extra_files"]) == auto
        assert float(grades[aid, "blank"]) == 0


def test_each_failure_is_reported_with_its_reason(demo):
    _, proc = demo
    for student, reason in [
        ("kills_kernel", "the kernel died"),
        ("not_json", "not a valid notebook"),
        ("renamed", "no notebook with the released name"),
    ]:
        assert any(
            student in ln and reason in ln for ln in proc.stdout.splitlines() if "FAILED" in ln
        )
    # the summary names the function that hung (later cells calling it are not run)
    assert re.search(r"infinite_loop: a cell ran past its time limit: \w+ ran past", proc.stdout)


def test_grading_the_class_again_changes_nothing(demo):
    root, _ = demo
    before = _grades(root)
    out = run(root, "seqlab.kit", "grade").stdout
    assert "graded 0 submission(s)" in out  # only the failed ones are tried again
    assert _grades(root) == before


# resubmitted for the killed run: four that grade in seconds are enough to stop it half
# way (the ones that fail are tried again by every run, resubmitted or not)
RESUBMITTED = ("blank", "correct", "extra_files", "partly_wrong")


def _running_in(root) -> list[int]:
    """Processes whose working folder is in the course (a kernel's, and its launcher's)."""
    here = []
    for proc in psutil.process_iter():
        try:
            if proc.cwd().startswith(str(root)):
                here.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return here


def test_a_grading_run_killed_half_way_is_resumed_without_loss(demo):
    root, _ = demo
    before = _grades(root)
    for student in RESUBMITTED:  # they resubmit the same work
        for nb in (root / "submitted" / student).rglob("*.ipynb"):
            nb.write_bytes(nb.read_bytes() + b"\n")
    kept = [  # graded, and not resubmitted
        s for s in course.submissions(root, CHAPTER)
        if s not in RESUBMITTED and grade.is_graded(root, CHAPTER, s)
    ]  # fmt: skip
    graded = lambda: sum(grade.is_graded(root, CHAPTER, s) for s in RESUBMITTED)  # noqa: E731
    assert graded() == 0
    child = subprocess.Popen(
        [sys.executable, "-m", "seqlab.kit", "grade", "--jobs", "1"],
        cwd=root,
        env=env() | {"SEQLAB_CELL_TIMEOUT": "20"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 600
    while graded() < 2 and time.time() < deadline and child.poll() is None:
        time.sleep(0.5)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    done = graded()
    assert 2 <= done < len(RESUBMITTED), f"the run should have stopped half way, {done} were graded"
    # nbgrader died with the run, and the kernel it was running with nbgrader
    deadline = time.time() + 15
    while _running_in(root) and time.time() < deadline:
        time.sleep(0.2)
    assert not _running_in(root), "a kernel outlived the grading run that started it"
    out = run(root, "seqlab.kit", "grade").stdout
    assert f"{done + len(kept)} unchanged since they were graded" in out
    assert _grades(root) == before


def test_summary_gives_a_mean_score_per_item(demo):
    root, proc = demo
    assert "mean score per item of rnn_gradients" in proc.stdout
    means = course.item_means(root, "rnn_gradients")
    assert set(means) >= {"test_rnn_step", "test_clip_grad_norm", "why_clip_answer"}
    mean, top, count = means["test_clip_grad_norm"]
    assert count == 11 and top == 3
    # correct and extra_files earn it; the other nine do not
    assert mean == pytest.approx(2 * 3 / 11)
