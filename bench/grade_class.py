"""Benchmark: grade a class of N chapter-1 submissions, in parallel with `make grade`'s
code (in the grading sandbox, and again without it) and sequentially with nbgrader's
own `nbgrader autograde`, and report all three.

    python bench/grade_class.py --students 100 --out bench/grade_class.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from seqlab.kit import course, grade, sandbox

REPO = Path(__file__).resolve().parent.parent
AID = "rnn_gradients"


def make_class(root: Path, n: int) -> None:
    """n submissions: a correct one, a blank one and one with a function left undone, in turn."""
    shutil.copy2(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    for folder in ("solutions", "exercises"):
        shutil.copytree(REPO / folder, root / folder)
    release = nbformat.read(root / "exercises" / AID / f"{AID}.ipynb", as_version=4)
    answers = course.solution_answers(root, AID)
    kinds = [answers, {}, {k: v for k, v in answers.items() if k != "clip_grad_norm"}]
    for i in range(n):
        nb = nbformat.from_dict(json.loads(json.dumps(release)))
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            cell.source = kinds[i % 3].get(gid, cell.source)
        folder = root / "submitted" / f"student{i:03d}" / AID
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{AID}.ipynb")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "grade_class.json")
    args = parser.parse_args()
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    result = {"students": args.students, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        par, seq = Path(tmp) / "parallel", Path(tmp) / "sequential"
        plain = Path(tmp) / "unsandboxed"
        for root in (par, seq, plain):
            root.mkdir()
            make_class(root, args.students)
        t0 = time.perf_counter()
        summary = grade.grade(par, [AID])
        result["parallel_s"] = time.perf_counter() - t0
        result["parallel_graded"] = len(summary.graded)
        # the same, side by side, without the sandbox: what isolation costs
        os.environ[sandbox.NO_SANDBOX] = "1"
        try:
            t0 = time.perf_counter()
            grade.grade(plain, [AID])
            result["unsandboxed_s"] = time.perf_counter() - t0
        finally:
            os.environ.pop(sandbox.NO_SANDBOX)
        course.sync_gradebook(seq, AID)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "nbgrader", "autograde", AID],
            cwd=seq,
            env=env,
            check=True,
            capture_output=True,
        )
        result["sequential_autograde_s"] = time.perf_counter() - t0
        scores = lambda root: [(r["student_id"], r["score"]) for r in course.read_grades(root)]  # noqa: E731
        subprocess.run(
            [sys.executable, "-m", "nbgrader", "export", "--to", str(seq / "grades.csv")],
            cwd=seq,
            env=env,
            check=True,
            capture_output=True,
        )
        result["same_scores"] = sorted(scores(par)) == sorted(scores(seq))
        result["unsandboxed_same_scores"] = sorted(scores(par)) == sorted(scores(plain))
    result["speedup"] = result["sequential_autograde_s"] / result["parallel_s"]
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
