"""Grade answers by running a chapter's source notebook in one Python process.

``python tests/kit/direct_grading.py <assignment id> <out.json>`` executes
``solutions/<id>/<id>.ipynb`` (our own trusted source, so no sandbox and no
nbgrader): every code cell once, with the solution in its answer cells. Before
each answer cell it keeps a shallow copy of the namespace and the random
generators' state, which is what a kernel holds when a student's version of
that cell runs. Then, for every planted bug and every WRONG answer of a graded
function ``f`` (tests/planted_bugs.py), it takes that copy, runs the bug's
source as ``f``'s cell, and runs the cells after it up to ``f``'s graded test
cell(s), ``test_f``: each answer starts from the same state, so bugs do not
leak into each other. (A function whose behaviours are graded apart has several
cells, ``test_f_<behaviour>``.) It writes what each cell raised (or null) as JSON, for
tests/kit/test_planted_bugs.py to judge.

Two more runs per chapter guard the shortcut: for every graded function, the
solution with every *other* function carrying a planted bug (its test must keep
its points), and at the end the solution again from each copy (a bug that
corrupted shared objects would make it fail).
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import random
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # planted_bugs sits in the test folder

from planted_bugs import PLANTED, WRONG  # noqa: E402

BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
# nbgrader stops a cell after this many seconds (nbgrader_config.py): so does this run
CELL_LIMIT = int(os.environ.get("SEQLAB_CELL_TIMEOUT", "60"))


class CellTimeout(TimeoutError):
    """The cell ran past CELL_LIMIT, as a cell nbgrader interrupts."""


@dataclass
class Cell:
    """A code cell of the source notebook: its grade_id, kind and source."""

    id: str
    kind: str  # "answer" (nbgrader solution), "test" (graded, locked) or "other"
    source: str


def code_cells(aid: str) -> list[Cell]:
    nb = nbformat.read(REPO / "solutions" / aid / f"{aid}.ipynb", as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        kind = (
            "answer"
            if meta.get("solution") and not meta.get("grade")
            else "test"
            if meta.get("grade")
            else "other"
        )
        cells.append(Cell(meta.get("grade_id", f"cell{len(cells)}"), kind, cell.source))
    return cells


def is_test_of(grade_id: str, func: str) -> bool:
    """Whether a graded test cell judges answer ``func``: its grade_id is test_<func>, or
    test_<func>_<behaviour> (one of several cells, each worth part of the points)."""
    return grade_id == f"test_{func}" or grade_id.startswith(f"test_{func}_")


def _timeout(signum, frame):
    raise CellTimeout(f"the cell ran past {CELL_LIMIT} s")


def run_cell(aid: str, name: str, source: str, ns: dict) -> str | None:
    """Execute one cell in ``ns``; None, or what it raised ("Type: message" and the
    last lines of the traceback). Its printed output is dropped."""
    signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, CELL_LIMIT)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(source, f"<{aid}:{name}>", "exec"), ns)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # SystemExit too: a kernel reports it as the cell's error
        tb = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-3:])
        return f"{type(error).__name__}: {str(error)[:500]}\n{tb[-1500:]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return None


def rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "random": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


class Chapter:
    """The source notebook of one assignment, run once with the solution."""

    def __init__(self, aid: str):
        self.aid = aid
        self.cells = code_cells(aid)
        self.index = {c.id: i for i, c in enumerate(self.cells)}
        self.before: dict[str, tuple[dict, dict]] = {}  # answer id -> (namespace, rng state)
        self.solution: list[dict] = []
        ns: dict = {"__name__": "__main__"}
        for cell in self.cells:
            if cell.kind == "answer":
                self.before[cell.id] = (dict(ns), rng_state())
            t0 = time.perf_counter()
            error = run_cell(self.aid, cell.id, cell.source, ns)
            self.solution.append(
                {"id": cell.id, "kind": cell.kind, "error": error,
                 "seconds": round(time.perf_counter() - t0, 3)}  # fmt: skip
            )

    def tests_of(self, func: str) -> list[int]:
        """Indices of the graded test cells of answer ``func``: grade_id test_<func>, or
        test_<func>_<behaviour> where its tests are split into cells graded apart."""
        return [i for i, c in enumerate(self.cells) if c.kind == "test" and is_test_of(c.id, func)]

    def answer(self, func: str, source: str) -> dict:
        """``source`` as ``func``'s cell, from the state before that cell, then the cells
        up to ``func``'s graded tests: {"defined": error, "tests": {id: error}, "seconds"}."""
        t0 = time.perf_counter()
        start, tests = self.index[func], self.tests_of(func)
        saved, rng = self.before[func]
        ns = dict(saved)
        set_rng_state(rng)
        result = {"defined": run_cell(self.aid, f"{func} (answer)", source, ns), "tests": {}}
        result["visible"] = {}  # test cell -> what its visible part raised (None: passed)
        if result["defined"] is None and tests:
            for i in range(start + 1, tests[-1] + 1):
                cell = self.cells[i]
                if i not in tests:
                    run_cell(self.aid, cell.id, cell.source, ns)
                    continue
                # the visible tests first (what a student sees fail before submitting),
                # then the hidden ones, in the same namespace: the cell as nbgrader runs it
                visible, marker, hidden = cell.source.partition(BEGIN_HIDDEN)
                error = result["visible"][cell.id] = run_cell(self.aid, cell.id, visible, ns)
                if error is None and marker:
                    error = run_cell(self.aid, cell.id, marker + hidden, ns)
                result["tests"][cell.id] = error
        result["seconds"] = round(time.perf_counter() - t0, 3)
        return result

    def among_bugs(self, func: str) -> dict:
        """The solution of ``func`` while every other graded function carries a planted
        bug (a different one for each ``func``), except those the solution calls (a
        student's rank_choices may use their completion_logprob, and share its
        fate): what ``test_func`` raises."""
        position = list(PLANTED[self.aid]).index(func)
        calls = {
            node.id
            for node in ast.walk(ast.parse(self.cells[self.index[func]].source))
            if isinstance(node, ast.Name)
        }
        bugs = {
            f: list(planted)[position % len(planted)]
            for f, planted in PLANTED[self.aid].items()
            if f != func and f not in calls
        }
        answers = [i for i, c in enumerate(self.cells) if c.kind == "answer"]
        saved, rng = self.before[self.cells[answers[0]].id]
        ns = dict(saved)
        set_rng_state(rng)
        tests = self.tests_of(func)
        result = {"bugs": bugs, "tests": {}}
        for i in range(answers[0], tests[-1] + 1):
            cell = self.cells[i]
            source = PLANTED[self.aid][cell.id][bugs[cell.id]] if cell.id in bugs else cell.source
            error = run_cell(self.aid, cell.id, source, ns)
            if i in tests:
                result["tests"][cell.id] = error
        return result


def report(aid: str) -> dict:
    t0 = time.perf_counter()
    chapter = Chapter(aid)
    setup_seconds = time.perf_counter() - t0
    solutions = {c.id: c.source for c in chapter.cells if c.kind == "answer"}
    planted = {
        f: {bug: chapter.answer(f, source) for bug, source in bugs.items()}
        for f, bugs in PLANTED[aid].items()
    }
    wrong = {f: chapter.answer(f, source) for f, source in WRONG[aid].items()}
    among = {f: chapter.among_bugs(f) for f in PLANTED[aid]}
    again = {f: chapter.answer(f, solutions[f]) for f in PLANTED[aid]}
    return {
        "aid": aid,
        "devices": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []),
        "solution": chapter.solution,
        "tests_of": {f: [chapter.cells[i].id for i in chapter.tests_of(f)] for f in PLANTED[aid]},
        "planted": planted,
        "wrong": wrong,
        "among_bugs": among,
        "solution_again": again,
        "seconds": {"solution": round(setup_seconds, 2),
                    "all": round(time.perf_counter() - t0, 2)},  # fmt: skip
    }


if __name__ == "__main__":
    aid, out = sys.argv[1], Path(sys.argv[2])
    out.write_text(json.dumps(report(aid), indent=1))
