"""A term on a JupyterHub, with nbgrader's own exchange and a real OS user per student.

The instructor releases chapter 1 to a scratch exchange; three students fetch it;
two submit, one of them after the due date; the instructor collects, grades with
``make grade``'s code, and releases the feedback, which each student fetches.

As on a hub with one Linux account per user (The Littlest JupyterHub), every
student is an OS user created for this module, with a home folder of mode 0700
and the Jupyter configuration the course image gives every student, and each of
their nbgrader commands runs as that user (``setpriv``): nbgrader takes the
student id from the login name, and the kernel's permission checks are the only
thing that keeps one student from another's files. The instructor is root, with
the course folder private to it. The exchange is set up as book/instructors.md
says: a folder every user can write, with the sticky bit (mode 1777).

Creating users needs root (CI runs as root); as another user the module is skipped.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import functools
import html
import json
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from course_helpers import (
    cell_scores,
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
TOOLS = ("useradd", "userdel", "setpriv", "unshare", "mount")


def _signature(student: str) -> str:
    return f"# written by {student}, nobody else's work"


def _hidden_ancestor(path: Path) -> Path | None:
    """The outermost folder on the way to ``path`` that other users may not enter, or None."""
    for folder in reversed(path.parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def _reach_python(stage: Path) -> list[str]:
    """A command prefix under which other users can run this Python, or [] if they can already.

    The interpreter may sit in a folder other users cannot enter (pyenv's under a
    0700 /root, or a clone in root's home). The prefix runs the command in a mount
    namespace of its own, where that folder is an empty tmpfs with only the Python
    trees mounted back at their own paths: the student sees the interpreter and
    nothing else of the folder, and nothing changes on the machine.
    """
    trees = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    trees = {t for t in trees if not any(o in t.parents for o in trees)}
    hidden = {t: a for t in sorted(trees) if (a := _hidden_ancestor(t)) is not None}
    if not hidden:
        return []
    for tree in hidden:
        if stat.S_IMODE(tree.stat().st_mode) & 0o005 != 0o005:
            pytest.skip(f"{tree} (this Python) is not readable by other users")
    q = shlex.quote
    staged = {str(tree): str(stage / str(i)) for i, tree in enumerate(hidden)}
    lines = []
    for tree, folder in staged.items():  # first, while the trees can be reached
        Path(folder).mkdir(parents=True)
        lines.append(f"mount --bind {q(tree)} {q(folder)}")
    for ancestor in sorted(set(hidden.values())):
        lines.append(f"mount -t tmpfs -o mode=0755 tmpfs {q(str(ancestor))}")
    for tree, folder in staged.items():
        lines += [f"mkdir -p {q(tree)}", f"mount --bind {q(folder)} {q(tree)}"]
    lines.append('exec "$@"')
    script = "\n".join(lines)
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-ec", script, "sh"]


@dataclasses.dataclass
class Hub:
    """Scratch folders and the students' OS users."""

    base: Path  # every user can enter it; removed at the end
    exchange: Path  # Exchange.root
    logins: dict[str, str]  # student -> login name, which nbgrader takes as student id
    homes: dict[str, Path]
    reach: list[str]  # see _reach_python

    def command(self, name: str, argv: list[str]) -> list[str]:
        """``argv``, run as student ``name``'s OS user (its uid, gid and groups)."""
        login = self.logins[name]
        drop = ["setpriv", f"--reuid={login}", f"--regid={login}", "--init-groups", "--"]
        return [*self.reach, *drop, *argv]

    def env(self, name: str) -> dict[str, str]:
        """A student's session: their home and login name, this Python's bin on PATH."""
        login = self.logins[name]
        return {
            "HOME": str(self.homes[name]),
            "USER": login,
            "LOGNAME": login,
            "JUPYTERHUB_USER": login,
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]),
            "LANG": "C.UTF-8",
        }

    def uid(self, name: str) -> int:
        return pwd.getpwnam(self.logins[name]).pw_uid


def together(*calls):
    """Run the calls (functions of no argument) at once; their results, in order.
    What the students do side by side takes one nbgrader start-up, not one each."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [f.result() for f in [pool.submit(call) for call in calls]]


def every_student(hub: Hub, *args: str) -> dict[str, subprocess.CompletedProcess]:
    """``nbgrader <args>`` run by every student at once, as on a hub."""
    procs = together(*(functools.partial(student, hub, name, *args) for name in STUDENTS))
    return dict(zip(STUDENTS, procs, strict=True))


def student(hub: Hub, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``nbgrader <args>`` as student ``name``'s OS user, in their home."""
    proc = subprocess.run(
        hub.command(name, [sys.executable, "-m", "nbgrader", *args]),
        cwd=hub.homes[name],
        env=hub.env(name),
        capture_output=True,
        text=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{name}: nbgrader {' '.join(args)}:\n{proc.stderr}")
    return proc


# What a student's process gets back when it tries each (operation, path).
ATTEMPT = """
import json, os, sys

def attempt(op, path):
    try:
        if op == "list":
            os.listdir(path)
        elif op == "read":
            open(path, "rb").read()
        elif op == "write":
            open(path, "r+b").close()
        elif op == "create":
            open(path, "xb").close()
        elif op == "remove":
            os.remove(path)
        elif op == "rename":
            os.rename(path, path + ".moved")
        elif op == "can-write" and not os.access(path, os.W_OK):
            raise PermissionError(path)
        return "done"
    except OSError as e:
        return type(e).__name__

print(json.dumps([attempt(op, path) for op, path in json.loads(sys.argv[1])]))
"""


def attempts(hub: Hub, name: str, tries: list[tuple[str, Path]]) -> list[str]:
    """Try each (operation, path) as student ``name``: "done" or the error's name."""
    argv = [sys.executable, "-c", ATTEMPT, json.dumps([(op, str(path)) for op, path in tries])]
    proc = subprocess.run(
        hub.command(name, argv),
        cwd=hub.homes[name],
        env=hub.env(name),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def _useradd(login: str, home: Path) -> None:
    for _ in range(10):  # another process may hold /etc/passwd's lock for a moment
        proc = subprocess.run(
            ["useradd", "--user-group", "--no-create-home", "--home-dir", str(home),
             "--shell", "/usr/sbin/nologin", login],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 10:  # 10: cannot lock the password file
            break
        time.sleep(0.5)
    if proc.returncode != 0:
        raise RuntimeError(f"useradd {login}: {proc.stderr}")


@pytest.fixture(scope="module")
def hub():
    """An exchange, one OS user per student with a private home; all removed at the end."""
    if os.geteuid() != 0:
        pytest.skip("creates an OS user per student, which needs root: run as root (CI does)")
    if missing := [t for t in TOOLS if shutil.which(t) is None]:
        pytest.skip(f"needs {', '.join(missing)} (util-linux, passwd) to run students as OS users")
    # not under pytest's tmp_path, which is private to root: the students must enter it
    base = Path(tempfile.mkdtemp(prefix="seqlab-hub-"))
    created = []
    try:
        base.chmod(0o755)
        if _hidden_ancestor(base) is not None:
            pytest.skip(f"other users cannot enter {base}'s parents: set TMPDIR")
        exchange = base / "exchange"
        exchange.mkdir()
        exchange.chmod(0o1777)  # as the guide says: everyone writes, nobody moves others' files
        tag = base.name.rsplit("-", 1)[-1].lower().replace("_", "0")
        logins = {name: f"sqhub{tag}-{name}" for name in STUDENTS}
        homes = {}
        for name, login in logins.items():
            home = homes[name] = base / "home" / login
            _useradd(login, home)
            created.append(login)
            # what the course image puts in /etc/jupyter/nbgrader_config.py; nbgrader takes
            # the student id from the login name
            (home / ".jupyter").mkdir(parents=True)
            (home / ".jupyter" / "nbgrader_config.py").write_text(
                "c = get_config()  # noqa: F821\n"
                f'c.Exchange.root = "{exchange}"\n'
                f'c.CourseDirectory.course_id = "{COURSE}"\n'
            )
            for path in (home, home / ".jupyter", home / ".jupyter" / "nbgrader_config.py"):
                shutil.chown(path, login, login)
            home.chmod(0o700)
        yield Hub(base, exchange, logins, homes, _reach_python(base / "stage"))
    finally:
        failed = [
            f"{login}: {p.stderr}"
            for login in created
            if (p := subprocess.run(["userdel", login], capture_output=True, text=True)).returncode
        ]
        shutil.rmtree(base, ignore_errors=True)
        assert not failed, f"could not remove the test's users: {failed}"


@pytest.fixture(scope="module")
def term(hub):
    t0 = time.perf_counter()
    instructor = hub.base / "instructor"  # root's, like the instructor's home on a hub
    instructor.mkdir(mode=0o700)
    root = scratch_course(instructor / "course")
    # what the guide tells the instructor to add to nbgrader_config.py
    with open(root / "nbgrader_config.py", "a") as f:
        f.write(f'\nc.Exchange.root = "{hub.exchange}"\n')
    logins, homes = hub.logins, hub.homes

    run(root, "seqlab.kit", "release", AID)  # the gradebook learns the assignment
    run(root, "nbgrader", "release_assignment", AID)
    listed = {name: p.stdout + p.stderr for name, p in every_student(hub, "list").items()}
    every_student(hub, "fetch_assignment", AID)

    answers = solution_answers(AID)
    bug = next(iter(PLANTED[AID]["clip_grad_norm"].values()))
    work = {"ada": answers, "bob": answers | {"clip_grad_norm": bug}}

    def do_and_submit(name: str) -> None:
        path = homes[name] / AID / f"{AID}.ipynb"
        nb = nbformat.read(path, as_version=4)
        signed = {k: _signature(name) + "\n" + v for k, v in work[name].items()}
        nbformat.write(fill(nb, signed), path)  # root writes it, as the student's editor would
        shutil.chown(path, logins[name], logins[name])
        student(hub, name, "submit", AID)

    do_and_submit("ada")
    # the due date falls between ada's submission and bob's
    due = datetime.datetime.now(datetime.UTC)
    run(root, "nbgrader", "db", "assignment", "add", AID, f"--duedate={due.isoformat()}")
    time.sleep(1.5)
    do_and_submit("bob")
    # bob's claim to be ada, in an exchange of its own, meanwhile (see `claimed`)
    claiming = ThreadPoolExecutor(max_workers=1)
    claim = claiming.submit(_claim, hub)
    inbound_as_bob, inbound_as_instructor, collected = together(
        lambda: student(hub, "bob", "list", "--inbound"),
        lambda: run(root, "nbgrader", "list", "--inbound"),
        lambda: run(root, "nbgrader", "collect", AID),
    )
    graded = run(root, "seqlab.kit", "grade", "--assignment", AID)
    # the instructor marks ada's written answer in the formgrader, which stores
    # the points in the gradebook, and runs `make grade` again for the feedback
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        gb.find_grade(WRITTEN, AID, AID, logins["ada"]).manual_score = MANUAL_POINTS
        gb.db.commit()
    regraded = run(root, "seqlab.kit", "grade", "--assignment", AID)
    run(root, "nbgrader", "release_feedback", AID)
    fetched = every_student(hub, "fetch_feedback", AID)
    claimed = claim.result()
    claiming.shutdown()
    print(
        f"\n[timing] a term on the hub, {len(STUDENTS)} students as OS users: "
        f"{time.perf_counter() - t0:.1f}s"
    )
    return {
        "root": root,
        "exchange": hub.exchange / COURSE,
        "listed": listed,
        "inbound_as_bob": inbound_as_bob.stdout + inbound_as_bob.stderr,
        "inbound_as_instructor": inbound_as_instructor.stdout + inbound_as_instructor.stderr,
        "collected": collected.stdout + collected.stderr,
        "graded": graded.stdout,
        "regraded": regraded.stdout,
        "fetched": fetched,
        "due": due,
        "claimed": claimed,
    }


def _submission(term, hub: Hub, name: str) -> Path:
    """Student ``name``'s folder in the exchange's inbound/ (the instructor looks it up)."""
    (folder,) = (term["exchange"] / "inbound").glob(f"{hub.logins[name]}+{AID}+*")
    return folder


def _cached_secret(hub: Hub, name: str) -> Path:
    """The secret nbgrader keeps in the student's home to find their feedback by."""
    cache = hub.homes[name] / ".local" / "share" / "jupyter" / "nbgrader_cache" / COURSE
    (secret,) = cache.glob(f"{hub.logins[name]}+{AID}+*/submission_secret.txt")
    return secret


def _feedback_page(term, hub: Hub, name: str) -> Path:
    """Student ``name``'s page in the exchange's feedback/, named from their secret."""
    from nbgrader.utils import notebook_hash

    secret = _cached_secret(hub, name).read_text()
    return term["exchange"] / "feedback" / f"{notebook_hash(secret=secret, notebook_id=AID)}.html"


def test_release_reaches_every_student_as_released(hub, term):
    released = (term["root"] / "exercises" / AID / f"{AID}.ipynb").read_bytes()
    assert (term["exchange"] / "outbound" / AID / f"{AID}.ipynb").read_bytes() == released
    for name, home in hub.homes.items():
        assert f"{COURSE} {AID}" in term["listed"][name]
        fetched = home / AID / f"{AID}.ipynb"
        assert fetched.is_file() and fetched.stat().st_uid == hub.uid(name)


def test_collect_brings_in_exactly_the_submissions_under_their_students(hub, term):
    submitted = term["root"] / "submitted"
    ada, bob = hub.logins["ada"], hub.logins["bob"]
    assert sorted(p.name for p in submitted.iterdir()) == sorted([ada, bob])
    for name in ("ada", "bob"):
        # the submission in the exchange is the student's own OS user's
        assert _submission(term, hub, name).stat().st_uid == hub.uid(name)
        folder = submitted / hub.logins[name] / AID
        assert (folder / "timestamp.txt").is_file()
        nb = (folder / f"{AID}.ipynb").read_text()
        assert _signature(name) in nb
        other = "bob" if name == "ada" else "ada"
        assert _signature(other) not in nb
    assert "cheating attempt" not in term["collected"]


def test_scores_land_in_the_gradebook_and_grades_csv(hub, term):
    root = term["root"]
    ada_id, bob_id = hub.logins["ada"], hub.logins["bob"]
    ada, bob = cell_scores(root, AID, ada_id), cell_scores(root, AID, bob_id)
    auto = lambda s: sum(v for k, (v, _) in s.items() if k.startswith("test_"))  # noqa: E731
    full = sum(m for k, (_, m) in ada.items() if k.startswith("test_"))
    assert full > 0 and auto(ada) == full
    assert bob["test_clip_grad_norm"][0] == 0 and auto(bob) == full - bob["test_clip_grad_norm"][1]
    with open(root / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f) if r["assignment"] == AID}
    # ada's score includes the points of her written answer, given by hand
    assert float(rows[ada_id]["score"]) == auto(ada) + MANUAL_POINTS == full + MANUAL_POINTS
    assert float(rows[bob_id]["score"]) == auto(bob)
    assert "graded 2 submission(s), 0 failed" in term["graded"]
    assert "graded 0 submission(s), 0 failed, 2 unchanged" in term["regraded"]


def test_the_late_submission_is_flagged_late_and_the_other_is_not(hub, term):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{term['root'] / 'gradebook.db'}") as gb:
        assignment = gb.find_assignment(AID)
        assert assignment.duedate is not None
        ada = gb.find_submission(AID, hub.logins["ada"])
        bob = gb.find_submission(AID, hub.logins["bob"])
        assert ada.total_seconds_late == 0
        assert bob.total_seconds_late > 0
        assert ada.timestamp < assignment.duedate < bob.timestamp


def test_each_student_fetches_their_own_feedback_and_nobody_elses(hub, term):
    homes = hub.homes
    with open(term["root"] / "grades.csv", newline="") as f:
        grades = {
            r["student_id"]: (float(r["score"]), float(r["max_score"])) for r in csv.DictReader(f)
        }
    for name in ("ada", "bob"):
        files = sorted((homes[name] / AID / "feedback").rglob("*.html"))
        assert [f.name for f in files] == [f"{AID}.html"], term["fetched"][name].stderr
        assert files[0].stat().st_uid == hub.uid(name)
        page = files[0].read_text()
        other = "bob" if name == "ada" else "ada"
        assert _signature(name) in page and _signature(other) not in page
        assert "BEGIN HIDDEN TESTS" not in page
        # the score at the top is the final one (ada's with her written answer's points)
        score, top = grades[hub.logins[name]]
        assert f"<h1>{AID}</h1>" in page and f"Score: {score:g} / {top:g}" in page
        # the same file the instructor's feedback/ holds for this student
        ours = term["root"] / "feedback" / hub.logins[name] / AID / f"{AID}.html"
        assert page == ours.read_text()
    # carol submitted nothing and gets nothing
    assert not (homes["carol"] / AID / "feedback").exists()


def test_every_file_in_a_home_is_its_students_own_work(hub, term):
    for name, home in hub.homes.items():
        others = [o for o in STUDENTS if o != name]
        for path in home.rglob("*"):
            assert path.stat().st_uid == hub.uid(name), f"{path} is not {name}'s"
            if path.is_file():
                text = path.read_text(errors="replace")
                assert not any(_signature(o) in text for o in others), f"{name} holds {path}"
            assert not any(hub.logins[o] in path.name for o in others), path


def test_a_student_cannot_find_read_or_touch_another_students_submission(hub, term):
    inbound, home = term["exchange"] / "inbound", hub.homes["ada"]
    notebook = home / AID / f"{AID}.ipynb"
    tries = [
        ("list", inbound),  # the names of the submissions
        ("list", home),  # ada's home: her notebook and nbgrader's cache of her submission
        ("read", notebook),
        ("write", notebook),
        ("remove", notebook),
        ("read", _cached_secret(hub, "ada")),
    ]
    assert attempts(hub, "bob", tries) == ["PermissionError"] * len(tries)
    # nbgrader's own listing of the inbox, as bob, shows no submission; as the instructor, both
    assert hub.logins["ada"] not in term["inbound_as_bob"]
    assert hub.logins["bob"] not in term["inbound_as_bob"]
    for name in ("ada", "bob"):
        assert hub.logins[name] in term["inbound_as_instructor"]


def test_a_student_cannot_list_fetch_or_overwrite_another_students_feedback(hub, term):
    feedback, page = term["exchange"] / "feedback", _feedback_page(term, hub, "ada")
    assert page.is_file() and _signature("ada") in page.read_text()
    tries = [
        ("list", feedback),
        ("write", page),
        ("remove", page),
        ("rename", page),
        ("create", feedback / "0123456789abcdef0123456789abcdef.html"),
    ]
    assert attempts(hub, "bob", tries) == ["PermissionError"] * len(tries)
    # bob asks nbgrader for ada's feedback: nbgrader finds feedback by the secrets in the
    # asker's own cache, so he gets his own page again, and nothing of ada's
    student(hub, "bob", "fetch_feedback", AID, f"--CourseDirectory.student_id={hub.logins['ada']}")
    pages = [p.read_text() for p in (hub.homes["bob"] / AID / "feedback").rglob("*.html")]
    assert pages and all(_signature("bob") in p and _signature("ada") not in p for p in pages)


def test_the_sticky_exchange_root_keeps_a_student_from_moving_the_course_away(hub, term):
    # release_assignment keeps the sticky bit that the instructor set on the exchange root
    assert stat.S_IMODE(hub.exchange.stat().st_mode) == 0o1777
    # the mode nbgrader's documentation asks for, `chmod ugo+rw`, and that
    # release_assignment gives a root it creates (0777), lets any student rename the
    # course's folder, and put a folder of their own, with an inbound/ they can read, in its place
    plain = hub.base / "exchange-without-sticky-bit"
    (plain / COURSE).mkdir(parents=True)
    plain.chmod(0o777)
    released = term["exchange"] / "outbound" / AID / f"{AID}.ipynb"
    tries = [
        ("rename", term["exchange"]),
        ("write", released),
        ("create", released.parent / "extra.ipynb"),
        ("rename", plain / COURSE),
    ]
    assert attempts(hub, "bob", tries) == ["PermissionError"] * 3 + ["done"]


def test_a_submission_is_kept_from_other_students_only_by_its_name(hub, term):
    """What nbgrader does not protect, stated here so that the guide can say it."""
    folder, page = _submission(term, hub, "ada"), _feedback_page(term, hub, "ada")
    mode = lambda path: stat.S_IMODE(path.stat().st_mode)  # noqa: E731
    # the modes nbgrader gives: inbound/ write-only for students, without the sticky
    # bit; a submission's folder writable by everyone (so that the instructor can
    # delete it), its files and the feedback pages readable by everyone
    assert mode(folder.parent) == 0o2733
    assert mode(folder) == 0o777
    assert {mode(p) for p in folder.iterdir()} == {0o644}
    assert (mode(term["exchange"] / "outbound"), mode(page.parent), mode(page)) == (
        0o755,
        0o711,
        0o644,
    )
    # its name: login + assignment + time (to the microsecond) + 9 random bytes in base64
    login, aid, _, rand = folder.name.split("+")
    assert (login, aid, len(rand)) == (hub.logins["ada"], AID, 12)
    # bob, were he told the name, could read ada's submission, her secret (the key to
    # her feedback's name), her feedback page, and write in her submission's folder
    tries = [
        ("read", folder / f"{AID}.ipynb"),
        ("read", folder / "submission_secret.txt"),
        ("read", page),
        ("can-write", folder),
    ]
    assert attempts(hub, "bob", tries) == ["done"] * len(tries)


def _claim(hub: Hub) -> dict:
    """bob submits his notebook under ada's student id to a second exchange; it is
    collected. The term runs it beside its own steps, once bob has done his work."""
    exchange = hub.base / "exchange-claimed"
    exchange.mkdir()
    exchange.chmod(0o1777)
    root = scratch_course(hub.base / "instructor" / "claimed")
    with open(root / "nbgrader_config.py", "a") as f:
        f.write(f'\nc.Exchange.root = "{exchange}"\n')
    run(root, "nbgrader", "release_assignment", AID)
    # a cache of its own, outside bob's home, which keeps his own as the term left it
    cache = hub.base / "claimed-cache"
    cache.mkdir()
    shutil.chown(cache, hub.logins["bob"], hub.logins["bob"])
    student(
        hub, "bob", "submit", AID,
        f"--CourseDirectory.student_id={hub.logins['ada']}",
        f"--Exchange.root={exchange}", f"--Exchange.cache={cache}",
    )  # fmt: skip
    collected = run(root, "nbgrader", "collect", AID)
    return {"root": root, "collected": collected.stdout + collected.stderr}


@pytest.fixture(scope="module")
def claimed(term):
    return term["claimed"]


def test_a_student_can_submit_under_another_students_id_and_collect_only_warns(hub, claimed):
    ada, bob = hub.logins["ada"], hub.logins["bob"]
    nb = (claimed["root"] / "submitted" / ada / AID / f"{AID}.ipynb").read_text()
    assert _signature("bob") in nb  # bob's work, filed as ada's
    # collect compares the id in the name with the folder's owner, and only warns
    warning = f"claims to be submitted by {ada} but is owned by {bob}; cheating attempt?"
    assert warning in claimed["collected"]


def test_grading_on_the_hub_leaves_no_hidden_test_in_anything_a_student_got(hub, term):
    from course_helpers import secret_lines

    answers = "\n".join(solution_answers(AID).values())
    hidden = {ln for ln in secret_lines(AID) if ln not in answers}
    for home in hub.homes.values():
        for path in home.rglob("*.*"):
            if path.suffix in (".ipynb", ".html"):
                text = path.read_text()
                if path.suffix == ".html":
                    text = html.unescape(re.sub(r"<[^>]+>", "", text))
                assert not [ln for ln in hidden if ln in text], path
    assert len(hidden) > 20  # there is something to look for
