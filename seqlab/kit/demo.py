"""The demo class: ``make demo-class`` (``python -m seqlab.kit demo-class``).

A synthetic class for each chapter, written from its solution and its release:
the solution, the release untouched, one function left undone, and submissions
that loop forever, allocate 64 GiB, import what does not exist, rebind
``torch.allclose``, kill their kernel, are not JSON, carry another name, or
come with unrelated files. It is graded with ``make grade``'s code
(:func:`seqlab.kit.grade.grade`) and every submission's score, or the reason it
failed, is compared with what it should be.
"""

from __future__ import annotations

import copy
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

from seqlab.kit.course import CourseError, assignments, find_root, read_grades, solution_answers
from seqlab.kit.grade import grade, print_summary


@dataclass
class DemoSubmission:
    """One synthetic student of the demo class, and what grading should make of it."""

    student: str
    what: str  # what the submission does, for the report
    expected: float | None  # autograded points it should get; None = it should fail
    reason: str = ""  # for a failure: words the failure reason should contain


def graded_tests(nb) -> list:
    """The autograded test cells of a notebook (graded, not an answer)."""
    return [
        c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
        and not c.metadata["nbgrader"].get("solution")
    ]


def write_demo_class(root: Path, aid: str) -> list[DemoSubmission]:
    """Write a synthetic class for ``aid`` under submitted/ and return what each should score.

    The hostile ones put their trouble into the *last* graded function's answer,
    which no other test uses, so the points they should lose are known.
    """
    release = nbformat.read(root / "exercises" / aid / f"{aid}.ipynb", as_version=4)
    source = nbformat.read(root / "solutions" / aid / f"{aid}.ipynb", as_version=4)
    answers = solution_answers(root, aid)
    tests = graded_tests(source)
    full = sum(c.metadata["nbgrader"]["points"] for c in tests)
    # the answer cell right before the last test cell is the one that test judges
    cells = source.cells
    last_answer = next(
        c.metadata["nbgrader"]["grade_id"]
        for c in reversed(cells[: cells.index(tests[-1])])
        if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"
    )
    stub = next(
        c.source
        for c in release.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == last_answer
    )
    lost = full - _points_depending_on(last_answer, answers, tests)

    def notebook(extra: dict[str, str]):
        nb = nbformat.from_dict(copy.deepcopy(release))
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in extra or gid in answers:
                cell.source = extra.get(gid, answers.get(gid, cell.source))
        return nb

    def with_last(prefix: str) -> dict[str, str]:
        return {last_answer: prefix + answers[last_answer]}

    cases = [
        ("correct", "the solution", {}, full, ""),
        (
            "partly_wrong",
            f"the solution, but {last_answer} left as released",
            {last_answer: stub},
            lost,
            "",
        ),
        (
            "infinite_loop",
            f"{last_answer} never returns",
            {
                last_answer: answers[last_answer]
                + f"\n\n\ndef {last_answer}(*args, **kwargs):\n    while True:\n        pass\n"
            },
            lost,
            "",
        ),
        (
            "memory_hog",
            "allocates 64 GiB in an answer cell",
            with_last("hog = [bytearray(2**30) for _ in range(64)]\n"),
            lost,
            "",
        ),
        (
            "import_error",
            "imports a module that does not exist",
            with_last("import no_such_module_in_this_course\n"),
            lost,
            "",
        ),
        (
            "tampering",
            "rebinds torch.allclose and numpy.allclose",
            with_last("import numpy\ntorch.allclose = numpy.allclose = lambda *a, **k: True\n"),
            lost,
            "",
        ),
        (
            "kills_kernel",
            "calls os._exit in an answer cell",
            with_last("import os\nos._exit(0)\n"),
            None,
            "kernel died",
        ),
    ]
    demo = []
    for student, what, extra, expected, reason in cases:
        nbformat.write(notebook(extra), _submission_path(root, student, aid, f"{aid}.ipynb"))
        demo.append(DemoSubmission(student, what, expected, reason))
    nbformat.write(release, _submission_path(root, "blank", aid, f"{aid}.ipynb"))
    demo.append(DemoSubmission("blank", "the release, untouched", 0.0))
    _submission_path(root, "not_json", aid, f"{aid}.ipynb").write_text('{"cells": [oops')
    demo.append(DemoSubmission("not_json", "a file that is not JSON", None, "not a valid notebook"))
    nbformat.write(notebook({}), _submission_path(root, "renamed", aid, f"{aid} (1).ipynb"))
    demo.append(DemoSubmission("renamed", "the notebook under another name", None, "no notebook"))
    extras = _submission_path(root, "extra_files", aid, f"{aid}.ipynb")
    nbformat.write(notebook({}), extras)
    (extras.parent / "notes.txt").write_text("my notes")
    (extras.parent / "scratch.ipynb").write_text("{}")
    demo.append(DemoSubmission("extra_files", "the solution plus unrelated files", full))
    return demo


def _points_depending_on(name: str, answers: dict[str, str], tests: list) -> float:
    """Points of the test cells that use function ``name``, directly or through
    another answer that calls it (the names are read from the cells' source)."""
    uses = lambda src, names: any(re.search(rf"\b{n}\b", src) for n in names)  # noqa: E731
    broken = {name}
    while True:
        more = {g for g, src in answers.items() if g not in broken and uses(src, broken)}
        if not more:
            break
        broken |= more
    return sum(c.metadata["nbgrader"]["points"] for c in tests if uses(c.source, broken))


def _submission_path(root: Path, student: str, aid: str, name: str) -> Path:
    folder = root / "submitted" / student / aid
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def demo_class(
    dest: Path, source: Path | None = None, jobs: int | None = None, ids: list[str] | None = None
) -> list[str]:
    """Copy the course to ``dest``, write a demo class for every chapter (or those in
    ``ids``), grade it, and return the mismatches between what each submission got
    and should get."""
    source = source or find_root()
    if dest.exists():
        raise CourseError(f"{dest} exists already; the demo class needs a new folder")
    dest.mkdir(parents=True)
    shutil.copy2(source / "nbgrader_config.py", dest / "nbgrader_config.py")
    for folder in ("solutions", "exercises"):
        shutil.copytree(source / folder, dest / folder)
    chapters = assignments(dest)
    unknown = sorted(set(ids or ()) - set(chapters))
    if unknown:
        raise CourseError(
            f"no assignment {', '.join(unknown)}; the course has {', '.join(chapters)}"
        )
    expected = {aid: write_demo_class(dest, aid) for aid in ids or chapters}
    summary = grade(dest, list(expected), jobs=jobs)
    print_summary(dest, summary)
    failed = {(aid, student): why for aid, student, why in summary.failed}
    scores = {(r["assignment"], r["student_id"]): float(r["score"]) for r in read_grades(dest)}
    problems = []
    for aid, demo in expected.items():
        for sub in demo:
            key = (aid, sub.student)
            if sub.expected is None:
                if reason := failed.get(key):
                    ok = sub.reason in reason
                    got = f"failed: {reason}"
                else:
                    ok, got = False, f"graded, {scores.get(key)} points"
            else:
                ok = key not in failed and scores.get(key) == sub.expected
                got = f"failed: {failed[key]}" if key in failed else f"{scores.get(key)} points"
            want = f"fails ({sub.reason})" if sub.expected is None else f"{sub.expected:g} points"
            mark = "ok  " if ok else "FAIL"
            print(f"{mark} {aid:16} {sub.student:14} {sub.what}: {got} (expected {want})")
            if not ok:
                problems.append(f"{aid}/{sub.student}: got {got}, expected {want}")
    return problems
