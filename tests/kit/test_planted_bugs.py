"""Every planted bug and every WRONG answer loses its function's points, checked directly.

The hidden tests are judged on the source notebooks themselves, without nbgrader:
tests/kit/direct_grading.py runs ``solutions/<id>/<id>.ipynb`` once per chapter
(one subprocess each, two chapters at a time) and tries each planted bug of
tests/planted_bugs.py as its function's cell, from the state the kernel holds
before that cell, followed by the function's graded test cells: ``test_<func>``, or the cells
``test_<func>_<behaviour>`` where its behaviours are graded apart (partial credit: a
planted bug must lose at least one of them, a WRONG answer all of them).
tests/kit/test_grading_roundtrip.py grades a representative few of the same
answers through the real nbgrader command line.

``pytest -m seq2seq`` runs one chapter's cases (each case carries its chapter's marker).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from course_helpers import REPO, solution_answers
from direct_grading import is_test_of
from planted_bugs import PLANTED, WRONG

pytestmark = pytest.mark.grading

RUNNER = Path(__file__).with_name("direct_grading.py")
CHAPTERS = list(PLANTED)
# errors that say the answer's code never ran as meant: a planted bug that fails this way
# proves nothing about the hidden tests
BROKEN = ("ImportError", "ModuleNotFoundError", "NameError", "SyntaxError", "IndentationError")
JOBS = 2  # chapters run at once (each in one thread: the setup cells set torch to one thread)
FUNCTIONS = [(aid, f) for aid, planted in PLANTED.items() for f in planted]


# each graded function's points, and each chapter's autograded points, as they were before
# big test cells were split into test_<func>_<behaviour> cells: a split moves points
# between a function's cells, it never changes what the solution (or the blank) scores
POINTS_BEFORE_THE_SPLIT = {
    "rnn_gradients": ({"rnn_step": 2, "rnn_forward": 3, "scale_spectral_radius": 2,
                       "matrix_power_norms": 3, "clip_grad_norm": 3}, 13),
    "lstm_gru": ({"lstm_cell": 3, "gru_cell": 3, "lstm_forward": 3, "first_step_gradient": 2}, 13),
    "attention": ({"dot_product_attention": 4, "additive_attention": 4}, 10),
    "seq2seq": ({"sequence_nll": 3, "greedy_decode": 3, "beam_search": 5}, 13),
    "transformers": ({"scaled_dot_product_attention": 4, "causal_mask": 1,
                      "sinusoidal_positions": 2, "MultiHeadAttention": 4, "apply_rope": 3}, 17),
    "gpt_prompting": ({"sample_next_token": 4, "completion_logprob": 4, "rank_choices": 2,
                       "top_p_filter": 3, "gpt_param_count": 2, "cached_attention_step": 4}, 21),
}  # fmt: skip


def _param(aid: str, *values):
    return pytest.param(aid, *values, marks=getattr(pytest.mark, aid))


BUGS = [_param(aid, f, bug) for aid, f in FUNCTIONS for bug in PLANTED[aid][f]]


def _run_chapter(aid: str, folder: Path) -> dict:
    out = folder / f"{aid}.json"
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(RUNNER), aid, str(out)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{RUNNER.name} {aid} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return json.loads(out.read_text())


@pytest.fixture(scope="session")
def chapter_runs(request, tmp_path_factory) -> dict[str, Future]:
    """One run of direct_grading.py per chapter that the selected tests need, started
    together (JOBS at a time) when the first of them asks."""
    wanted = {
        item.callspec.params["aid"]
        for item in request.session.items
        if item.path == Path(__file__)
        and "chapter_runs" in item.fixturenames
        and "aid" in item.callspec.params
    }
    folder = tmp_path_factory.mktemp("direct")
    pool = ThreadPoolExecutor(max_workers=JOBS)
    runs = {aid: pool.submit(_run_chapter, aid, folder) for aid in CHAPTERS if aid in wanted}
    yield runs
    pool.shutdown(cancel_futures=True)


def _report(chapter_runs, aid: str) -> dict:
    return chapter_runs[aid].result()


def _first_line(error: str | None) -> str:
    return (error or "passed").split("\n")[0]


def _missing_third_party(source: str) -> str | None:
    """A top-level module an answer imports that is not installed (not seqlab: that must
    always resolve), e.g. Hugging Face's transformers for its warpers."""
    for node in ast.walk(ast.parse(source)):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module]
            if isinstance(node, ast.ImportFrom) and node.module and not node.level
            else []
        )
        for name in names:
            top = name.split(".")[0]
            if top != "seqlab" and importlib.util.find_spec(top) is None:
                return top
    return None


def _judge(report: dict, result: dict, func: str, what: str, every: bool = False) -> None:
    """The solution passes the function's graded tests, the answer's own cell ran, and at
    least one of those tests (each of them, with ``every``) failed, for a reason other than
    a name or module that does not exist: a function graded in several cells
    (test_<func>_<behaviour>) gives partial credit, but a bug never keeps all of it."""
    tests = report["tests_of"][func]
    solution = {c["id"]: c["error"] for c in report["solution"]}
    for test in tests:
        if solution[test] is not None:
            pytest.fail(f"the solution fails {test} too: {what} proves nothing\n{solution[test]}")
    if result["defined"] is not None:
        pytest.fail(f"{what} is broken: its own cell fails to run:\n{result['defined']}")
    assert tests, f"no graded test cell test_<function> for {what}"
    failed = {test: result["tests"][test] for test in tests if result["tests"][test] is not None}
    for test, error in failed.items():
        assert not error.startswith(BROKEN), f"{what} fails {test} for the wrong reason:\n{error}"
    if every:
        passed = sorted(set(tests) - set(failed))
        assert not passed, f"{what} passes {passed}: it should lose every cell of {func}"
    assert failed, f"{what} passes {tests}: the hidden tests do not catch it"


@pytest.mark.parametrize("aid", [_param(aid) for aid in CHAPTERS])
def test_solution_passes_every_graded_test_cell(chapter_runs, aid):
    cells = _report(chapter_runs, aid)["solution"]
    graded = [c for c in cells if c["kind"] == "test"]
    assert graded
    failed = {c["id"]: c["error"] for c in graded if c["error"]}
    assert not failed, "the solution fails graded cells:\n" + "\n".join(
        f"{k}: {v}" for k, v in failed.items()
    )


@pytest.mark.parametrize("aid", [_param(aid) for aid in CHAPTERS])
def test_solution_runs_every_cell(chapter_runs, aid):
    """The setup cell, the answers and the ungraded cells (figures, comparisons) run too."""
    cells = _report(chapter_runs, aid)["solution"]
    failed = {c["id"]: c["error"] for c in cells if c["kind"] != "test" and c["error"]}
    assert not failed, "cells of the source notebook fail:\n" + "\n".join(
        f"{k}: {v}" for k, v in failed.items()
    )


@pytest.mark.parametrize("aid,func,bug", BUGS)
def test_planted_bug_fails_its_functions_tests(chapter_runs, aid, func, bug):
    missing = _missing_third_party(PLANTED[aid][func][bug])
    if missing:
        pytest.skip(f"{missing} is not installed")
    report = _report(chapter_runs, aid)
    result = report["planted"][func][bug]
    # a delegating answer wrote none of it: it loses every cell, and the delegation check
    # names it (a visible test may see the damage first, e.g. weights copied without grad)
    delegates = bug.startswith("delegates_")
    _judge(report, result, func, f"planted bug {aid}/{func}/{bug}", every=delegates)
    if delegates:
        errors = result["tests"].values()
        assert any(error.startswith("DelegationError") for error in errors), (
            f"{func}/{bug} is never caught as delegation: "
            + "; ".join(_first_line(error) for error in errors)
        )


# the share of a chapter's planted bugs (delegation aside: only the hidden tests can see it)
# that its visible tests catch, before the student submits
VISIBLE_SHARE = 0.8


@pytest.mark.parametrize("aid", [_param(aid) for aid in CHAPTERS])
def test_visible_tests_catch_the_usual_mistakes(chapter_runs, aid):
    """A student sees most mistakes fail a visible test, with a message that teaches,
    before submitting; the hidden tests judge the rest. The per-function counts are in
    the failure message (and in the closing notes of the course's issues)."""
    report = _report(chapter_runs, aid)
    caught, missed = {}, {}
    for func, bugs in report["planted"].items():
        for bug, result in bugs.items():
            errors = list(result["tests"].values())
            if errors and all(str(e).startswith("DelegationError") for e in errors):
                continue  # a delegating answer computes the right values
            seen = result["defined"] is not None or any(result["visible"].values())
            (caught if seen else missed).setdefault(func, []).append(bug)
    total = sum(map(len, caught.values())) + sum(map(len, missed.values()))
    counts = "; ".join(
        f"{f}: {len(caught.get(f, []))}/{len(caught.get(f, [])) + len(missed.get(f, []))}"
        + (f" (missed {', '.join(missed[f])})" if f in missed else "")
        for f in report["planted"]
    )
    share = sum(map(len, caught.values())) / total
    assert share >= VISIBLE_SHARE, f"{aid}: visible tests catch {share:.0%}: {counts}"


@pytest.mark.parametrize("aid,func", [_param(aid, f) for aid, f in FUNCTIONS])
def test_wrong_answer_loses_its_points(chapter_runs, aid, func):
    report = _report(chapter_runs, aid)
    # every cell: test_grading_roundtrip's deleted_tests and edited_tests students count on it
    _judge(report, report["wrong"][func], func, f"WRONG[{aid!r}][{func!r}]", every=True)


@pytest.mark.parametrize("aid,func", [_param(aid, f) for aid, f in FUNCTIONS])
def test_planted_bugs_do_not_cost_points_in_correct_cells(chapter_runs, aid, func):
    """The solution of one function keeps its points while the others carry bugs (those
    its solution calls excepted: a student's answer may build on their own)."""
    result = _report(chapter_runs, aid)["among_bugs"][func]
    for test, error in result["tests"].items():
        assert error is None, (
            f"correct {func} fails {test} beside the bugs {result['bugs']}:\n{error}"
        )


@pytest.mark.parametrize("aid", [_param(aid) for aid in CHAPTERS])
def test_the_bugs_leave_nothing_behind(chapter_runs, aid):
    """Each answer ran in a copy of the namespace: the solution, tried again from the same
    copies after every bug, still passes (no bug changed an object the copies share)."""
    report = _report(chapter_runs, aid)
    for func, result in report["solution_again"].items():
        assert result["defined"] is None and result["tests"], func
        for test, error in result["tests"].items():
            assert error is None, f"after the bugs the solution of {func} fails {test}:\n{error}"


@pytest.mark.parametrize("aid", [_param(aid) for aid in CHAPTERS])
def test_planted_bugs_define_their_function_and_differ_from_the_solution(aid):
    solutions = solution_answers(aid)
    assert set(PLANTED[aid]) <= set(solutions) and set(WRONG[aid]) == set(PLANTED[aid])
    for func, bugs in PLANTED[aid].items():
        sources = {bug: " ".join(src.split()) for bug, src in bugs.items()}
        solution = " ".join(solutions[func].split())
        assert solution not in sources.values(), f"{func}: a planted bug is the solution"
        assert len(set(sources.values())) == len(sources), f"{func}: two planted bugs are the same"
        for bug, src in {**bugs, "WRONG": WRONG[aid][func]}.items():
            defined = {
                node.name
                for node in ast.parse(src).body
                if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            }
            assert func in defined, f"{func}/{bug} does not define {func}"


def _dotted(node) -> str | None:
    """"a.b.c" for an attribute chain on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def _seqlab_names(source: str) -> list[str]:
    """Every seqlab object a source imports or reaches through an imported seqlab module,
    as dotted paths: ``from seqlab.x import f`` and ``import seqlab.x as m; m.f`` give
    seqlab.x.f; ``import seqlab.x; seqlab.x.f`` too."""
    tree = ast.parse(source)
    bound, paths = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seqlab"):
            paths += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "seqlab":
                    paths.append(alias.name)
                    bound[alias.asname or "seqlab"] = alias.name if alias.asname else "seqlab"
    for node in ast.walk(tree):
        chain = _dotted(node) if isinstance(node, ast.Attribute) else None
        if chain and chain.split(".")[0] in bound:
            head, _, rest = chain.partition(".")
            paths.append(f"{bound[head]}.{rest}")
    return paths


def _resolves(path: str) -> bool:
    parts = path.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if not hasattr(obj, part):
            try:
                obj = importlib.import_module(".".join(parts[: i + 1]))
            except ImportError:
                return False
        else:
            obj = getattr(obj, part)
    return True


@pytest.mark.parametrize("aid", [_param(aid) for aid in CHAPTERS])
def test_planted_bugs_import_what_exists(aid):
    """Every seqlab name a planted bug imports or reaches exists (the package was
    reorganised once: a bug that imports a moved module fails for that reason alone)."""
    missing = [
        f"{func}/{bug}: {path}"
        for func, bugs in PLANTED[aid].items()
        for bug, src in bugs.items()
        for path in _seqlab_names(src)
        if not _resolves(path)
    ]
    assert not missing, "planted bugs reach seqlab names that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("aid", [_param(aid) for aid in CHAPTERS])
def test_split_test_cells_keep_each_functions_points(aid):
    """A function's graded cells (test_<func>, test_<func>_<behaviour>) add up to the points
    it had in one cell, every cell calls the function (so the blank release, whose stubs
    raise, scores 0 in each), and no cell is claimed by two functions."""
    before, total = POINTS_BEFORE_THE_SPLIT[aid]
    nb = nbformat.read(REPO / "solutions" / aid / f"{aid}.ipynb", as_version=4)
    tests = {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"]["solution"]
    }
    assert sum(c.metadata["nbgrader"]["points"] for c in tests.values()) == total
    now = {}
    for func in before:
        cells = {gid: c for gid, c in tests.items() if is_test_of(gid, func)}
        assert cells, f"{aid}: no graded cell test_{func}"
        now[func] = sum(c.metadata["nbgrader"]["points"] for c in cells.values())
        for gid, cell in cells.items():
            assert cell.metadata["nbgrader"]["points"] > 0, f"{gid} is worth nothing"
            assert func in {n.id for n in ast.walk(ast.parse(cell.source))
                            if isinstance(n, ast.Name)}, f"{gid} never calls {func}"  # fmt: skip
    assert now == before, f"{aid}: the split changed a function's points"
    for gid in tests:
        owners = [f for f in PLANTED[aid] if is_test_of(gid, f)]
        assert len(owners) <= 1, f"{gid} is a test cell of {owners}"
