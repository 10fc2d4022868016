"""A term on a JupyterHub, with nbgrader's own exchange, in scratch folders.

The instructor releases chapter 1 to a scratch exchange; three students, each
with a home folder and a Jupyter configuration of their own (the one the
course image puts in every student's server), fetch it; two submit, one of them
after the due date; the instructor collects, grades with ``make grade``'s code,
and releases the feedback, which each student fetches.

On a hub nbgrader knows a student by the login name of their server. Here
every process runs as the same OS user, so each student's configuration names
them (``CourseDirectory.student_id``), which nbgrader's exchange uses in place
of the login name for ``submit`` and ``fetch_feedback``.
"""

from __future__ import annotations

import csv
import datetime
import html
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from course_helpers import (
    cell_scores,
    env,
    fill,
    run,
    scratch_course,
    solution_answers,
)
from planted_bugs import PLANTED

pytestmark = [pytest.mark.hub, pytest.mark.grading]

AID = "rnn_gradients"
COURSE = "seqlab"  # CourseDirectory.course_id in nbgrader_config.py
STUDENTS = ("ada", "bob", "carol")  # carol fetches but never submits
WRITTEN, MANUAL_POINTS = "why_clip_answer", 2.0  # chapter 1's written answer, as marked


def _signature(student: str) -> str:
    return f"# written by {student}, nobody else's work"


def _student_env(home: Path) -> dict[str, str]:
    e = env() | {"HOME": str(home)}
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        e.pop(var, None)
    return e


def student(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``nbgrader <args>`` as the student whose home folder is ``home``."""
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=home,
        env=_student_env(home),
        capture_output=True,
        text=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{home.name}: nbgrader {' '.join(args)}:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    t0 = time.perf_counter()
    base = tmp_path_factory.mktemp("hub")
    exchange = base / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)  # as the guide says: every user writes there
    root = scratch_course(base / "instructor" / "course")
    # what the guide tells the instructor to add to nbgrader_config.py
    with open(root / "nbgrader_config.py", "a") as f:
        f.write(f'\nc.Exchange.root = "{exchange}"\n')
    homes = {}
    for name in STUDENTS:
        home = homes[name] = base / "home" / name
        (home / ".jupyter").mkdir(parents=True)
        # what the course image puts in /etc/jupyter/nbgrader_config.py; the hub's
        # login name is the student id, here set by hand
        (home / ".jupyter" / "nbgrader_config.py").write_text(
            "c = get_config()  # noqa: F821\n"
            f'c.Exchange.root = "{exchange}"\n'
            f'c.CourseDirectory.course_id = "{COURSE}"\n'
            f'c.CourseDirectory.student_id = "{name}"\n'
        )

    run(root, "seqlab.course", "release", AID)  # the gradebook learns the assignment
    run(root, "nbgrader", "release_assignment", AID)
    listed = {}
    for name, home in homes.items():
        proc = student(home, "list")
        listed[name] = proc.stdout + proc.stderr
    for home in homes.values():
        student(home, "fetch_assignment", AID)

    answers = solution_answers(AID)
    bug = next(iter(PLANTED[AID]["clip_grad_norm"].values()))
    work = {"ada": answers, "bob": answers | {"clip_grad_norm": bug}}

    def do_and_submit(name: str) -> None:
        path = homes[name] / AID / f"{AID}.ipynb"
        nb = nbformat.read(path, as_version=4)
        signed = {k: _signature(name) + "\n" + v for k, v in work[name].items()}
        nbformat.write(fill(nb, signed), path)
        student(homes[name], "submit", AID)

    do_and_submit("ada")
    # the due date falls between ada's submission and bob's
    due = datetime.datetime.now(datetime.timezone.utc)
    run(root, "nbgrader", "db", "assignment", "add", AID, f"--duedate={due.isoformat()}")
    time.sleep(1.5)
    do_and_submit("bob")

    collected = run(root, "nbgrader", "collect", AID)
    graded = run(root, "seqlab.course", "grade", "--assignment", AID)
    # the instructor marks ada's written answer in the formgrader, which stores
    # the points in the gradebook, and runs `make grade` again for the feedback
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        gb.find_grade(WRITTEN, AID, AID, "ada").manual_score = MANUAL_POINTS
        gb.db.commit()
    regraded = run(root, "seqlab.course", "grade", "--assignment", AID)
    run(root, "nbgrader", "release_feedback", AID)
    fetched = {name: student(home, "fetch_feedback", AID) for name, home in homes.items()}
    print(
        f"\n[timing] a term on the hub, {len(STUDENTS)} students: {time.perf_counter() - t0:.1f}s"
    )
    return {
        "root": root,
        "exchange": exchange / COURSE,
        "homes": homes,
        "listed": listed,
        "collected": collected.stdout + collected.stderr,
        "graded": graded.stdout,
        "regraded": regraded.stdout,
        "fetched": fetched,
        "due": due,
    }


def test_release_reaches_every_student_as_released(term):
    released = (term["root"] / "exercises" / AID / f"{AID}.ipynb").read_bytes()
    assert (term["exchange"] / "outbound" / AID / f"{AID}.ipynb").read_bytes() == released
    for name, home in term["homes"].items():
        assert f"{COURSE} {AID}" in term["listed"][name]
        assert (home / AID / f"{AID}.ipynb").is_file()


def test_collect_brings_in_exactly_the_submissions_under_their_students(term):
    submitted = term["root"] / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == ["ada", "bob"]
    for name in ("ada", "bob"):
        folder = submitted / name / AID
        assert (folder / "timestamp.txt").is_file()
        nb = (folder / f"{AID}.ipynb").read_text()
        assert _signature(name) in nb
        other = "bob" if name == "ada" else "ada"
        assert _signature(other) not in nb


def test_scores_land_in_the_gradebook_and_grades_csv(term):
    root = term["root"]
    ada, bob = cell_scores(root, AID, "ada"), cell_scores(root, AID, "bob")
    auto = lambda s: sum(v for k, (v, _) in s.items() if k.startswith("test_"))  # noqa: E731
    full = sum(m for k, (_, m) in ada.items() if k.startswith("test_"))
    assert full > 0 and auto(ada) == full
    assert bob["test_clip_grad_norm"][0] == 0 and auto(bob) == full - bob["test_clip_grad_norm"][1]
    with open(root / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f) if r["assignment"] == AID}
    # ada's score includes the points of her written answer, given by hand
    assert float(rows["ada"]["score"]) == auto(ada) + MANUAL_POINTS == full + MANUAL_POINTS
    assert float(rows["bob"]["score"]) == auto(bob)
    assert "graded 2 submission(s), 0 failed" in term["graded"]
    assert "graded 0 submission(s), 0 failed, 2 unchanged" in term["regraded"]


def test_the_late_submission_is_flagged_late_and_the_other_is_not(term):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{term['root'] / 'gradebook.db'}") as gb:
        assignment = gb.find_assignment(AID)
        assert assignment.duedate is not None
        ada, bob = gb.find_submission(AID, "ada"), gb.find_submission(AID, "bob")
        assert ada.total_seconds_late == 0
        assert bob.total_seconds_late > 0
        assert ada.timestamp < assignment.duedate < bob.timestamp


def test_each_student_fetches_their_own_feedback_and_nobody_elses(term):
    homes = term["homes"]
    with open(term["root"] / "grades.csv", newline="") as f:
        grades = {
            r["student_id"]: (float(r["score"]), float(r["max_score"])) for r in csv.DictReader(f)
        }
    for name in ("ada", "bob"):
        files = sorted((homes[name] / AID / "feedback").rglob("*.html"))
        assert [f.name for f in files] == [f"{AID}.html"], term["fetched"][name].stderr
        page = files[0].read_text()
        other = "bob" if name == "ada" else "ada"
        assert _signature(name) in page and _signature(other) not in page
        assert "BEGIN HIDDEN TESTS" not in page
        # the score at the top is the final one (ada's with her written answer's points)
        score, top = grades[name]
        assert f"{AID} (Score: {round(score, 2)} / {round(top, 2)})" in page
        # the same file the instructor's feedback/ holds for this student
        ours = term["root"] / "feedback" / name / AID / f"{AID}.html"
        assert page == ours.read_text()
    # carol submitted nothing and gets nothing
    assert not (homes["carol"] / AID / "feedback").exists()


def test_no_student_can_see_another_students_files(term):
    homes, exchange = term["homes"], term["exchange"]
    for name, home in homes.items():
        others = [_signature(o) for o in homes if o != name]
        for path in home.rglob("*"):
            if path.is_file():
                text = path.read_text(errors="replace")
                assert not any(o in text for o in others), f"{name} holds {path}"
                assert not any(o in path.name for o in homes if o != name), path
    # the exchange's inbox and feedback folders can be entered but not listed by
    # others; submissions are found by name (student+assignment+time+random),
    # feedback by a hash keyed by a secret only the submitter holds
    for folder in ("inbound", "feedback"):
        mode = (exchange / folder).stat().st_mode
        assert not mode & stat.S_IROTH and mode & stat.S_IXOTH, f"{folder}: {oct(mode)}"
    names = [p.name for p in (exchange / "feedback").iterdir()]
    assert len(names) == 2 and not any(s in n for s in homes for n in names)
    assert all(len(Path(n).stem) >= 32 for n in names)


def test_grading_on_the_hub_leaves_no_hidden_test_in_anything_a_student_got(term):
    from course_helpers import secret_lines

    answers = "\n".join(solution_answers(AID).values())
    hidden = {ln for ln in secret_lines(AID) if ln not in answers}
    for home in term["homes"].values():
        for path in home.rglob("*.*"):
            if path.suffix in (".ipynb", ".html"):
                text = path.read_text()
                if path.suffix == ".html":
                    text = html.unescape(re.sub(r"<[^>]+>", "", text))
                assert not [ln for ln in hidden if ln in text], path
    assert len(hidden) > 20  # there is something to look for
