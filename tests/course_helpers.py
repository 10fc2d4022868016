"""Helpers for tests that drive the real nbgrader command line on a scratch copy of the course."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def env() -> dict[str, str]:
    """The environment for nbgrader: this Python's bin first on PATH (nbgrader runs alembic)."""
    e = dict(os.environ)
    e["PATH"] = os.path.dirname(sys.executable) + os.pathsep + e.get("PATH", "")
    e.pop("NBGRADER_EXECUTION", None)
    return e


def run(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` in the scratch course root."""
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=root, env=env(), capture_output=True, text=True
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def scratch_course(dest: Path) -> Path:
    """Copy what nbgrader needs (config, solutions, exercises) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "nbgrader_config.py", dest / "nbgrader_config.py")
    for folder in ("solutions", "exercises"):
        shutil.copytree(REPO / folder, dest / folder)
    return dest


def regions(source: str, begin: str, end: str) -> tuple[list[str], list[str]]:
    """Split a cell's lines into (inside the begin/end markers, outside them)."""
    inside, outside, depth = [], [], False
    for line in source.split("\n"):
        if begin in line:
            depth = True
        elif end in line:
            depth = False
        elif depth:
            inside.append(line)
        else:
            outside.append(line)
    return inside, outside


def solution_answers(aid: str) -> dict[str, str]:
    """grade_id -> what a student who knows the solution types into that answer cell."""
    from seqlab.kit.course import solution_answers as answers

    return answers(REPO, aid)


# Idioms that any PyTorch code has: in a solution or hidden test they give nothing away,
# and a book page or a released notebook may well contain them.
COMMON_LINES = {"with torch.no_grad():", "@torch.no_grad()"}


def secret_lines(aid: str, min_length: int = 12) -> set[str]:
    """Lines of solutions and hidden tests that never appear in the visible parts."""
    nb = nbformat.read(REPO / "solutions" / aid / f"{aid}.ipynb", as_version=4)
    hidden, visible = set(), set()
    for cell in nb.cells:
        for begin, end in ((BEGIN_SOLUTION, END_SOLUTION), (BEGIN_HIDDEN, END_HIDDEN)):
            inside, _ = regions(cell.source, begin, end)
            hidden.update(ln.strip() for ln in inside)
        _, outside = regions(cell.source, BEGIN_HIDDEN, END_HIDDEN)
        _, outside_solution = regions("\n".join(outside), BEGIN_SOLUTION, END_SOLUTION)
        visible.update(ln.strip() for ln in outside_solution)
    return {ln for ln in hidden - visible - COMMON_LINES if len(ln) >= min_length}


def release_notebook(root: Path, aid: str) -> nbformat.NotebookNode:
    return nbformat.read(root / "exercises" / aid / f"{aid}.ipynb", as_version=4)


def fill(nb: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of a released notebook with the given answer cells filled in."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id].strip("\n")
    return nb


def submit(root: Path, student: str, aid: str, nb) -> Path:
    folder = root / "submitted" / student / aid
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{aid}.ipynb"
    if isinstance(nb, (str, bytes)):
        path.write_bytes(nb if isinstance(nb, bytes) else nb.encode())
    else:
        nbformat.write(nb, path)
    return path


def cell_scores(
    root: Path, aid: str, student: str, url: str | None = None
) -> dict[str, tuple[float, float]]:
    """grade_id -> (score, max score) for one student's autograded notebook, from the
    gradebook at ``url`` (default: the course's SQLite file)."""
    from nbgrader.api import Gradebook

    with Gradebook(url or f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(aid, aid, student)
        return {g.name: (g.score, g.max_score) for g in nb.grades}
