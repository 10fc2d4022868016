"""Grading: autograde the submissions, watch them finish, and summarise the run.

:func:`grade` is ``make grade`` (``python -m seqlab.kit grade``): it autogrades
new and changed submissions in batches, one nbgrader process per batch
(student code runs in nbgrader's kernels, shut in by :mod:`seqlab.kit.sandbox`),
marks each submission graded as soon as nbgrader has written it, so that a
stopped run resumes where it stopped, grades alone what a batch could not
finish (which also tells why it fails), then writes feedback and grades.csv.
:func:`print_summary` tells the instructor what happened and what to look at.
The same functions grade a batch on a cluster worker (:mod:`seqlab.kit.cluster`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from tqdm.auto import tqdm

from seqlab.kit import sandbox
from seqlab.kit.course import (
    SUBMISSION_LIMIT,
    CourseError,
    assignments,
    concurrent_write,
    export_grades,
    generate_feedback,
    hand_waiting,
    item_means,
    late_in_lms,
    run_nbgrader,
    submissions,
    sync_gradebooks,
)
from seqlab.kit.plugins import RUNAWAY
from seqlab.kit.report import (
    Row,
    apply_late_penalties,
    grade_table,
    lateness,
    record_failures,
    write_reports,
)


@dataclass
class Summary:
    """What one grading run did, for the instructor."""

    graded: list[tuple[str, str]] = field(default_factory=list)  # (assignment, student)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (assignment, student, why)
    notes: list[tuple[str, str, str]] = field(default_factory=list)  # graded, with a remark
    # graded by an earlier run and not resubmitted since: (assignment, student)
    unchanged: list[tuple[str, str]] = field(default_factory=list)
    # assignment -> submissions graded again because its tests changed since
    retested: dict[str, int] = field(default_factory=dict)
    # files of an LMS zip that were not collected: (file, why)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # the grade table (seqlab.kit.report) after the run
    table: list[Row] = field(default_factory=list)
    # assignments whose exercises/ differ from what solutions/ releases
    stale: list[str] = field(default_factory=list)
    # False when the kernels ran without the grading sandbox (--no-sandbox)
    sandboxed: bool = True


def require_sandbox() -> bool:
    """Check, before anything is graded, that the grading sandbox starts here
    (seqlab.kit.sandbox); returns False when grading was asked to run without it."""
    if not sandbox.enabled():
        return False
    try:
        sandbox.check()
    except sandbox.SandboxError as error:
        raise CourseError(str(error)) from None
    return True


# What an answer cell has no business touching in these exercises. The sandbox keeps
# a submission inside its own notebook; inside it, code that reaches for these can
# still subvert its own tests, so the summary points the instructor at it.
_SUSPICIOUS = {
    "IPython's machinery": r"\bget_ipython\b|\bIPython\b",
    "the interpreter's hooks": r"\bsys\s*\.\s*(settrace|setprofile|modules|meta_path|addaudithook)",
    "object internals": r"\bctypes\b|\bgc\s*\.\s*get_refer|__setattr__|__dict__\s*\[",
    "the course's checks": r"\bgrading\b|\bimportlib\b",
    "built-ins": r"\bbuiltins\b|__builtins__",
    "processes": r"\bos\s*\.\s*(fork|system|exec|spawn|kill|setsid)|\bsubprocess\b",
    "the network": r"\bsocket\b|\burllib\b|\brequests\b|\bhttp\.client\b",
}
REVIEW = "review it by hand: its answers reach for "


def review_flags(root: Path, aid: str, student: str) -> list[str]:
    """What the answer cells of a submission reach for that an honest answer does not
    (see _SUSPICIOUS); empty for an ordinary submission."""
    found = []
    for path in sorted((root / "submitted" / student / aid).glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # not a notebook: its failure is reported already
            continue
        answers = "\n".join(
            c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")
        )
        found += [what for what, pattern in _SUSPICIOUS.items() if re.search(pattern, answers)]
    return sorted(set(found))


GRADED_MARK = ".seqlab-graded.json"  # in autograded/<student>/<id>/, written after a success


TESTS_KEY = "tests"  # the fingerprint's entry for the tests it was graded with


def tests_fingerprint(root: Path, aid: str) -> str:
    """SHA-256 of what grades ``aid`` besides the answers: the code cells of
    solutions/<aid>/ that are not answers (setup, visible and hidden tests) with their
    points. Editing a hidden test changes it; a typo fixed in the prose does not."""
    digest = hashlib.sha256()
    for path in sorted((root / "solutions" / aid).glob("*.ipynb")):
        stat = path.stat()  # each notebook is read once per version, not once per student
        digest.update(_tests_of(str(path), stat.st_mtime_ns, stat.st_size).encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _tests_of(path: str, mtime_ns: int, size: int) -> str:
    """The non-answer code cells of one source notebook, with their points, as JSON."""
    cells = nbformat.read(path, as_version=4).cells
    return json.dumps([
        [Path(path).name, c.source, c.metadata.get("nbgrader", {}).get("points")]
        for c in cells
        if c.cell_type == "code" and not c.metadata.get("nbgrader", {}).get("solution")
    ])  # fmt: skip


def fingerprint_of(root: Path, aid: str, student: str) -> dict[str, str]:
    """SHA-256 of every submitted notebook and of the tests (:func:`tests_fingerprint`):
    what was graded and with what, whatever the file times say."""
    folder = root / "submitted" / student / aid
    notebooks = {
        nb.name: hashlib.sha256(nb.read_bytes()).hexdigest()
        for nb in sorted(folder.glob("*.ipynb"))
    }
    return {**notebooks, TESTS_KEY: tests_fingerprint(root, aid)}


def graded_with_other_tests(root: Path, aid: str, student: str) -> bool:
    """True when this very submission was graded, but with tests that have changed since."""
    mark = root / "autograded" / student / aid / GRADED_MARK
    try:
        graded = json.loads(mark.read_text())
    except (OSError, ValueError):
        return False
    now = fingerprint_of(root, aid, student)
    same_answers = {k: v for k, v in graded.items() if k != TESTS_KEY} == {
        k: v for k, v in now.items() if k != TESTS_KEY
    }
    return same_answers and graded.get(TESTS_KEY) != now[TESTS_KEY]


def is_graded(root: Path, aid: str, student: str) -> bool:
    """True when this exact submission was graded to the end by an earlier run.

    The mark is written only after nbgrader finished, so a run that was
    interrupted leaves the unfinished submissions ungraded and grading again
    resumes where it stopped; a resubmission (other content) is graded again.
    """
    mark = root / "autograded" / student / aid / GRADED_MARK
    try:
        return json.loads(mark.read_text()) == fingerprint_of(root, aid, student)
    except (OSError, ValueError):
        return False


def mark_graded(root: Path, aid: str, student: str, fingerprint: dict[str, str]) -> None:
    """Record that the submission with this fingerprint (:func:`fingerprint_of`) is graded."""
    (root / "autograded" / student / aid / GRADED_MARK).write_text(json.dumps(fingerprint))


def autograde(
    root: Path,
    aid: str,
    student: str,
    retries: int = 3,
    limit: float = SUBMISSION_LIMIT,
    threads: dict[str, str] | None = None,
) -> tuple[str | None, str | None]:
    """Autograde one submission; returns (why it failed or None, a note or None).

    It counts as graded when nbgrader wrote a fresh autograded notebook, even if
    some cells failed or were stopped at their time limit (those lose their
    points). Two graders writing to one gradebook can meet a lock (SQLite) or
    insert the same new row (PostgreSQL); such a run is repeated (nbgrader's
    --force makes a repeat idempotent). A submission still running after
    ``limit`` seconds is stopped, kernel included.
    """
    fingerprint = fingerprint_of(root, aid, student)
    for _ in range(retries):
        started = time.time()
        try:
            proc = run_nbgrader(
                root,
                "autograde",
                aid,
                "--student",
                student,
                "--force",
                check=False,
                timeout=limit,
                threads=threads,
            )
        except subprocess.TimeoutExpired:
            return f"stopped after {limit:.0f} s (every cell has its own limit too)", None
        log = proc.stdout + proc.stderr
        if not concurrent_write(log):
            break
    note = _timeout_note(log) if "Interrupting kernel" in log else None
    if proc.returncode == 0 and graded_since(root, aid, student, started):
        mark_graded(root, aid, student, fingerprint)
        return None, note
    why = _reason(log, proc.returncode)
    if why == _NO_NOTEBOOK:
        found = sorted(p.name for p in (root / "submitted" / student / aid).iterdir())
        why += f" (found: {', '.join(found) or 'nothing'}; rename it and grade again)"
    return why, note


def graded_since(root: Path, aid: str, student: str, started: float) -> bool:
    """Whether nbgrader has written every autograded notebook of this submission, run,
    since ``started`` (a time.time())."""
    graded = list((root / "autograded" / student / aid).glob("*.ipynb"))
    return bool(graded) and all(_run_since(nb, started) for nb in graded)


def _run_since(notebook: Path, started: float) -> bool:
    """Whether nbgrader wrote this autograded notebook since ``started`` *after running
    it*: it writes it twice, sanitized (no cell run) before running it, then run,
    with the grades saved before; a file being written is not finished either."""
    try:
        if notebook.stat().st_mtime < started - 1:
            return False
        cells = json.loads(notebook.read_text()).get("cells", [])
    except (OSError, ValueError):  # removed (a failure) or half written
        return False
    code = [c for c in cells if c.get("cell_type") == "code"]
    return not code or any(c.get("execution_count") is not None for c in code)


def _reason(log: str, returncode: int) -> str:
    """The most telling line of a failed nbgrader run."""
    for known, why in _KNOWN_FAILURES:
        if known in log:
            return why
    for marker in ("NbGraderException:", "Error:", "ERROR"):
        lines = [ln.strip() for ln in log.splitlines() if marker in ln]
        if lines:
            return lines[-1]
    return f"nbgrader exited with {returncode}"


_NO_NOTEBOOK = "no notebook with the released name was submitted"
_KNOWN_FAILURES = (
    ("Kernel died", "the kernel died while running the notebook (for example os._exit or a crash)"),
    ("JSONDecodeError", "the submitted file is not a valid notebook (not JSON)"),
    ("NotJSONError", "the submitted file is not a valid notebook (not JSON)"),
    ("No notebooks found", _NO_NOTEBOOK),
    ("No notebooks were matched", _NO_NOTEBOOK),
)


def autograde_batch(
    root: Path,
    aid: str,
    batch: list[str],
    everyone: list[str],
    jobs: int,
    threads: dict[str, str] | None = None,
) -> str:
    """Autograde several submissions in one nbgrader process (its start-up, a few
    seconds, is paid once); returns the log. The others are excluded by name.
    ``threads``: nbgrader's environment (default: the cores shared by ``jobs``)."""
    others = [s for s in everyone if s not in batch]
    args = ["autograde", aid, "--student", "*", "--force"]
    if others:
        args.append(f"--CourseDirectory.student_id_exclude={','.join(others)}")
    try:
        proc = run_nbgrader(
            root,
            *args,
            check=False,
            timeout=SUBMISSION_LIMIT * len(batch),
            threads=threads_per_kernel(jobs) if threads is None else threads,
        )
    except subprocess.TimeoutExpired:
        return ""
    return proc.stdout + proc.stderr


def _watch(root, started, futures, fingerprints) -> None:
    """Until every batch is done: mark each submission graded as soon as nbgrader
    wrote its autograded notebook (it saves the grades before), so that a run
    killed half way resumes after the last finished one; and show a progress bar.
    ``fingerprints`` maps (assignment, student) to what was submitted."""
    with tqdm(total=len(fingerprints), desc="autograde", unit="submission") as bar:
        pending = list(fingerprints)
        while True:
            finished = all(f.done() for f in futures)
            for aid, student in [p for p in pending if graded_since(root, *p, started)]:
                mark_graded(root, aid, student, fingerprints[aid, student])
                pending.remove((aid, student))
                bar.update(1)
            if finished:
                return
            time.sleep(0.5)


def notes_by_student(root: Path, aid: str, log: str) -> dict[str, str]:
    """Students whose part of a batch log shows a cell stopped at its time limit."""
    notes, student = {}, None
    marker = re.compile(re.escape(str(root / "submitted")) + r"/([^/]+)/" + re.escape(aid))
    for line in log.splitlines():
        if match := marker.search(line):
            student = match.group(1)
        elif student and RUNAWAY in line:
            notes[student] = _timeout_note(line)
        elif student and "Interrupting kernel" in line:
            notes.setdefault(student, _timeout_note(""))
    return notes


def _timeout_note(log: str) -> str:
    """What the summary says of a submission in which a cell hit its time limit."""
    for line in log.splitlines():
        if RUNAWAY in line:
            return "a cell ran past its time limit: " + line.split(RUNAWAY, 1)[1].strip()
    return "a cell ran past its time limit and was stopped"


def threads_per_kernel(jobs: int) -> dict[str, str]:
    """Share the cores between the kernels that run at once (torch and OpenMP
    would otherwise each start one thread per core and fight over them)."""
    if "OMP_NUM_THREADS" in os.environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // jobs))}


def grade(
    root: Path, ids: list[str] | None = None, jobs: int | None = None, regrade: bool = False
) -> Summary:
    """Autograde new and changed submissions (``jobs`` at a time), then generate
    feedback and export grades.csv. ``regrade`` grades every submission again;
    nbgrader keeps the manual grades either way.

    The assignments share the jobs: a class's submissions of one chapter are
    split into ``jobs`` batches (one nbgrader process each, its start-up paid
    once per batch), and one student's chapters are graded side by side."""
    summary = Summary(sandboxed=require_sandbox())
    jobs = jobs or os.cpu_count() or 1
    everyone = {aid: submissions(root, aid) for aid in ids or assignments(root)}
    todo = {}
    for aid, people in everyone.items():
        students = [s for s in people if regrade or not is_graded(root, aid, s)]
        summary.unchanged.extend((aid, s) for s in people if s not in students)
        if retested := sum(graded_with_other_tests(root, aid, s) for s in students):
            summary.retested[aid] = retested
        if students:
            todo[aid] = students
    summary.stale.extend(sync_gradebooks(root, list(todo)))
    batches = [
        (aid, students[i::jobs])
        for aid, students in todo.items()
        for i in range(min(jobs, len(students)))
    ]
    fingerprints = {
        (aid, s): fingerprint_of(root, aid, s) for aid, people in todo.items() for s in people
    }
    started = time.time()
    logs = []
    if batches:
        workers = min(jobs, len(batches))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(autograde_batch, root, aid, batch, everyone[aid], workers)
                for aid, batch in batches
            ]
            _watch(root, started, futures, fingerprints)
            logs = [future.result() for future in futures]
    for aid, students in todo.items():
        notes = notes_by_student(root, aid, "\n".join(logs))
        retry = []
        for student in students:
            if graded_since(root, aid, student, started):
                summary.graded.append((aid, student))
                if student in notes:
                    summary.notes.append((aid, student, notes[student]))
            else:
                retry.append(student)
        # what a batch could not finish is graded alone, which also tells why it fails
        for student in retry:
            why, note = autograde(root, aid, student, threads=threads_per_kernel(1))
            if why is None:
                summary.graded.append((aid, student))
            else:
                summary.failed.append((aid, student, why))
            if note:
                summary.notes.append((aid, student, note))
    for aid, student in summary.graded:
        if flags := review_flags(root, aid, student):
            summary.notes.append((aid, student, REVIEW + ", ".join(flags)))
    # feedback again where nothing was new too: it shows manual grades given since
    for aid, people in everyone.items():
        if people:
            generate_feedback(root, aid)
    export_grades(root)
    finish_reports(root, summary, list(everyone))
    return summary


def finish_reports(root: Path, summary: Summary, ids: list[str]) -> None:
    """After grading: remember the failures, bring late penalties up to date, and write the
    grade table and the LMS file."""
    record_failures(root, summary.failed, summary.graded)
    # late penalties against today's due dates, extensions and hand grades: where one
    # changed since nbgrader graded, the feedback and grades.csv are written again
    changed = apply_late_penalties(root, ids)
    for aid in sorted(changed):
        generate_feedback(root, aid)
    if changed:
        export_grades(root)
    summary.table = grade_table(root, ids)
    write_reports(root, summary.table)


NOT_ISOLATED = (
    "WARNING: GRADED WITHOUT THE SANDBOX (--no-sandbox): the submissions' code ran as you, "
    "with your files, the gradebook and every other submission within its reach"
)


def print_summary(root: Path, summary: Summary) -> None:
    if not summary.sandboxed:
        print(NOT_ISOLATED)
    for aid in summary.stale:
        print(
            f"warning: exercises/{aid} differs from what solutions/{aid} releases; run make release"
        )
    for aid, count in summary.retested.items():
        print(
            f"the tests of {aid} changed since {count} submission(s) were graded: "
            "graded again with the new tests (scores from the old ones are replaced)"
        )
    print(
        f"graded {len(summary.graded)} submission(s), {len(summary.failed)} failed, "
        f"{len(summary.unchanged)} unchanged since they were graded"
    )
    for aid, student, why in summary.failed:
        print(f"  FAILED {aid} / {student}: {why} (no autograded points)")
    for aid, student, note in summary.notes:
        print(f"  note   {aid} / {student}: {note}")
    late = {aid: late_in_lms(root, aid) for aid, _ in summary.graded + summary.unchanged}
    for aid, student in sorted(summary.graded + summary.unchanged):
        if student in late[aid]:
            print(f"  late   {aid} / {student}: marked late by the LMS (LATE_ in its file name)")
    for name, why in summary.skipped:
        print(f"  not collected from the zip: {name}: {why}")
    if summary.table:
        print(f"{'assignment':16} {'student':12} {'name':20} {'score':>7} {'max':>5}  status")
        for row in summary.table:
            score = "" if row.score is None else f"{row.score:7.1f}"
            status = row.status + (f" ({row.hand_pending:g} points)" if row.hand_pending else "")
            status += f" (extended until {row.extended_until})" if row.extended_until else ""
            print(
                f"{row.assignment:16} {row.student:12} {row.name[:20]:20} {score:>7} "
                f"{row.max_score:5g}  {status}{lateness(row)}"
            )
        pending = [row for row in summary.table if row.hand_pending]
        if pending:
            print(
                f"{sum(r.hand_pending for r in pending):g} points still to be graded by hand, "
                f"in {len(pending)} submission(s) (the formgrader: Manual Grading)"
            )
    for aid in sorted({aid for aid, _ in summary.graded + summary.unchanged}):
        means, waiting = item_means(root, aid), hand_waiting(root, aid)
        count = max((n + waiting.get(name, 0) for name, (_, _, n) in means.items()), default=0)
        print(
            f"mean score per item of {aid}, over {count} submissions (failed ones count 0; "
            "written answers only once graded by hand):"
        )
        for name, (mean, top, n) in means.items():
            shown = "    -" if mean is None else f"{mean:5.2f}"
            left = waiting.get(name, 0)
            wait = f"  ({n} graded, {left} still to grade by hand)" if left else ""
            print(f"  {name:32} {shown} / {top:g}{wait}")
    print(
        f"grades written to {root / 'grade-table.csv'} (with a status per row), "
        f"{root / 'lms-grades.csv'} (for the LMS's gradebook import) and "
        f"{root / 'grades.csv'} (nbgrader's export); feedback in {root / 'feedback'}"
    )
    if not summary.sandboxed:
        print(NOT_ISOLATED)
