"""The whole grading round trip with the real nbgrader command line, on a scratch course.

For every chapter, one synthetic class is released, submitted and graded once
with the instructor's own command (``python -m seqlab.kit grade``, behind
``make grade``); the tests below read what that run produced:

* ``solution``: the solution, typed into the release as a student would;
* ``blank``: the release, untouched;
* ``bugs<k>``: the k-th planted bug of every graded function at once;
* ``tamper_comparisons`` / ``tamper_grader``: wrong answers plus code that
  rebinds torch/numpy comparisons or the course's own checks;
* ``deleted_tests`` / ``edited_tests``: wrong answers, test cells removed or blanked.
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
from planted_bugs import PLANTED, WRONG

pytestmark = pytest.mark.grading

CHAPTERS = list(PLANTED)
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


def _points(aid: str) -> tuple[float, float]:
    """(autograded points, all points) of an assignment, from its source notebook."""
    nb = nbformat.read(REPO / "solutions" / aid / f"{aid}.ipynb", as_version=4)
    auto = total = 0.0
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            total += meta["points"]
            if not meta.get("solution"):
                auto += meta["points"]
    return auto, total


def _bug_slots(aid: str) -> list[dict[str, tuple[str, str]]]:
    """Submission k gets the k-th planted bug of every function that has one."""
    planted = PLANTED[aid]
    slots = []
    for k in range(max(len(bugs) for bugs in planted.values())):
        slots.append({f: list(bugs.items())[k] for f, bugs in planted.items() if k < len(bugs)})
    return slots


def _is_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def _submit_class(root, aid: str) -> None:
    released = release_notebook(root, aid)
    answers = solution_answers(aid)
    wrong = answers | WRONG[aid]
    first = next(iter(PLANTED[aid]))
    submit(root, "solution", aid, fill(released, answers))
    submit(root, "blank", aid, released)
    for k, slot in enumerate(_bug_slots(aid)):
        submit(
            root,
            f"bugs{k}",
            aid,
            fill(released, answers | {f: src for f, (_, src) in slot.items()}),
        )
    submit(
        root,
        "tamper_comparisons",
        aid,
        fill(released, wrong | {first: TAMPER_COMPARISONS + wrong[first]}),
    )
    submit(
        root, "tamper_grader", aid, fill(released, wrong | {first: TAMPER_GRADER + wrong[first]})
    )
    nb = fill(released, wrong)
    nb.cells = [c for c in nb.cells if not _is_test(c)]
    submit(root, "deleted_tests", aid, nb)
    nb = fill(released, wrong)
    for c in nb.cells:
        if _is_test(c):
            c.source = "pass"
    submit(root, "edited_tests", aid, nb)


@pytest.fixture(scope="session")
def course(tmp_path_factory):
    root = scratch_course(tmp_path_factory.mktemp("course"))
    t0 = time.perf_counter()
    run(root, "seqlab.kit", "release")
    release_seconds = time.perf_counter() - t0
    for aid in CHAPTERS:
        _submit_class(root, aid)
    t0 = time.perf_counter()
    proc = run(root, "seqlab.kit", "grade")
    grade_seconds = time.perf_counter() - t0
    scores = {}
    for aid in CHAPTERS:
        for student in sorted(p.parent.name for p in (root / "submitted").glob(f"*/{aid}")):
            scores[aid, student] = cell_scores(root, aid, student)
    print(
        f"\n[timing] release {release_seconds:.1f}s; graded {len(scores)} submissions in "
        f"{grade_seconds:.1f}s ({grade_seconds / len(scores):.1f}s each, two at a time)"
    )
    return {"root": root, "scores": scores, "log": proc.stdout}


def _auto_score(scores: dict[str, tuple[float, float]]) -> float:
    return sum(score for name, (score, _) in scores.items() if name.startswith("test_"))


@pytest.mark.parametrize("aid", CHAPTERS)
def test_release_reproduces_the_committed_exercises(course, aid):
    fresh = (course["root"] / "exercises" / aid / f"{aid}.ipynb").read_bytes()
    committed = (REPO / "exercises" / aid / f"{aid}.ipynb").read_bytes()
    assert fresh == committed, "exercises/ is out of date: run `make release` and commit it"


@pytest.mark.parametrize("aid", CHAPTERS)
def test_release_contains_no_solution_and_no_hidden_test_line(aid):
    text = (REPO / "exercises" / aid / f"{aid}.ipynb").read_text()
    sources = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
    secrets = secret_lines(aid)
    assert len(secrets) > 20  # the check has something to look for
    leaked = sorted(ln for ln in secrets if ln in sources)
    assert not leaked, f"released exercise contains hidden lines: {leaked[:5]}"
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text


@pytest.mark.parametrize("aid", CHAPTERS)
def test_solution_submitted_scores_full_autograded_marks(course, aid):
    auto, _ = _points(aid)
    assert auto > 0 and _auto_score(course["scores"][aid, "solution"]) == auto


@pytest.mark.parametrize("aid", CHAPTERS)
def test_untouched_release_scores_zero_autograded_points(course, aid):
    assert _auto_score(course["scores"][aid, "blank"]) == 0


@pytest.mark.parametrize(
    "aid,func,bug",
    [
        (aid, f, bug)
        for aid, planted in PLANTED.items()
        for f, bugs in planted.items()
        for bug in bugs
    ],
)
def test_planted_bug_loses_the_points_of_its_function(course, aid, func, bug):
    k = next(i for i, slot in enumerate(_bug_slots(aid)) if slot.get(func, ("",))[0] == bug)
    score, max_score = course["scores"][aid, f"bugs{k}"][f"test_{func}"]
    assert max_score > 0 and score == 0, f"planted bug {func}/{bug} kept {score}/{max_score}"


@pytest.mark.parametrize("aid", CHAPTERS)
def test_planted_bugs_do_not_cost_points_in_correct_cells(course, aid):
    for k, slot in enumerate(_bug_slots(aid)):
        for func in PLANTED[aid]:
            if func not in slot:
                score, max_score = course["scores"][aid, f"bugs{k}"][f"test_{func}"]
                assert score == max_score, f"bugs{k}: correct {func} lost points"


@pytest.mark.parametrize("aid", CHAPTERS)
@pytest.mark.parametrize("student", ["tamper_comparisons", "tamper_grader"])
def test_answers_that_rebind_the_checks_gain_nothing(course, aid, student):
    assert _auto_score(course["scores"][aid, student]) == 0


@pytest.mark.parametrize("aid", CHAPTERS)
@pytest.mark.parametrize("student", ["deleted_tests", "edited_tests"])
def test_deleted_or_edited_test_cells_are_restored_and_judge(course, aid, student):
    scores = course["scores"][aid, student]
    assert {f"test_{f}" for f in PLANTED[aid]} <= set(scores)
    assert _auto_score(scores) == 0


@pytest.mark.parametrize("aid", CHAPTERS)
def test_grading_again_gives_the_same_scores(course, aid):
    root = course["root"]
    for student in ("solution", "bugs0", "tamper_comparisons"):
        run(root, "nbgrader", "autograde", aid, "--student", student, "--force")
        assert cell_scores(root, aid, student) == course["scores"][aid, student]


def test_grades_csv_lists_every_submission_with_its_autograded_score(course):
    with open(course["root"] / "grades.csv", newline="") as f:
        rows = {(row["assignment"], row["student_id"]): row for row in csv.DictReader(f)}
    for key, scores in course["scores"].items():
        assert float(rows[key]["score"]) == _auto_score(scores)
        assert float(rows[key]["max_score"]) == _points(key[0])[1]


@pytest.mark.parametrize("aid", CHAPTERS)
def test_feedback_shows_results_but_never_hidden_test_source(course, aid):
    answers = "\n".join(solution_answers(aid).values())
    hidden_only = {ln for ln in secret_lines(aid) if ln not in answers}
    for a, student in course["scores"]:
        if a != aid:
            continue
        html = (course["root"] / "feedback" / student / aid / f"{aid}.html").read_text()
        text = re.sub(r"<[^>]+>", "", html).replace("&quot;", '"').replace("&#39;", "'")
        text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        leaked = [ln for ln in hidden_only if ln in text]
        assert not leaked, f"{student}'s feedback shows hidden test lines: {leaked[:3]}"
        assert "BEGIN HIDDEN TESTS" not in text
    feedback = course["root"] / "feedback"
    assert "NotImplementedError" in (feedback / "blank" / aid / f"{aid}.html").read_text()
    assert "TamperingError" in (feedback / "tamper_comparisons" / aid / f"{aid}.html").read_text()


@pytest.mark.parametrize("aid", CHAPTERS)
def test_source_notebook_has_unique_ids_and_no_outputs(aid):
    nb = json.loads((REPO / "solutions" / aid / f"{aid}.ipynb").read_text())
    ids = [
        c["metadata"]["nbgrader"]["grade_id"] for c in nb["cells"] if "nbgrader" in c["metadata"]
    ]
    assert len(ids) == len(set(ids)) == len(nb["cells"])
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


def test_every_released_chapter_has_planted_bugs():
    from seqlab.kit.course import assignments

    assert set(assignments(REPO)) == set(PLANTED) == set(WRONG)
