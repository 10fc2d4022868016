"""The whole grading round trip with the real nbgrader command line, on a scratch course.

One synthetic class is released, submitted and graded once with the
instructor's own command (``python -m seqlab.course grade``, behind
``make grade``); the tests below read what that run produced.
"""

from __future__ import annotations

import csv
import json
import re
import time

import nbformat
import pytest
from course_helpers import (
    REPO,
    cell_scores,
    fill,
    release_notebook,
    run,
    scratch_course,
    secret_lines,
    solution_answers,
    submit,
)
from planted_bugs import PLANTED

pytestmark = [pytest.mark.grading, pytest.mark.rnn_gradients]

AID = "rnn_gradients"
GRADED = list(PLANTED)  # the graded functions, in notebook order
TEST_CELL = {name: f"test_{name}" for name in GRADED}

WRONG = {  # answers that are wrong but run
    "rnn_step": "def rnn_step(x_t, h_prev, W_xh, W_hh, b_h):\n    return h_prev * 0",
    "rnn_forward": "def rnn_forward(xs, h0, W_xh, W_hh, b_h):\n    return xs * 0",
    "scale_spectral_radius": "def scale_spectral_radius(W, rho):\n    return W",
    "matrix_power_norms": "def matrix_power_norms(W, steps):\n    return W.new_ones(steps)",
    "clip_grad_norm": "def clip_grad_norm(grads, max_norm):\n    return grads, max_norm",
}
TAMPER_COMPARISONS = """
import numpy, numpy.testing, torch.testing
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
numpy.allclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
"""
TAMPER_GRADER = """
grading.assert_close = lambda *a, **k: None
grading.call = lambda fn, *a, forbid=None, **k: fn(*a, **k)
"""


def _bug_slots() -> list[dict[str, tuple[str, str]]]:
    """Submission k gets the k-th planted bug of every function that has one."""
    depth = max(len(bugs) for bugs in PLANTED.values())
    slots = []
    for k in range(depth):
        slot = {}
        for func, bugs in PLANTED.items():
            names = list(bugs)
            if k < len(names):
                slot[func] = (names[k], bugs[names[k]])
        slots.append(slot)
    return slots


@pytest.fixture(scope="session")
def course(tmp_path_factory):
    root = scratch_course(tmp_path_factory.mktemp("course"))
    t0 = time.perf_counter()
    run(root, "seqlab.course", "release")
    release_seconds = time.perf_counter() - t0
    released = release_notebook(root, AID)
    answers = solution_answers(AID)

    submit(root, "solution", AID, fill(released, answers))
    submit(root, "blank", AID, released)
    for k, slot in enumerate(_bug_slots()):
        submit(
            root,
            f"bugs{k}",
            AID,
            fill(released, answers | {f: src for f, (_, src) in slot.items()}),
        )
    first = GRADED[0]
    submit(
        root,
        "tamper_comparisons",
        AID,
        fill(released, answers | WRONG | {first: TAMPER_COMPARISONS + WRONG[first]}),
    )
    submit(
        root,
        "tamper_grader",
        AID,
        fill(released, answers | WRONG | {first: TAMPER_GRADER + WRONG[first]}),
    )
    nb = fill(released, answers | WRONG)
    nb.cells = [
        c
        for c in nb.cells
        if not c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_")
    ]
    submit(root, "deleted_tests", AID, nb)
    nb = fill(released, answers | WRONG)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_"):
            c.source = "pass"
    submit(root, "edited_tests", AID, nb)

    t0 = time.perf_counter()
    proc = run(root, "seqlab.course", "grade")
    grade_seconds = time.perf_counter() - t0
    students = sorted(p.name for p in (root / "submitted").iterdir())
    scores = {s: cell_scores(root, AID, s) for s in students}
    print(
        f"\n[timing] release {release_seconds:.1f}s; graded {len(students)} submissions "
        f"in {grade_seconds:.1f}s ({grade_seconds / len(students):.1f}s each, parallel)"
    )
    return {"root": root, "scores": scores, "log": proc.stdout, "answers": answers}


def _auto_total(scores: dict[str, tuple[float, float]]) -> tuple[float, float]:
    tests = [v for k, v in scores.items() if k.startswith("test_")]
    return sum(s for s, _ in tests), sum(m for _, m in tests)


def test_release_reproduces_the_committed_exercises(course):
    fresh = (course["root"] / "exercises" / AID / f"{AID}.ipynb").read_bytes()
    committed = (REPO / "exercises" / AID / f"{AID}.ipynb").read_bytes()
    assert fresh == committed, "exercises/ is out of date: run `make release` and commit it"


def test_release_contains_no_solution_and_no_hidden_test_line():
    text = (REPO / "exercises" / AID / f"{AID}.ipynb").read_text()
    sources = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
    secrets = secret_lines(AID)
    assert len(secrets) > 40  # the check has something to look for
    leaked = sorted(ln for ln in secrets if ln in sources)
    assert not leaked, f"released exercise contains hidden lines: {leaked[:5]}"
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text


def test_solution_submitted_scores_full_autograded_marks(course):
    score, max_score = _auto_total(course["scores"]["solution"])
    assert max_score == 13 and score == max_score


def test_untouched_release_scores_zero_autograded_points(course):
    score, max_score = _auto_total(course["scores"]["blank"])
    assert max_score == 13 and score == 0


@pytest.mark.parametrize(
    "func,bug",
    [(func, bug) for func, bugs in PLANTED.items() for bug in bugs],
)
def test_planted_bug_loses_the_points_of_its_function(course, func, bug):
    k = next(i for i, slot in enumerate(_bug_slots()) if slot.get(func, ("",))[0] == bug)
    score, max_score = course["scores"][f"bugs{k}"][TEST_CELL[func]]
    assert max_score > 0 and score == 0, f"planted bug {func}/{bug} kept {score}/{max_score}"


def test_planted_bugs_do_not_cost_points_in_correct_cells(course):
    for k, slot in enumerate(_bug_slots()):
        for func in GRADED:
            if func not in slot:
                score, max_score = course["scores"][f"bugs{k}"][TEST_CELL[func]]
                assert score == max_score, f"bugs{k}: correct {func} lost points"


@pytest.mark.parametrize("student", ["tamper_comparisons", "tamper_grader"])
def test_answers_that_rebind_the_checks_gain_nothing(course, student):
    score, _ = _auto_total(course["scores"][student])
    assert score == 0


@pytest.mark.parametrize("student", ["deleted_tests", "edited_tests"])
def test_deleted_or_edited_test_cells_are_restored_and_judge(course, student):
    scores = course["scores"][student]
    assert set(TEST_CELL.values()) <= set(scores)
    assert _auto_total(scores) == (0, 13)


def test_grading_again_gives_the_same_scores(course):
    root = course["root"]
    for student in ("solution", "bugs0", "tamper_comparisons"):
        run(root, "nbgrader", "autograde", AID, "--student", student, "--force")
        assert cell_scores(root, AID, student) == course["scores"][student]


def test_grades_csv_lists_every_student_with_the_autograded_score(course):
    with open(course["root"] / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(course["scores"])
    for student, scores in course["scores"].items():
        assert float(rows[student]["score"]) == _auto_total(scores)[0]
        assert float(rows[student]["max_score"]) == 16  # 13 autograded + 3 by hand


def test_feedback_shows_results_but_never_hidden_test_source(course):
    secrets = secret_lines(AID)
    hidden_only = {ln for ln in secrets if ln not in "\n".join(course["answers"].values())}
    for student in course["scores"]:
        html = (course["root"] / "feedback" / student / AID / f"{AID}.html").read_text()
        text = re.sub(r"<[^>]+>", "", html).replace("&quot;", '"').replace("&#39;", "'")
        leaked = [ln for ln in hidden_only if ln in text]
        assert not leaked, f"{student}'s feedback shows hidden test lines: {leaked[:3]}"
        assert "BEGIN HIDDEN TESTS" not in text
    blank = (course["root"] / "feedback" / "blank" / AID / f"{AID}.html").read_text()
    assert "NotImplementedError" in blank
    tamper = (course["root"] / "feedback" / "tamper_comparisons" / AID / f"{AID}.html").read_text()
    assert "TamperingError" in tamper


def test_exercise_notebook_is_valid_nbgrader_metadata():
    nb = json.loads((REPO / "solutions" / AID / f"{AID}.ipynb").read_text())
    ids = [
        c["metadata"]["nbgrader"]["grade_id"] for c in nb["cells"] if "nbgrader" in c["metadata"]
    ]
    assert len(ids) == len(set(ids)) == len(nb["cells"])
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
