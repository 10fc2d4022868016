"""The grade table an instructor reads, and the file an LMS gradebook imports.

nbgrader's own ``grades.csv`` (``nbgrader export``) stays as nbgrader writes it: a
row for every student and every assignment in the gradebook, 0.0 where nothing was
submitted. Beside it, :func:`write_reports` writes

* ``grade-table.csv``: one row per student and assignment *that has submissions*,
  with a status: ``graded``, ``waiting for hand grading`` (and how many points
  wait), ``failed: <why>`` (no autograded points; the reason from the run that
  failed), or ``missing`` (nothing submitted), beside the score (after nbgrader's late
  penalty), the maximum, the LMS's late marker, the student's name, the submission
  time, how late it was against the due date (and the student's extension) and the
  penalty taken off;
* ``lms-grades.csv``: the columns a gradebook import expects (Canvas's: Student,
  ID, SIS User ID, SIS Login ID, Section), then one column per assignment, a
  "Points Possible" row, and each student's final score; a score still waiting
  for a hand grade, a failure and a missing submission are left blank, so that
  importing never records a number that is not final.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import AssignLatePenalties
from nbgrader.utils import parse_utc

from seqlab.kit.course import (
    CourseError,
    config,
    gradebook_url,
    lms_records,
    submissions,
    sync_gradebook,
)

FAILURES = Path("autograded") / ".seqlab-failures.json"  # (assignment, student) -> why
GRADED, WAITING, MISSING, FAILED = "graded", "waiting for hand grading", "missing", "failed"
LMS_ID_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


@dataclass
class Row:
    """One student's standing on one assignment."""

    assignment: str
    student: str  # the student id (the LMS user id for collected zips)
    name: str
    status: str
    score: float | None  # points so far, less the late penalty; None: nothing graded
    max_score: float
    hand_pending: float  # points of written answers not graded by hand yet
    late: bool  # marked late by the LMS
    extended_until: str = ""  # the student's due date, where an extension moved it
    submitted: str = ""  # the submission time nbgrader has (UTC), "" when none
    late_by: str = ""  # how long after the student's due date it came, "" when on time
    penalty: float = 0.0  # points nbgrader's late penalty took off the score
    in_lms: bool = False  # the submission came from an LMS zip (so ``late`` means something)


def record_failures(root: Path, failed: list[tuple[str, str, str]], graded) -> None:
    """Remember why submissions failed (``failed``: (assignment, student, why)) until they
    are graded (``graded``: (assignment, student)): the table shows the reason later too."""
    path = root / FAILURES
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    for aid, student in graded:
        known.get(aid, {}).pop(student, None)
    for aid, student, why in failed:
        known.setdefault(aid, {})[student] = why
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=1, sort_keys=True))


def _failures(root: Path) -> dict[str, dict[str, str]]:
    try:
        return json.loads((root / FAILURES).read_text())
    except (OSError, ValueError):
        return {}


def grade_table(root: Path, ids: list[str]) -> list[Row]:
    """The rows for the assignments of ``ids`` that have submissions, for every student
    who submitted anything or is in the gradebook."""
    submitted = {aid: set(submissions(root, aid)) for aid in ids}
    submitted = {aid: people for aid, people in submitted.items() if people}
    failures = _failures(root)
    rows = []
    with Gradebook(gradebook_url(root)) as gb:
        names = {s.id: " ".join(filter(None, (s.first_name, s.last_name))) for s in gb.students}
        everyone = sorted(set(names) | set().union(*submitted.values()))
        for aid in sorted(submitted):
            try:
                top = gb.find_assignment(aid).max_score
            except MissingEntry:
                top = 0.0
            lms = lms_records(root, aid)
            for student in everyone:
                row = Row(aid, student, names.get(student, ""), MISSING, None, top, 0.0, False)
                row.late = bool(lms.get(student, {}).get("late"))
                row.in_lms = student in lms
                if student in submitted[aid]:
                    _fill(root, gb, row, failures.get(aid, {}).get(student))
                rows.append(row)
    return rows


def _fill(root: Path, gb: Gradebook, row: Row, failure: str | None) -> None:
    """The status and score of a submission, from the gradebook and the failures."""
    try:
        submission = gb.find_submission(row.assignment, row.student)
    except MissingEntry:
        submission = None
    if submission is not None and submission.extension is not None:
        row.extended_until = f"{submission.duedate:%Y-%m-%d %H:%M} UTC"
    if submission is not None and submission.timestamp is not None:
        row.submitted = f"{submission.timestamp:%Y-%m-%d %H:%M} UTC"
        if late := submission.total_seconds_late:
            row.late_by = duration(late)
    graded = any((root / "autograded" / row.student / row.assignment).glob("*.ipynb"))
    if failure is not None or submission is None or not graded:
        row.status = f"{FAILED}: {failure or 'not graded yet (run make grade)'}"
        return
    grades = [g for nb in submission.notebooks for g in nb.grades]
    row.hand_pending = float(sum(g.max_score for g in grades if g.needs_manual_grade))
    row.penalty = float(submission.late_submission_penalty or 0.0)
    row.score = max(0.0, float(submission.score) - row.penalty)  # as nbgrader exports it
    row.status = WAITING if row.hand_pending else GRADED


def duration(seconds: float) -> str:
    """A lateness as a person reads it: ``2 d 3 h``, ``5 h 10 min``, ``1 min``."""
    minutes = max(1, -(-int(seconds) // 60))  # a late second is a late minute
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def lateness(row: Row) -> str:
    """What the summary says after a row's status about its time: late by how long and
    the penalty, and the LMS's marker, both where they disagree."""
    said = []
    if row.late_by:
        penalty = f"penalty {row.penalty:g} points" if row.penalty else "no penalty"
        said.append(f"late by {row.late_by}, {penalty}")
    if row.late:
        on_time = " but on time for the due date" if row.submitted and not row.late_by else ""
        said.append(f"late in the LMS{on_time}")
    elif row.late_by and row.in_lms:
        said.append("not marked late in the LMS")
    return "".join(f" ({what})" for what in said)


def set_due_date(root: Path, aid: str, when: str) -> str:
    """Record ``aid``'s due date in the gradebook (what nbgrader's late penalties and
    extensions count from); returns it as nbgrader reads it (UTC)."""
    due = _moment(when)
    with Gradebook(gradebook_url(root)) as gb:
        gb.update_or_create_assignment(aid, duedate=due)
    apply_late_penalties(root, [aid])  # the submissions graded already
    return f"{due:%Y-%m-%d %H:%M} UTC"


def grant_extension(root: Path, aid: str, student: str, until: str) -> str:
    """Give ``student`` until ``until`` for ``aid``: nbgrader's extension (the time added
    to the assignment's due date) on the student's submission; returns the new due date."""
    moment = _moment(until)
    with Gradebook(gradebook_url(root)) as gb:
        try:
            assignment = gb.find_assignment(aid)
            due, recorded = assignment.duedate, bool(assignment.notebooks)
        except MissingEntry:
            due, recorded = None, False
    if due is None:
        raise CourseError(
            f"{aid} has no due date to extend: set it first (make due ASSIGNMENT={aid} "
            "WHEN='2027-01-15 17:00 UTC')"
        )
    if moment <= due:
        raise CourseError(f"{until} is not after {aid}'s due date ({due:%Y-%m-%d %H:%M} UTC)")
    if not recorded and (root / "solutions" / aid).is_dir():
        # the notebooks go into the gradebook first: nbgrader refuses to record them
        # once the assignment has a submission (here, the extension's)
        sync_gradebook(root, aid)
    with Gradebook(gradebook_url(root)) as gb:
        gb.update_or_create_student(student)
        gb.update_or_create_submission(aid, student, extension=moment - due)
    apply_late_penalties(root, [aid])
    return f"{moment:%Y-%m-%d %H:%M} UTC"


LATE_PENALTY = "SEQLAB_LATE_PENALTY"  # nbgrader's penalty_method: none (the default) or zero


def check_late_penalty() -> str:
    """The late penalty the course's nbgrader_config.py will give nbgrader, checked before
    anything is graded: nbgrader itself would fail in the middle of autograding."""
    method = os.environ.get(LATE_PENALTY, "none")
    if method not in ("none", "zero"):
        raise CourseError(
            f"{LATE_PENALTY}={method!r} is not a late penalty: use none (late is only shown) "
            "or zero (a late submission scores 0)"
        )
    return method


def apply_late_penalties(root: Path, ids: list[str]) -> set[str]:
    """nbgrader's late penalty of every graded submission of ``ids``, computed anew from the
    due date and extension the gradebook has now and the score the submission has now
    (hand grades included), with the plugin the course configures (SEQLAB_LATE_PENALTY).
    nbgrader computes it once, when it autogrades; a due date moved or an extension given
    afterwards, or a hand grade, would leave it stale. Returns the assignments changed."""
    assigner = AssignLatePenalties(config=config(root))
    assigner.init_plugin()
    changed = set()
    with Gradebook(gradebook_url(root)) as gb:
        for aid in ids:
            for submission in gb.assignment_submissions(aid):
                late = submission.total_seconds_late
                for notebook in submission.notebooks:
                    penalty = None
                    if late > 0:
                        penalty = assigner.plugin_inst.late_submission_penalty(
                            submission.student.id, notebook.score, late
                        )
                    if penalty is not None:  # nbgrader's bounds: 0 to the notebook's score
                        penalty = min(max(float(penalty), 0.0), float(notebook.score))
                    if (notebook.late_submission_penalty or None) != (penalty or None):
                        notebook.late_submission_penalty = penalty
                        changed.add(aid)
        gb.db.commit()
    return changed


def _moment(text: str):
    try:
        return parse_utc(text)
    except (ValueError, OverflowError):
        raise CourseError(
            f"not a date and time: {text!r} (write e.g. '2027-01-15 17:00 UTC')"
        ) from None


def write_reports(root: Path, rows: list[Row]) -> tuple[Path, Path]:
    """grade-table.csv and lms-grades.csv (see the module's docstring); returns both paths."""
    table = root / "grade-table.csv"
    with open(table, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(Row.__dataclass_fields__))
        writer.writeheader()
        for row in rows:
            writer.writerow({**asdict(row), "score": "" if row.score is None else row.score})
    lms = root / "lms-grades.csv"
    ids = sorted({row.assignment for row in rows})
    tops = {row.assignment: row.max_score for row in rows}
    students = {}
    for row in rows:
        students.setdefault(row.student, {"name": row.name})[row.assignment] = (
            f"{row.score:g}" if row.status == GRADED else ""
        )
    with open(lms, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*LMS_ID_COLUMNS, *ids])
        writer.writerow(["Points Possible", "", "", "", "", *(f"{tops[a]:g}" for a in ids)])
        for student, scores in sorted(students.items()):
            writer.writerow(
                [scores["name"] or student, student, "", "", "", *(scores[a] for a in ids)]
            )
    return table, lms
