"""The instructor's commands: release exercises, grade submissions, export grades.

Run from the course repository (the folder with ``nbgrader_config.py``)::

    python -m seqlab.kit release            # solutions/ -> exercises/
    python -m seqlab.kit grade              # submitted/ -> autograded/, feedback/, grades.csv
    python -m seqlab.kit grade --zip downloads.zip --assignment rnn_gradients

``make release`` and ``make grade`` call these. Every step is nbgrader's own:
releasing, autograding (student code runs in nbgrader's kernels, one nbgrader
process per batch of submissions) and exporting run its command line;
recording assignments in the gradebook and writing feedback run its Python
API in this process, which saves nbgrader's start-up (about 3 s) per step.
This module only strings the steps together, checks what came in, and prints
a summary an instructor can act on.
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from tqdm.auto import tqdm

from seqlab.kit import sandbox


class CourseError(Exception):
    """A problem the instructor can fix; printed without a traceback."""


# The most one submission may take to grade, all cells together (seconds).
SUBMISSION_LIMIT = float(os.environ.get("SEQLAB_SUBMISSION_LIMIT", "900"))


def _nbgrader(
    root: Path,
    *args: str,
    check: bool = True,
    timeout: float | None = None,
    threads: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run one nbgrader command in the course root with this Python's tools on PATH."""
    env = dict(os.environ)
    # nbgrader calls alembic from PATH: make sure it finds this environment's.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(threads or {})
    # A session of its own, so that a timeout stops the kernel nbgrader started too.
    with subprocess.Popen(
        [*_DIE_WITH_PARENT, sys.executable, "-m", "nbgrader", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise
    proc = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    if check and proc.returncode != 0:
        raise CourseError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc


# nbgrader is killed when the process that started it dies (a grading run stopped
# with Ctrl-C or kill, a cluster worker lost): no orphan keeps writing grades. Its
# kernel follows (ipykernel exits when its parent goes).
_DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "KILL", "--") if shutil.which("setpriv") else ()


def find_root(start: Path | None = None) -> Path:
    """The course root: the nearest folder at or above ``start`` with nbgrader_config.py."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / "solutions").is_dir():
            return folder
    raise CourseError(f"no nbgrader_config.py with a solutions/ folder at or above {here}")


def assignments(root: Path) -> list[str]:
    """The assignment ids: one folder per chapter under solutions/."""
    folders = (p for p in (root / "solutions").iterdir() if p.is_dir())
    return sorted(p.name for p in folders if any(p.glob("*.ipynb")))


def release(root: Path, ids: list[str] | None = None) -> list[Path]:
    """Regenerate exercises/<id>/ from solutions/<id>/ with ``nbgrader generate_assignment``."""
    written = []
    for aid in ids or assignments(root):
        if not (root / "solutions" / aid).is_dir():
            raise CourseError(f"no assignment {aid!r} under solutions/ (have: {assignments(root)})")
        _nbgrader(root, "generate_assignment", aid, "--force")
        written.extend(sorted((root / "exercises" / aid).glob("*.ipynb")))
    return written


def sync_gradebook(root: Path, aid: str) -> bool:
    """Record ``aid``'s notebooks and grade cells in the gradebook, as autograde needs.

    Returns True when exercises/<aid>/ is what solutions/<aid>/ releases (False
    means exercises/ is out of date: run ``make release``). See :func:`sync_gradebooks`.
    """
    return not sync_gradebooks(root, [aid])


def sync_gradebooks(root: Path, ids: list[str]) -> list[str]:
    """Record each assignment's notebooks and grade cells in the gradebook; returns
    the ids whose exercises/ differ from what solutions/ releases.

    ``nbgrader generate_assignment`` runs into a scratch folder and a scratch
    gradebook first, so grading never rewrites exercises/; the course's gradebook
    is written only when it does not hold exactly those cells already (rewriting
    them while another grader autogrades would fail that grader's submissions).
    It runs in this process through nbgrader's Python API (a command line would
    pay nbgrader's start-up, about 3 s, for each of the two steps of each assignment).
    """
    stale = []
    with tempfile.TemporaryDirectory(prefix="seqlab-release-") as scratch:
        private = f"sqlite:///{scratch}/gradebook.db"
        for aid in ids:
            _generate(root, aid, f"{scratch}/release", private)
            fresh = Path(scratch) / "release" / aid
            up_to_date = all(
                (root / "exercises" / aid / nb.name).is_file()
                and (root / "exercises" / aid / nb.name).read_bytes() == nb.read_bytes()
                for nb in fresh.glob("*.ipynb")
            )
            if not up_to_date:
                stale.append(aid)
            if _recorded_cells(private, aid) != _recorded_cells(gradebook_url(root), aid):
                _generate(root, aid, f"{scratch}/shared")
    return stale


def _api(root: Path, **coursedir):
    """nbgrader's Python API (what its formgrader calls) on the course, configured by
    its nbgrader_config.py, which the API does not read by itself; ``coursedir``
    overrides CourseDirectory settings (release_directory, db_url)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    # a new gradebook asks alembic (from PATH) for its schema version
    tools = os.path.dirname(sys.executable)
    if tools not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = tools + os.pathsep + os.environ.get("PATH", "")
    config = _config(root)
    for name, value in coursedir.items():
        setattr(config.CourseDirectory, name, value)
    return NbGraderAPI(CourseDirectory(config=config), config=config)


def _generate(root: Path, aid: str, release_dir: str, db_url: str | None = None) -> None:
    """nbgrader generate_assignment into ``release_dir`` (and ``db_url``, when given)."""
    overrides = {"release_directory": release_dir, **({"db_url": db_url} if db_url else {})}
    for attempt in range(3):
        result = _api(root, **overrides).generate_assignment(aid, force=True)
        log = result.get("log", "") + result.get("error", "")
        # two graders starting at once on a new PostgreSQL gradebook both create
        # its tables: the one that loses that race finds them when it tries again
        if result["success"] or not _concurrent_write(log):
            break
        time.sleep(1 + attempt)
    if not result["success"]:
        raise CourseError(f"nbgrader generate_assignment {aid} failed:\n{log}")


def generate_feedback(root: Path, aid: str) -> None:
    """``nbgrader generate_feedback`` for every graded submission of ``aid`` (in this process)."""
    result = _api(root).generate_feedback(aid, force=True)
    if not result["success"]:
        log = result.get("log", "") + result.get("error", "")
        raise CourseError(f"nbgrader generate_feedback {aid} failed:\n{log}")


def _recorded_cells(db_url: str, aid: str) -> dict | None:
    """{notebook: {cell name: (source, checksum)}} that a gradebook records for ``aid``;
    None when it has no such assignment (or no tables yet)."""
    from nbgrader.api import Gradebook

    try:
        with Gradebook(db_url) as gb:
            return {
                nb.name: {c.name: (c.source, c.checksum) for c in nb.source_cells}
                for nb in gb.find_assignment(aid).notebooks
            }
    except Exception:  # MissingEntry, or a database without nbgrader's tables yet
        return None


# what a gradebook write that met another grader's says; the write is tried again
_CONCURRENT_WRITE = (
    "database is locked",  # SQLite: one writer at a time
    "UniqueViolation",  # PostgreSQL: both inserted the same new row
    "DuplicateObject",  # ... or created the same table or type
    "DuplicateTable",
    "DeadlockDetected",
)


def _concurrent_write(log: str) -> bool:
    return any(marker in log for marker in _CONCURRENT_WRITE)


def collect_zip(root: Path, zip_path: Path, aid: str) -> None:
    """Unpack a zip of LMS downloads into submitted/<student>/<aid>/ with ``nbgrader zip_collect``.

    File names follow the pattern set by ``FileNameCollectorPlugin.named_regexp``
    in nbgrader_config.py (Canvas's ``name_[LATE_]userid_subid_notebook.ipynb``).
    """
    if not zip_path.is_file():
        raise CourseError(f"zip file not found: {zip_path}")
    archive = root / "downloaded" / aid / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    shutil.copy2(zip_path, archive / zip_path.name)
    _nbgrader(root, "zip_collect", aid, "--force")


@dataclass
class Summary:
    """What one grading run did, for the instructor."""

    graded: list[tuple[str, str]] = field(default_factory=list)  # (assignment, student)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (assignment, student, why)
    notes: list[tuple[str, str, str]] = field(default_factory=list)  # graded, with a remark
    # graded by an earlier run and not resubmitted since: (assignment, student)
    unchanged: list[tuple[str, str]] = field(default_factory=list)
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


def submissions(root: Path, aid: str) -> list[str]:
    """Students with a submission folder for ``aid`` under submitted/."""
    base = root / "submitted"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / aid).is_dir())


GRADED_MARK = ".seqlab-graded.json"  # in autograded/<student>/<id>/, written after a success


def _fingerprint(root: Path, aid: str, student: str) -> dict[str, str]:
    """SHA-256 of every submitted notebook: what was graded, whatever the file times say."""
    folder = root / "submitted" / student / aid
    return {
        nb.name: hashlib.sha256(nb.read_bytes()).hexdigest()
        for nb in sorted(folder.glob("*.ipynb"))
    }


def is_graded(root: Path, aid: str, student: str) -> bool:
    """True when this exact submission was graded to the end by an earlier run.

    The mark is written only after nbgrader finished, so a run that was
    interrupted leaves the unfinished submissions ungraded and grading again
    resumes where it stopped; a resubmission (other content) is graded again.
    """
    mark = root / "autograded" / student / aid / GRADED_MARK
    try:
        return json.loads(mark.read_text()) == _fingerprint(root, aid, student)
    except (OSError, ValueError):
        return False


def _mark_graded(root: Path, aid: str, student: str, fingerprint: dict[str, str]) -> None:
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
    fingerprint = _fingerprint(root, aid, student)
    for _ in range(retries):
        started = time.time()
        try:
            proc = _nbgrader(
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
        if not _concurrent_write(log):
            break
    note = (
        "a cell ran past its time limit and was stopped" if "Interrupting kernel" in log else None
    )
    if proc.returncode == 0 and _graded_since(root, aid, student, started):
        _mark_graded(root, aid, student, fingerprint)
        return None, note
    why = _reason(log, proc.returncode)
    if why == _NO_NOTEBOOK:
        found = sorted(p.name for p in (root / "submitted" / student / aid).iterdir())
        why += f" (found: {', '.join(found) or 'nothing'}; rename it and grade again)"
    return why, note


def _graded_since(root: Path, aid: str, student: str, started: float) -> bool:
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


def _autograde_batch(
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
        proc = _nbgrader(
            root,
            *args,
            check=False,
            timeout=SUBMISSION_LIMIT * len(batch),
            threads=_threads_per_kernel(jobs) if threads is None else threads,
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
            for aid, student in [p for p in pending if _graded_since(root, *p, started)]:
                _mark_graded(root, aid, student, fingerprints[aid, student])
                pending.remove((aid, student))
                bar.update(1)
            if finished:
                return
            time.sleep(0.5)


def _notes_by_student(root: Path, aid: str, log: str) -> dict[str, str]:
    """Students whose part of a batch log shows a cell stopped at its time limit."""
    notes, student = {}, None
    marker = re.compile(re.escape(str(root / "submitted")) + r"/([^/]+)/" + re.escape(aid))
    for line in log.splitlines():
        if match := marker.search(line):
            student = match.group(1)
        elif "Interrupting kernel" in line and student:
            notes[student] = "a cell ran past its time limit and was stopped"
    return notes


def _threads_per_kernel(jobs: int) -> dict[str, str]:
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
        if students:
            todo[aid] = students
    summary.stale.extend(sync_gradebooks(root, list(todo)))
    batches = [
        (aid, students[i::jobs])
        for aid, students in todo.items()
        for i in range(min(jobs, len(students)))
    ]
    fingerprints = {
        (aid, s): _fingerprint(root, aid, s) for aid, people in todo.items() for s in people
    }
    started = time.time()
    logs = []
    if batches:
        workers = min(jobs, len(batches))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(_autograde_batch, root, aid, batch, everyone[aid], workers)
                for aid, batch in batches
            ]
            _watch(root, started, futures, fingerprints)
            logs = [future.result() for future in futures]
    for aid, students in todo.items():
        notes = _notes_by_student(root, aid, "\n".join(logs))
        retry = []
        for student in students:
            if _graded_since(root, aid, student, started):
                summary.graded.append((aid, student))
                if student in notes:
                    summary.notes.append((aid, student, notes[student]))
            else:
                retry.append(student)
        # what a batch could not finish is graded alone, which also tells why it fails
        for student in retry:
            why, note = autograde(root, aid, student, threads=_threads_per_kernel(1))
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
    _nbgrader(root, "export", "--to", str(root / "grades.csv"))
    return summary


MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def solution_answers(root: Path, aid: str) -> dict[str, str]:
    """grade_id -> what a student who knows the solution types into that answer cell:
    the solution cell of solutions/<aid>/<aid>.ipynb without its marker lines."""
    nb = nbformat.read(root / "solutions" / aid / f"{aid}.ipynb", as_version=4)
    return {
        cell.metadata["nbgrader"]["grade_id"]: "\n".join(
            line for line in cell.source.split("\n") if not any(m in line for m in MARKERS)
        )
        for cell in nb.cells
        if cell.metadata.get("nbgrader", {}).get("solution")
    }


@dataclass
class DemoSubmission:
    """One synthetic student of the demo class, and what grading should make of it."""

    student: str
    what: str  # what the submission does, for the report
    expected: float | None  # autograded points it should get; None = it should fail
    reason: str = ""  # for a failure: words the failure reason should contain


def _test_cells(nb) -> list:
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
    tests = _test_cells(source)
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
    _print_summary(dest, summary)
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


def _config(root: Path):
    """The traitlets Config of the course's nbgrader_config.py."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def gradebook_url(root: Path) -> str:
    """The gradebook's database URL, as the course's nbgrader_config.py sets it."""
    return _config(root).CourseDirectory.db_url


def item_means(root: Path, aid: str) -> dict[str, tuple[float, float, int]]:
    """grade_id -> (mean score, max score, submissions counted) over every submission
    of ``aid`` in the gradebook (one that failed to grade counts with 0 points)."""
    from nbgrader.api import Gradebook

    totals: dict[str, list[float]] = {}
    with Gradebook(gradebook_url(root)) as gb:
        for submission in gb.assignment_submissions(aid):
            for notebook in submission.notebooks:
                for g in notebook.grades:
                    totals.setdefault(g.name, [0.0, g.max_score, 0])
                    totals[g.name][0] += g.score
                    totals[g.name][2] += 1
    return {name: (total / count, top, count) for name, (total, top, count) in totals.items()}


def read_grades(root: Path) -> list[dict[str, str]]:
    """The rows of grades.csv as written by ``nbgrader export``."""
    with open(root / "grades.csv", newline="") as f:
        return list(csv.DictReader(f))


NOT_ISOLATED = (
    "WARNING: GRADED WITHOUT THE SANDBOX (--no-sandbox): the submissions' code ran as you, "
    "with your files, the gradebook and every other submission within its reach"
)


def _print_summary(root: Path, summary: Summary) -> None:
    if not summary.sandboxed:
        print(NOT_ISOLATED)
    for aid in summary.stale:
        print(
            f"warning: exercises/{aid} differs from what solutions/{aid} releases; run make release"
        )
    print(
        f"graded {len(summary.graded)} submission(s), {len(summary.failed)} failed, "
        f"{len(summary.unchanged)} unchanged since they were graded"
    )
    for aid, student, why in summary.failed:
        print(f"  FAILED {aid} / {student}: {why} (no autograded points)")
    for aid, student, note in summary.notes:
        print(f"  note   {aid} / {student}: {note}")
    rows = read_grades(root)
    if rows:
        print(f"{'assignment':16} {'student':20} {'score':>7} {'max':>5}")
        for row in rows:
            if row["student_id"] in {s for _, s in summary.graded + summary.unchanged}:
                print(
                    f"{row['assignment']:16} {row['student_id']:20} "
                    f"{float(row['score']):7.1f} {float(row['max_score']):5.0f}"
                )
    for aid in sorted({aid for aid, _ in summary.graded + summary.unchanged}):
        means = item_means(root, aid)
        count = max((n for _, _, n in means.values()), default=0)
        print(f"mean score per item of {aid}, over {count} submissions (failed ones count 0):")
        for name, (mean, top, _) in means.items():
            print(f"  {name:32} {mean:5.2f} / {top:g}")
    print(f"grades written to {root / 'grades.csv'}; feedback in {root / 'feedback'}")
    if not summary.sandboxed:
        print(NOT_ISOLATED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seqlab.kit", description=__doc__.split("\n")[0]
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
    p_demo = sub.add_parser("demo-class", help="grade a synthetic class and check every score")
    p_demo.add_argument("--dir", type=Path, default=Path("demo-class"), help="a new folder for it")
    p_demo.add_argument("--jobs", type=int, help="submissions graded at once (default: cores)")
    p_demo.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    args = parser.parse_args(argv)
    try:
        root = find_root()
        if args.command == "release":
            for path in release(root, args.ids or None):
                print(f"released {path.relative_to(root)}")
        elif args.command == "grade":
            if args.no_sandbox:  # nbgrader_config.py, here and in every nbgrader run, reads it
                os.environ[sandbox.NO_SANDBOX] = "1"
            if args.zip:
                if not args.assignment or len(args.assignment) != 1:
                    raise CourseError("--zip needs exactly one --assignment ID")
                collect_zip(root, args.zip, args.assignment[0])
            if args.cluster:
                from seqlab.kit import cluster

                summary, _ = cluster.grade(root, args.assignment, args.cluster, args.regrade)
            else:
                summary = grade(root, args.assignment, args.jobs, args.regrade)
            _print_summary(root, summary)
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
