"""The course folder and nbgrader: assignments, release, the gradebook, grades.csv.

Run from the course repository (the folder with ``nbgrader_config.py``); the
commands are ``python -m seqlab.kit release|grade|demo-class`` (:mod:`seqlab.kit.cli`),
which ``make release``, ``make grade`` and ``make demo-class`` call.

Every step is nbgrader's own. Autograding and collecting a zip run its command
line (:func:`run_nbgrader`: student code runs in nbgrader's kernels, under a
process that can be stopped); releasing, recording assignments in the
gradebook, writing feedback and exporting grades run its Python API in this
process (:func:`api`), which saves nbgrader's start-up (about 3 s) per step.
Grading itself, which strings these steps together, is :mod:`seqlab.kit.grade`.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import nbformat
from nbgrader.api import Gradebook
from nbgrader.apps import ExportApp, NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config.loader import PyFileConfigLoader


class CourseError(Exception):
    """A problem the instructor can fix; printed without a traceback."""


# What a released notebook installs where seqlab is missing (Colab, a fresh kernel): the
# course repository at this term's release tag, never its moving main branch. It is the
# one place to change each term (and push that tag): `make release` writes it into the
# setup cell of every solutions/<id>/ notebook, and so into exercises/ and the gradebook.
COURSE_REPOSITORY = "https://github.com/seqlab-course/sequence-models"
COURSE_REF = "v0.1.0"
COURSE_REQUIREMENT = f"seqlab @ git+{COURSE_REPOSITORY}@{COURSE_REF}"
# that requirement in a setup cell, with whatever reference it had (or none)
_REQUIREMENT = re.compile(r"seqlab @ git\+" + re.escape(COURSE_REPOSITORY) + r"(?:@[^\s\"'\\]*)?")

# The most one submission may take to grade, all cells together (seconds).
SUBMISSION_LIMIT = float(os.environ.get("SEQLAB_SUBMISSION_LIMIT", "900"))

# nbgrader is killed when the process that started it dies (a grading run stopped
# with Ctrl-C or kill, a cluster worker lost): no orphan keeps writing grades. Its
# kernel follows (ipykernel exits when its parent goes).
DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "KILL", "--") if shutil.which("setpriv") else ()


def run_nbgrader(
    root: Path,
    *args: str,
    check: bool = True,
    timeout: float | None = None,
    threads: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run one nbgrader command in the course root with this Python's tools on PATH.

    ``threads``: extra environment variables (the kernels' thread counts). A run
    past ``timeout`` seconds is killed, kernel included, and raises TimeoutExpired.
    """
    env = dict(os.environ)
    # nbgrader calls alembic from PATH: make sure it finds this environment's.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(threads or {})
    # hidden tests run on the CPU alone when grading (seqlab.grading.devices), so that a
    # notebook scores the same on graders with and without a GPU; the instructor may set
    # SEQLAB_GRADING_DEVICES=cpu,cuda to test on CUDA as well
    env.setdefault("SEQLAB_GRADING_DEVICES", "cpu")
    # A session of its own, so that a timeout stops the kernel nbgrader started too.
    with subprocess.Popen(
        [*DIE_WITH_PARENT, sys.executable, "-m", "nbgrader", *args],
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


def submissions(root: Path, aid: str) -> list[str]:
    """Students with a submission folder for ``aid`` under submitted/."""
    base = root / "submitted"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / aid).is_dir())


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


def release(root: Path, ids: list[str] | None = None) -> list[Path]:
    """Regenerate exercises/<id>/ from solutions/<id>/ with nbgrader's generate_assignment
    (which records the assignment in the gradebook too), after pinning the solutions'
    setup cells to :data:`COURSE_REF`; returns the notebooks written."""
    written = []
    for aid in ids or assignments(root):
        if not (root / "solutions" / aid).is_dir():
            raise CourseError(f"no assignment {aid!r} under solutions/ (have: {assignments(root)})")
        for notebook in (root / "solutions" / aid).glob("*.ipynb"):
            pin_course_requirement(notebook)
        _generate(root, aid, str(root / "exercises"))
        written.extend(sorted((root / "exercises" / aid).glob("*.ipynb")))
    return written


def pin_course_requirement(notebook: Path) -> bool:
    """Make the notebook's setup cell install :data:`COURSE_REQUIREMENT` (the file's other
    bytes kept as they are); returns whether the file changed."""
    text = notebook.read_bytes().decode("utf-8")
    pinned = _REQUIREMENT.sub(COURSE_REQUIREMENT, text)
    if pinned == text:
        return False
    notebook.write_bytes(pinned.encode("utf-8"))
    return True


@dataclass
class Collected:
    """What one LMS zip gave: the submissions taken and the files left, with why."""

    # user id -> name, late (the LMS's marker), file, submitted (UTC, "" when unknown)
    students: dict[str, dict] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file in the zip, why)


LMS_TIMEZONE = "SEQLAB_LMS_TIMEZONE"  # the zone of the LMS zip's file times (default UTC)
TIMESTAMP = "timestamp.txt"  # nbgrader's submission time, in submitted/<student>/<id>/


def lms_zone(name: str | None = None) -> ZoneInfo:
    """The time zone of an LMS zip's file times: ``name``, else $SEQLAB_LMS_TIMEZONE,
    else UTC (an IANA name such as ``Europe/Berlin``)."""
    name = name if name is not None else os.environ.get(LMS_TIMEZONE, "")
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise CourseError(
            f"{LMS_TIMEZONE}={name!r} is not a time zone: name one like Europe/Berlin "
            "(the LMS's), or unset it for UTC"
        ) from None


def submission_time(info: zipfile.ZipInfo, zone: ZoneInfo) -> datetime | None:
    """When a file of an LMS zip was submitted, in UTC without a zone (as nbgrader
    keeps times): the LMS sets each entry's modification time to the submission's; a
    zip's times carry no zone, so they are read in ``zone``. None where the entry has
    no time (the zip format's earliest, 1980-01-01 00:00, which tools write for none)."""
    if info.date_time[:3] == (1980, 1, 1) and not any(info.date_time[3:]):
        return None
    local = datetime(*info.date_time, tzinfo=zone)
    return local.astimezone(UTC).replace(tzinfo=None)


def collect_zip(root: Path, zip_path: Path, aid: str) -> Collected:
    """Unpack a zip of LMS downloads into submitted/<user id>/<aid>/ with ``nbgrader
    zip_collect``, the students' names into the gradebook, and report every file left.

    File names follow ``FileNameCollectorPlugin.named_regexp`` in nbgrader_config.py
    (Canvas: ``name_[LATE_]userid_submissionid_notebook[-N][ (N)].ipynb``): the LMS
    user id is the student id, so two students with one name stay two; the name
    (the ``first_name`` group) is kept for display. Of one student's several files
    for one notebook the latest submission (the highest submission id) is taken.
    The zip replaces the previous one (kept under downloaded/<aid>/zips/), so next
    week's zip never meets this week's. The LMS's late marker, the name and the
    submission time (:func:`submission_time`) are kept in downloaded/<aid>/lms.json (a
    later zip updates the students it has); the time goes to nbgrader too, as
    submitted/<user id>/<aid>/timestamp.txt, which autograde records in the gradebook
    and measures against the due date and the student's extension.
    """
    if not zip_path.is_file():
        raise CourseError(f"zip file not found: {zip_path}")
    zone = lms_zone()
    pattern = re.compile(config(root).FileNameCollectorPlugin.named_regexp)
    released = {p.name for p in (root / "exercises" / aid).glob("*.ipynb")} or {f"{aid}.ipynb"}
    collected, chosen = Collected(), {}
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise CourseError(f"{zip_path} is not a zip file") from None
    with archive:
        for info in archive.infolist():
            name = info.filename
            if info.is_dir() or "__MACOSX" in name:
                continue
            match = pattern.match("extracted/" + Path(name).name)
            if not name.endswith(".ipynb"):
                collected.skipped.append((name, "not a notebook"))
            elif match is None:
                collected.skipped.append((name, "its name does not fit the LMS pattern"))
            elif f"{match['file_id']}.ipynb" not in released:
                why = f"not a notebook of {aid} (expected {', '.join(sorted(released))})"
                collected.skipped.append((name, why))
            else:
                key = (match["student_id"], match["file_id"])
                order = (int(match.groupdict().get("submission") or 0), name)
                if key in chosen and chosen[key][0] > order:
                    collected.skipped.append((name, "an older submission of the same student"))
                    continue
                if key in chosen:
                    collected.skipped.append(
                        (chosen[key][1]["file"], "an older submission of the same student")
                    )
                groups = match.groupdict()
                when = submission_time(info, zone)
                chosen[key] = (
                    order,
                    {
                        "name": groups.get("first_name") or match["student_id"],
                        "late": bool(groups.get("late")),
                        "file": name,
                        "submitted": f"{when:%Y-%m-%d %H:%M:%S} UTC" if when else "",
                    },
                )
        downloaded = root / "downloaded" / aid
        for folder in ("archive", "extracted"):  # the previous zip's files go
            shutil.rmtree(downloaded / folder, ignore_errors=True)
        (downloaded / "archive").mkdir(parents=True)
        for (student, _), (_, record) in sorted(chosen.items()):
            target = downloaded / "archive" / Path(record["file"]).name
            target.write_bytes(archive.read(record["file"]))
            collected.students[student] = record
    (downloaded / "zips").mkdir(exist_ok=True)
    shutil.copy2(zip_path, downloaded / "zips" / zip_path.name)
    # what earlier zips said of the students this one does not have stays
    try:
        known = json.loads((downloaded / "lms.json").read_text())
    except (OSError, ValueError):
        known = {}
    known.update(collected.students)
    (downloaded / "lms.json").write_text(json.dumps(known, indent=1, ensure_ascii=False))
    if collected.students:
        run_nbgrader(root, "zip_collect", aid, "--force")
        for student, record in collected.students.items():
            if record["submitted"]:  # nbgrader's format: the UTC time, no zone
                stamp = record["submitted"].removesuffix(" UTC")
                (root / "submitted" / student / aid / TIMESTAMP).write_text(stamp)
        with Gradebook(gradebook_url(root)) as gb:
            for student, record in collected.students.items():
                gb.update_or_create_student(student, last_name=record["name"])
    return collected


def lms_records(root: Path, aid: str) -> dict[str, dict]:
    """What the LMS zips said of each student's last file for ``aid`` (user id -> name,
    late, file, submitted: see :class:`Collected`); empty without a zip."""
    try:
        return json.loads((root / "downloaded" / aid / "lms.json").read_text())
    except (OSError, ValueError):
        return {}


def late_in_lms(root: Path, aid: str) -> set[str]:
    """The students whose last collected LMS file for ``aid`` was marked late."""
    return {student for student, record in lms_records(root, aid).items() if record.get("late")}


# --- nbgrader's configuration and Python API --------------------------------------------


def config(root: Path):
    """The traitlets Config of the course's nbgrader_config.py."""
    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def gradebook_url(root: Path) -> str:
    """The gradebook's database URL, as the course's nbgrader_config.py sets it."""
    return config(root).CourseDirectory.db_url


def api(root: Path, **coursedir) -> NbGraderAPI:
    """nbgrader's Python API (what its formgrader calls) on the course, configured by
    its nbgrader_config.py, which the API does not read by itself; ``coursedir``
    overrides CourseDirectory settings (release_directory, db_url)."""
    # a new gradebook asks alembic (from PATH) for its schema version
    tools = os.path.dirname(sys.executable)
    if tools not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = tools + os.pathsep + os.environ.get("PATH", "")
    settings = config(root)
    for name, value in coursedir.items():
        setattr(settings.CourseDirectory, name, value)
    return NbGraderAPI(CourseDirectory(config=settings), config=settings)


# what a gradebook write that met another grader's says; the write is tried again
CONCURRENT_WRITE = (
    "database is locked",  # SQLite: one writer at a time
    "UniqueViolation",  # PostgreSQL: both inserted the same new row
    "DuplicateObject",  # ... or created the same table or type
    "DuplicateTable",
    "DeadlockDetected",
)


def concurrent_write(log: str) -> bool:
    """Whether an nbgrader log shows a gradebook write that met another grader's."""
    return any(marker in log for marker in CONCURRENT_WRITE)


def _generate(root: Path, aid: str, release_dir: str, db_url: str | None = None) -> None:
    """nbgrader generate_assignment into ``release_dir`` (and ``db_url``, when given)."""
    overrides = {"release_directory": release_dir, **({"db_url": db_url} if db_url else {})}
    for attempt in range(3):
        result = api(root, **overrides).generate_assignment(aid, force=True)
        log = result.get("log", "") + result.get("error", "")
        # two graders starting at once on a new PostgreSQL gradebook both create
        # its tables: the one that loses that race finds them when it tries again
        if result["success"] or not concurrent_write(log):
            break
        time.sleep(1 + attempt)
    if not result["success"]:
        raise CourseError(f"nbgrader generate_assignment {aid} failed:\n{log}")


def _recorded_cells(db_url: str, aid: str) -> dict | None:
    """{notebook: {cell name: (source, checksum)}} that a gradebook records for ``aid``;
    None when it has no such assignment (or no tables yet)."""
    try:
        with Gradebook(db_url) as gb:
            return {
                nb.name: {c.name: (c.source, c.checksum) for c in nb.source_cells}
                for nb in gb.find_assignment(aid).notebooks
            }
    except Exception:  # MissingEntry, or a database without nbgrader's tables yet
        return None


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


def generate_feedback(root: Path, aid: str) -> None:
    """``nbgrader generate_feedback`` for every graded submission of ``aid`` (in this process)."""
    result = api(root).generate_feedback(aid, force=True)
    if not result["success"]:
        log = result.get("log", "") + result.get("error", "")
        raise CourseError(f"nbgrader generate_feedback {aid} failed:\n{log}")


def export_grades(root: Path) -> Path:
    """What ``nbgrader export --to grades.csv`` does (its exporter, CSV unless the
    config names another), in this process; returns the file's path."""
    settings, path = config(root), root / "grades.csv"
    exporter = ExportApp(config=settings).plugin_class(config=settings, to=str(path))
    course = settings.CourseDirectory
    with Gradebook(course.db_url, course.course_id) as gb:
        exporter.export(gb)
    return path


def read_grades(root: Path) -> list[dict[str, str]]:
    """The rows of grades.csv as written by ``nbgrader export``."""
    with open(root / "grades.csv", newline="") as f:
        return list(csv.DictReader(f))


def _item_grades(root: Path, aid: str):
    """(grade_id, max score, score) for every grade of every submission of ``aid`` in the
    gradebook; the score is None for a written answer still waiting for its hand grade
    (nbgrader counts it as 0)."""
    with Gradebook(gradebook_url(root)) as gb:
        for submission in gb.assignment_submissions(aid):
            for notebook in submission.notebooks:
                written = {cell.name for cell in notebook.notebook.solution_cells}
                for g in notebook.grades:
                    waits = g.name in written and g.manual_score is None and g.auto_score is None
                    yield g.name, g.max_score, None if waits else g.score


def item_means(root: Path, aid: str) -> dict[str, tuple[float | None, float, int]]:
    """grade_id -> (mean score, max score, submissions counted) over every submission
    of ``aid`` in the gradebook. One that failed to grade counts with 0 points; a
    written answer still waiting for its hand grade is not counted (the mean is None
    while none is graded): :func:`hand_waiting` counts those."""
    totals: dict[str, list] = {}
    for name, top, score in _item_grades(root, aid):
        total = totals.setdefault(name, [0.0, top, 0])
        if score is not None:
            total[0] += score
            total[2] += 1
    return {
        name: (total / count if count else None, top, count)
        for name, (total, top, count) in totals.items()
    }


def hand_waiting(root: Path, aid: str) -> dict[str, int]:
    """grade_id -> how many submissions of ``aid`` have that written answer still waiting
    for its hand grade (the formgrader's); only the items with some."""
    waiting: dict[str, int] = {}
    for name, _, score in _item_grades(root, aid):
        if score is None:
            waiting[name] = waiting.get(name, 0) + 1
    return waiting


def mark_scheme(root: Path, aid: str) -> list[tuple[str, float, str]]:
    """(grade_id, points, mark scheme) for every answer graded by hand (a grade cell that
    is also a solution cell) of solutions/<aid>/<aid>.ipynb, in the notebook's order: the
    text between its solution markers, the mark scheme and the model answer, which the
    formgrader does not show beside the student's answer."""
    path = root / "solutions" / aid / f"{aid}.ipynb"
    if not path.is_file():
        raise CourseError(f"no assignment {aid!r} under solutions/ (have: {assignments(root)})")
    scheme = []
    for cell in nbformat.read(path, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if not (meta.get("grade") and meta.get("solution")):
            continue
        inside, within = [], MARKERS[0] not in cell.source  # no markers: the whole cell
        for line in cell.source.split("\n"):
            if MARKERS[0] in line or MARKERS[1] in line:
                within = MARKERS[0] in line
            elif within:
                inside.append(line)
        scheme.append((meta["grade_id"], float(meta.get("points", 0)), "\n".join(inside).strip()))
    return scheme
