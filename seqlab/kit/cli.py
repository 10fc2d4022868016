"""The instructor's commands, run from the course repository (the folder with
``nbgrader_config.py``)::

    python -m seqlab.kit release            # solutions/ -> exercises/
    python -m seqlab.kit grade              # submitted/ -> autograded/, feedback/, grades.csv
    python -m seqlab.kit grade --zip downloads.zip --assignment rnn_gradients
    python -m seqlab.kit grade --cluster local:2      # on a Dask cluster
    python -m seqlab.kit demo-class --dir demo-class  # a synthetic class, graded and checked
    python -m seqlab.kit due --assignment rnn_gradients --when '2027-01-15 17:00 UTC'
    python -m seqlab.kit extension --assignment rnn_gradients --student 1001 --until '2027-01-20'
    python -m seqlab.kit markscheme --assignment rnn_gradients  # beside the formgrader

``make release``, ``make grade`` and ``make demo-class`` call these. Releasing
is :mod:`seqlab.kit.course`, grading :mod:`seqlab.kit.grade` (or
:mod:`seqlab.kit.cluster`), the demo class :mod:`seqlab.kit.demo`; this module
only reads the command line and prints what an instructor can act on.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from seqlab.kit import cluster, sandbox
from seqlab.kit.course import CourseError, assignments, collect_zip, find_root, mark_scheme, release
from seqlab.kit.demo import demo_class
from seqlab.kit.grade import grade, print_summary
from seqlab.kit.report import check_late_penalty, grant_extension, set_due_date


def build_parser() -> argparse.ArgumentParser:
    """The command line: release, grade and demo-class, with their options."""
    parser = argparse.ArgumentParser(
        prog="python -m seqlab.kit",
        description="The instructor's commands: release exercises, grade submissions, "
        "export grades.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_release = sub.add_parser("release", help="regenerate exercises/ from solutions/")
    p_release.add_argument("ids", nargs="*", help="assignment ids (default: all)")
    p_grade = sub.add_parser("grade", help="autograde submitted/, write feedback/ and grades.csv")
    p_grade.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    p_grade.add_argument("--zip", type=Path, help="a zip of LMS downloads to collect first")
    p_grade.add_argument("--jobs", type=int, help="submissions graded at once (default: cores)")
    p_grade.add_argument("--regrade", action="store_true", help="grade unchanged submissions again")
    p_grade.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run the kernels without the grading sandbox: for trusted code only",
    )
    p_grade.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="grade on a Dask cluster: its scheduler's address, or local:N for N worker "
        "processes here (needs SEQLAB_GRADEBOOK_URL on a database server)",
    )
    p_due = sub.add_parser("due", help="set an assignment's due date (nbgrader's gradebook)")
    p_due.add_argument("--assignment", required=True)
    p_due.add_argument("--when", required=True, help="e.g. '2027-01-15 17:00 UTC'")
    p_ext = sub.add_parser("extension", help="give a student more time for an assignment")
    p_ext.add_argument("--assignment", required=True)
    p_ext.add_argument("--student", required=True, help="the student id (the LMS user id)")
    p_ext.add_argument("--until", required=True, help="the new due date, e.g. '2027-01-20 17:00'")
    p_mark = sub.add_parser(
        "markscheme", help="print the mark scheme of every answer graded by hand (formgrader)"
    )
    p_mark.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    p_demo = sub.add_parser("demo-class", help="grade a synthetic class and check every score")
    p_demo.add_argument("--dir", type=Path, default=Path("demo-class"), help="a new folder for it")
    p_demo.add_argument("--jobs", type=int, help="submissions graded at once (default: cores)")
    p_demo.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    return parser


def print_mark_scheme(aid: str, scheme: list[tuple[str, float, str]]) -> None:
    """One assignment's answers graded by hand, each with its points and mark scheme."""
    total = sum(points for _, points, _ in scheme)
    print(f"{aid}: {len(scheme)} answer(s) graded by hand, {total:g} points")
    for grade_id, points, text in scheme:
        heading = f"{aid} / {grade_id} ({points:g} points)"
        print(f"\n{heading}\n{'-' * len(heading)}\n{text}")
    print()


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (1 after a CourseError, which is
    printed without a traceback)."""
    args = build_parser().parse_args(argv)
    try:
        root = find_root()
        if args.command in ("grade", "due", "extension"):
            check_late_penalty()  # before any work: nbgrader would fail halfway
        if args.command == "release":
            for path in release(root, args.ids or None):
                print(f"released {path.relative_to(root)}")
        elif args.command == "grade":
            if args.no_sandbox:  # nbgrader_config.py, here and in every nbgrader run, reads it
                os.environ[sandbox.NO_SANDBOX] = "1"
            if args.zip:
                if not args.assignment or len(args.assignment) != 1:
                    raise CourseError("--zip needs exactly one --assignment ID")
                collected = collect_zip(root, args.zip, args.assignment[0])
                print(f"collected {len(collected.students)} submission(s) from {args.zip}")
            if args.cluster:
                summary, _ = cluster.grade(root, args.assignment, args.cluster, args.regrade)
            else:
                summary = grade(root, args.assignment, args.jobs, args.regrade)
            if args.zip:
                summary.skipped.extend(collected.skipped)
            print_summary(root, summary)
        elif args.command == "due":
            print(f"{args.assignment} is due {set_due_date(root, args.assignment, args.when)}")
        elif args.command == "extension":
            until = grant_extension(root, args.assignment, args.student, args.until)
            print(f"{args.student} has {args.assignment} until {until}")
        elif args.command == "markscheme":
            schemes = {aid: mark_scheme(root, aid) for aid in args.assignment or assignments(root)}
            for aid, scheme in schemes.items():
                print_mark_scheme(aid, scheme)
        elif args.command == "demo-class":
            # a short per-cell limit, so the infinite loop costs seconds, not a minute
            os.environ.setdefault("SEQLAB_CELL_TIMEOUT", "20")
            problems = demo_class(args.dir.resolve(), root, args.jobs, args.assignment)
            if problems:
                raise CourseError(
                    "the demo class was not graded as expected:\n" + "\n".join(problems)
                )
            print(f"every submission of the demo class got the score it should (in {args.dir})")
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
