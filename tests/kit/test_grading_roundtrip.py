"""The whole grading round trip with the real nbgrader command line, on a scratch course.

For every chapter, one synthetic class is released, submitted and graded once
with the instructor's own command (``python -m seqlab.kit grade``, behind
``make grade``); the tests below read what that run produced:

* ``solution``: the solution, typed into the release as a student would;
* ``blank``: the release, untouched;
* ``bugs0``: the first planted bug of every graded function at once;
* ``tamper_comparisons`` / ``tamper_grader``: wrong answers plus code that
  rebinds torch/numpy comparisons or the course's own checks;
* ``deleted_tests`` / ``edited_tests``: test cells removed or blanked, wrong
  answers but one correct one, whose restored test must give its points back.

The feedback pages that run wrote are read too: hidden tests never shown, failures that
say what they expected and what came, answers graded by hand pending until a grade is given
(then, for ``deleted_tests``, shown once the feedback is generated again), nothing loaded
from the network (tests/kit/test_feedback.py checks the page itself).

Every planted bug is also judged on its own, without nbgrader, by
tests/kit/test_planted_bugs.py: this class is the representative few that prove
the real grader scores as the direct check does. Each chapter's cases carry its
marker; the class is graded for the selected chapters only (``pytest -m seq2seq``).
"""

from __future__ import annotations

import ast
import csv
import html
import json
import re
import time
from pathlib import Path

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
from direct_grading import is_test_of
from nbgrader.api import Gradebook
from planted_bugs import PLANTED, WRONG

from seqlab.kit.course import assignments
from seqlab.kit.plugins import WITHHELD

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
# graded again, every chapter in one nbgrader call: its scores mix full and zero cells, and
# its blanked test cells are restored once more
REGRADED = "edited_tests"


def _chapters(*more):
    """Parameters for each chapter, marked with it: (aid, *more)."""
    return [pytest.param(aid, *values, marks=getattr(pytest.mark, aid)) for aid in CHAPTERS
            for values in (more or [()])]  # fmt: skip


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


def _calls(source: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}


def kept_correct(aid: str) -> str:
    """The answer deleted_tests and edited_tests get right: the last graded function
    whose solution calls no other answer (a student's answer may build on their own
    others, and share their fate)."""
    answers = solution_answers(aid)
    alone = [f for f in PLANTED[aid] if not _calls(answers[f]) & (set(PLANTED[aid]) - {f})]
    return alone[-1]


def bug_slots(aid: str) -> dict[str, dict[str, str]]:
    """student -> {function: planted bug}: bugs0 has every function's first planted bug."""
    return {"bugs0": {f: next(iter(bugs)) for f, bugs in PLANTED[aid].items()}}


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
    for student, slot in bug_slots(aid).items():
        bugs = {f: PLANTED[aid][f][bug] for f, bug in slot.items()}
        submit(root, student, aid, fill(released, answers | bugs))
    submit(
        root,
        "tamper_comparisons",
        aid,
        fill(released, wrong | {first: TAMPER_COMPARISONS + wrong[first]}),
    )
    submit(
        root, "tamper_grader", aid, fill(released, wrong | {first: TAMPER_GRADER + wrong[first]})
    )
    keep = kept_correct(aid)
    nb = fill(released, wrong | {keep: answers[keep]})
    nb.cells = [c for c in nb.cells if not _is_test(c)]
    submit(root, "deleted_tests", aid, nb)
    nb = fill(released, wrong | {keep: answers[keep]})
    for c in nb.cells:
        if _is_test(c):
            c.source = "pass"
    submit(root, "edited_tests", aid, nb)


def _graded_chapters(session) -> list[str]:
    """The chapters of this file's selected tests (all of them when none names one)."""
    wanted = {
        item.callspec.params["aid"]
        for item in session.items
        if item.path == Path(__file__)
        and hasattr(item, "callspec")
        and "aid" in item.callspec.params
        and "course" in item.fixturenames
    }
    return [aid for aid in CHAPTERS if aid in wanted] or CHAPTERS


@pytest.fixture(scope="session")
def course(request, tmp_path_factory):
    chapters = _graded_chapters(request.session)
    root = scratch_course(tmp_path_factory.mktemp("course"))
    t0 = time.perf_counter()
    run(root, "seqlab.kit", "release", *chapters)
    release_seconds = time.perf_counter() - t0
    for aid in chapters:
        _submit_class(root, aid)
    t0 = time.perf_counter()
    proc = run(root, "seqlab.kit", "grade", *(f"--assignment={aid}" for aid in chapters))
    grade_seconds = time.perf_counter() - t0
    scores = {}
    for aid in chapters:
        for student in sorted(p.parent.name for p in (root / "submitted").glob(f"*/{aid}")):
            scores[aid, student] = cell_scores(root, aid, student)
    print(
        f"\n[timing] release {release_seconds:.1f}s; graded {len(scores)} submissions in "
        f"{grade_seconds:.1f}s ({grade_seconds / len(scores):.1f}s each, two at a time)"
    )
    return {"root": root, "scores": scores, "log": proc.stdout, "chapters": chapters}


@pytest.fixture(scope="session")
def regraded(course) -> dict[str, dict[str, tuple[float, float]]]:
    """REGRADED's scores after grading every chapter again, in one nbgrader call."""
    root = course["root"]
    run(root, "nbgrader", "autograde", "*", "--student", REGRADED, "--force")
    return {aid: cell_scores(root, aid, REGRADED) for aid in course["chapters"]}


def _auto_score(scores: dict[str, tuple[float, float]]) -> float:
    return sum(score for name, (score, _) in scores.items() if name.startswith("test_"))


def _function_score(scores: dict[str, tuple[float, float]], func: str) -> tuple[float, float]:
    """(score, max score) of ``func`` over its graded cells: test_<func>, or the cells
    test_<func>_<behaviour> of a function whose behaviours are graded apart."""
    cells = [value for name, value in scores.items() if is_test_of(name, func)]
    assert cells, f"no graded cell of {func} among {sorted(scores)}"
    return sum(score for score, _ in cells), sum(top for _, top in cells)


@pytest.mark.parametrize("aid", _chapters())
def test_release_reproduces_the_committed_exercises(course, aid):
    fresh = (course["root"] / "exercises" / aid / f"{aid}.ipynb").read_bytes()
    committed = (REPO / "exercises" / aid / f"{aid}.ipynb").read_bytes()
    assert fresh == committed, "exercises/ is out of date: run `make release` and commit it"


@pytest.mark.parametrize("aid", _chapters())
def test_release_contains_no_solution_and_no_hidden_test_line(aid):
    text = (REPO / "exercises" / aid / f"{aid}.ipynb").read_text()
    sources = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
    secrets = secret_lines(aid)
    assert len(secrets) > 20  # the check has something to look for
    leaked = sorted(ln for ln in secrets if ln in sources)
    assert not leaked, f"released exercise contains hidden lines: {leaked[:5]}"
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text


@pytest.mark.parametrize("aid", _chapters())
def test_solution_submitted_scores_full_autograded_marks(course, aid):
    auto, _ = _points(aid)
    assert auto > 0 and _auto_score(course["scores"][aid, "solution"]) == auto


@pytest.mark.parametrize("aid", _chapters())
def test_untouched_release_scores_zero_autograded_points(course, aid):
    assert _auto_score(course["scores"][aid, "blank"]) == 0


@pytest.mark.parametrize(
    "aid,student,func",
    [
        pytest.param(aid, student, f, marks=getattr(pytest.mark, aid))
        for aid in CHAPTERS
        for student, slot in bug_slots(aid).items()
        for f in slot
    ],
)
def test_planted_bug_loses_the_points_of_its_function(course, aid, student, func):
    bug = bug_slots(aid)[student][func]
    scores = course["scores"][aid, student]
    score, max_score = _function_score(scores, func)
    # cells graded apart give partial credit: the bug loses at least one of them
    assert max_score > 0 and score < max_score, f"planted bug {func}/{bug} kept {score}/{max_score}"
    if not any(is_test_of(name, func) and name != f"test_{func}" for name in scores):
        assert score == 0, f"planted bug {func}/{bug} kept {score}/{max_score}"


@pytest.mark.parametrize("aid,student", _chapters(("tamper_comparisons",), ("tamper_grader",)))
def test_answers_that_rebind_the_checks_gain_nothing(course, aid, student):
    assert _auto_score(course["scores"][aid, student]) == 0


@pytest.mark.parametrize("aid,student", _chapters(("deleted_tests",), ("edited_tests",)))
def test_deleted_or_edited_test_cells_are_restored_and_judge(course, aid, student):
    """The restored tests fail every wrong answer and give the right one its points (so a
    correct cell keeps its points beside wrong ones, too)."""
    scores = course["scores"][aid, student]
    for func in PLANTED[aid]:
        _function_score(scores, func)  # each function's cells were restored and graded
    keep = kept_correct(aid)
    score, max_score = _function_score(scores, keep)
    assert max_score > 0 and score == max_score, f"the correct answer lost points in {keep}"
    assert _auto_score(scores) == max_score, f"wrong answers earned points: {scores}"


@pytest.mark.parametrize("aid", _chapters())
def test_grading_again_gives_the_same_scores(course, regraded, aid):
    assert regraded[aid] == course["scores"][aid, REGRADED]


def test_grades_csv_lists_every_submission_with_its_autograded_score(course):
    with open(course["root"] / "grades.csv", newline="") as f:
        rows = {(row["assignment"], row["student_id"]): row for row in csv.DictReader(f)}
    for key, scores in course["scores"].items():
        assert float(rows[key]["score"]) == _auto_score(scores)
        assert float(rows[key]["max_score"]) == _points(key[0])[1]


@pytest.mark.parametrize("aid", _chapters())
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


def _page(course, student: str, aid: str) -> str:
    return (course["root"] / "feedback" / student / aid / f"{aid}.html").read_text()


def _seen(page: str) -> str:
    """What a reader of a feedback page sees: no tags, white space squeezed."""
    body = page[page.index("<body") :]
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def _errors(page: str) -> list[str]:
    """The error messages a feedback page shows."""
    found = re.findall(
        r'class="output_subarea output_text output_error">\s*<pre>(.*?)</pre>', page, re.S
    )
    return [html.unescape(re.sub(r"<[^>]+>", "", e)).strip() for e in found]


def _graded_by_hand(aid: str) -> list[tuple[str, float]]:
    """(grade_id, points) of the cells graded by hand: written answers, code graded by hand."""
    nb = nbformat.read(REPO / "solutions" / aid / f"{aid}.ipynb", as_version=4)
    return [
        (meta["grade_id"], meta["points"])
        for meta in (c.metadata.get("nbgrader", {}) for c in nb.cells)
        if meta.get("grade") and meta.get("solution")
    ]


@pytest.mark.parametrize("aid", _chapters())
def test_feedback_shows_answers_not_graded_by_hand_yet_as_pending(course, aid):
    """Before anyone grades by hand, a written answer is pending, not 0, and the total says
    how many points are still to be graded by hand."""
    auto, total = _points(aid)
    text = _seen(_page(course, "solution", aid))
    by_hand = _graded_by_hand(aid)
    assert total - auto == sum(points for _, points in by_hand)
    still = f" ({total - auto:g} points still to be graded by hand)" if by_hand else ""
    assert f"Score: {auto:g} / {total:g}{still}" in text
    for grade_id, points in by_hand:
        assert f"{grade_id} : to be graded by hand ({points:g} points)" in text
        assert f"{grade_id} : Score: 0 / {points:g}" not in text


HAND_GRADED = "deleted_tests"  # the student given a grade by hand, then feedback again


@pytest.fixture(scope="session")
def hand_graded(course) -> dict[str, str]:
    """Each graded chapter's first answer graded by hand given its points less 0.5 in the
    gradebook (as the formgrader does) for HAND_GRADED, whose feedback is then generated
    again, every chapter in one nbgrader call: aid -> the page a reader sees."""
    root = course["root"]
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for aid in course["chapters"]:
            for grade_id, points in _graded_by_hand(aid)[:1]:
                grade = gb.find_grade(grade_id, aid, aid, HAND_GRADED)
                grade.manual_score, grade.needs_manual_grade = points - 0.5, False
        gb.db.commit()
    run(root, "nbgrader", "generate_feedback", "*", "--student", HAND_GRADED, "--force")
    return {aid: _seen(_page(course, HAND_GRADED, aid)) for aid in course["chapters"]}


@pytest.mark.parametrize("aid", _chapters())
def test_a_grade_given_by_hand_shows_once_the_feedback_is_generated_again(hand_graded, aid):
    by_hand = _graded_by_hand(aid)
    if not by_hand:
        pytest.skip(f"{aid} has no answer graded by hand")
    (grade_id, points), rest = by_hand[0], by_hand[1:]
    text = hand_graded[aid]
    assert f"{grade_id} : Score: {points - 0.5:g} / {points:g}" in text
    assert f"{grade_id} : to be graded by hand" not in text
    left = sum(p for _, p in rest)
    assert (f"({left:g} points still to be graded by hand)" in text) == bool(rest)


@pytest.mark.parametrize("aid", _chapters())
def test_feedback_pages_load_nothing_from_the_network_and_wrap_long_lines(course, aid):
    for a, student in course["scores"]:
        if a != aid:
            continue
        page = _page(course, student, aid)
        assert not re.search(r"<(script|link)[^>]*\b(src|href)=", page), student
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), student
        assert "mathjax" not in page.lower(), student
        assert "white-space: pre-wrap" in page and "overflow-wrap: anywhere" in page


@pytest.mark.parametrize("aid", _chapters())
def test_a_failed_test_says_what_it_expected_and_what_came(course, aid):
    """The planted bugs' failures, hidden or visible, show expected against got, and the
    redaction lets them through (none quotes the hidden tests' code)."""
    errors = [e for e in _errors(_page(course, "bugs0", aid)) if e.startswith("AssertionError")]
    assert errors, f"no test of {aid} failed for bugs0"
    assert not [e for e in errors if WITHHELD in e]
    assert any(re.search(r"expected .+ got ", e) for e in errors), errors


@pytest.mark.parametrize("aid", _chapters())
def test_source_notebook_has_unique_ids_and_no_outputs(aid):
    nb = json.loads((REPO / "solutions" / aid / f"{aid}.ipynb").read_text())
    ids = [
        c["metadata"]["nbgrader"]["grade_id"] for c in nb["cells"] if "nbgrader" in c["metadata"]
    ]
    assert len(ids) == len(set(ids)) == len(nb["cells"])
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


def test_every_released_chapter_has_planted_bugs():
    assert set(assignments(REPO)) == set(PLANTED) == set(WRONG)
