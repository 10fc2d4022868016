"""A hostile class, graded in one run beside correct classmates: the grading sandbox.

Every hostile student below submits chapter 1's correct answers with an attack
put in front of the last graded function (``clip_grad_norm``), so each deserves
the full autograded marks (13) unless its attack is itself a wrong answer (the
delegation ones, which lose that function's 3 points). The class is graded once
by ``python -m seqlab.kit grade`` (what ``make grade`` runs), with a secret in
the grader's environment and a TCP server listening on this machine; the tests
read what that run left behind: the gradebook, the autograded notebooks (which
keep every output the kernels sent), the feedback, the classmates' files, the
processes still alive and the server's log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from course_helpers import (
    BEGIN_HIDDEN,
    END_HIDDEN,
    REPO,
    cell_scores,
    env,
    fill,
    regions,
    release_notebook,
    run,
    scratch_course,
    solution_answers,
    submit,
)

from seqlab.kit import sandbox
from seqlab.kit.grade import REVIEW
from seqlab.kit.plugins import WITHHELD, RedactHiddenTests

pytestmark = [pytest.mark.grading, pytest.mark.sandbox]

AID = "rnn_gradients"
LAST = "clip_grad_norm"  # the last graded function; its test is worth 3 points
FULL, WITHOUT_LAST = 13.0, 10.0
SECRET = "grader-secret-7f3a91c2"  # in the grader's environment, as a database password would be
MARK = "seqlab-hostile-process-marker"  # in the command line of every process an attack starts
CORRECT = ("alice", "bob")


def _course_root_from_inside() -> str:
    # the attacks find the course root as a student would: the kernel's folder is
    # <root>/autograded/<student>/<assignment>
    return "import os, pathlib\nROOT = pathlib.Path(os.getcwd()).parents[2]\n"


ATTACKS: dict[str, tuple[str, float]] = {
    "reads_the_course": (
        _course_root_from_inside()
        + """
found = []
for rel in ["solutions/rnn_gradients/rnn_gradients.ipynb", "gradebook.db",
            "source/rnn_gradients/rnn_gradients.ipynb", "nbgrader_config.py",
            "submitted/alice/rnn_gradients/rnn_gradients.ipynb",
            "autograded/alice/rnn_gradients/rnn_gradients.ipynb"]:
    try:
        found.append((rel, (ROOT / rel).read_text()[:200000]))
    except Exception as error:
        found.append((rel, repr(error)))
for top in ["/", "/root", "/home", "/etc", "/tmp", str(ROOT), str(ROOT.parent)]:
    try:
        found.append((top, os.listdir(top)))
    except Exception as error:
        found.append((top, repr(error)))
import glob
for path in (glob.glob(str(ROOT) + "/**/*.ipynb", recursive=True)
             + glob.glob("/tmp/**/*.ipynb", recursive=True))[:50]:
    try:
        found.append((path, open(path).read()[:200000]))
    except Exception as error:
        found.append((path, repr(error)))
print(found)
""",
        FULL,
    ),
    "prints_tests_from_a_hook": (
        """
import builtins, sys, threading, time
ip = get_ipython()
ip.events.register("pre_run_cell", lambda info: print(info.raw_cell))
ip.events.register("post_run_cell", lambda result: sys.stdout.write(result.info.raw_cell))
seen = []
ip.events.register("pre_run_cell", lambda info: seen.append(info.raw_cell))
def leak():
    while True:
        time.sleep(0.2)
        if seen:
            print("\\n".join(seen))
threading.Thread(target=leak, daemon=True).start()
""",
        FULL,
    ),
    "leaks_tests_in_its_errors": (
        """
import base64
ip = get_ipython()
def leak(lines):
    text = "".join(lines)
    if "HIDDEN" in text or "grading." in text:
        return ["raise AssertionError(%r)\\n" % text]
    return lines
def leak_b64(lines):
    text = "".join(lines)
    if "grading." in text:
        return ["raise ValueError(%r)\\n" % base64.b64encode(text.encode()).decode()]
    return lines
ip.input_transformers_cleanup.append(leak)
""",
        None,  # its tests fail by its own hand: it loses their points, and learns nothing
    ),
    "overwrites_classmates": (
        _course_root_from_inside()
        + """
import json
empty = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
for student in ["alice", "bob", "reads_the_course"]:
    for folder in ["submitted", "autograded", "feedback"]:
        target = ROOT / folder / student / "rnn_gradients"
        for name in ["rnn_gradients.ipynb", "rnn_gradients.html"]:
            try:
                (target / name).write_text(empty)
            except Exception as error:
                print(folder, student, repr(error))
for place in [ROOT / "pwned", ROOT.parent / "pwned", pathlib.Path("/tmp/pwned"),
              pathlib.Path(os.path.expanduser("~")) / "pwned",
              ROOT / "gradebook.db"]:
    try:
        place.write_text("pwned")
    except Exception as error:
        print(place, repr(error))
""",
        FULL,
    ),
    "leaves_a_process_that_rewrites_its_grades": (
        _course_root_from_inside()
        + f"""
import subprocess, sys
script = '''
import sys, time
from nbgrader.api import Gradebook
while True:
    try:
        with Gradebook("sqlite:///" + sys.argv[1]) as gb:
            sub = gb.find_submission_notebook("rnn_gradients", "rnn_gradients", sys.argv[2])
            for grade in sub.grades:
                grade.manual_score = grade.max_score
            gb.db.commit()
    except Exception:
        pass
    time.sleep(0.5)
'''
subprocess.Popen([sys.executable, "-c", script, str(ROOT / "gradebook.db"),
                  "leaves_a_process_that_rewrites_its_grades", "{MARK}"],
                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
import os
if os.fork() == 0:
    os.setsid()
    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "{MARK}"])
""",
        FULL,
    ),
    "reaches_the_network": (
        """
import socket
answers = []
for address in [("127.0.0.1", PORT), ("localhost", PORT), ("::1", PORT)]:
    try:
        with socket.create_connection(address, timeout=2) as s:
            s.sendall(b"hostile-connection-made")
            answers.append((address, "connected"))
    except Exception as error:
        answers.append((address, repr(error)))
print(answers)
""",
        FULL,
    ),
    "fork_bomb": (
        f"""
import os, sys, time
if os.fork() == 0:
    os.setsid()
    while True:
        try:
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)",
                                          "{MARK}"])
        except OSError:
            time.sleep(0.05)
""",
        None,  # it may starve its own kernel: whatever it scores, its classmates keep theirs
    ),
    "floods_output": (
        """
line = "x" * 1_000_000
for _ in range(1000):  # a gigabyte
    print(line)
""",
        FULL,
    ),
    "prints_the_environment": (
        """
import os
print(dict(os.environ))
for path in ["/proc/1/environ", "/proc/self/environ", "/proc/self/../1/environ"]:
    try:
        print(open(path, "rb").read())
    except Exception as error:
        print(path, repr(error))
""",
        FULL,
    ),
    "empties_the_forbidden_table": (
        """
from seqlab import grading
for attempt in (lambda: grading.FORBIDDEN.clear(),
                lambda: setattr(grading, "FORBIDDEN", {}),
                lambda: grading.__dict__.__setitem__("FORBIDDEN", {})):
    try:
        attempt()
    except Exception as error:
        print(repr(error))
""",
        "delegates",
    ),
    "writes_big_files": (
        """
import os
for path in ["big1", "/tmp/big2", os.path.expanduser("~/big3")]:
    try:
        with open(path, "wb") as f:
            for _ in range(2048):
                f.write(b"\\0" * 2**20)  # 2 GiB each, if nothing stops it
    except Exception as error:
        print(path, repr(error))
""",
        FULL,
    ),
}
# nbgrader runs the kernel in the autograded folder, beside the notebook being graded,
# hidden tests and all: this one reads its own folder in the *first* answer cell,
# whose output the feedback keeps.
ATTACKS["reads_its_own_folder"] = (
    """
import os
for folder, _, files in os.walk("."):
    for name in files:
        try:
            print(name, open(os.path.join(folder, name), errors="replace").read())
        except Exception as error:
            print(name, repr(error))
print(os.listdir("."))
""",
    FULL,
)
FIRST_CELL = {"reads_its_own_folder"}
FIRST = "rnn_step"  # the first graded function

# A wrong answer (the release's stub) and a hook that shows a number as each cell's
# result, which nbgrader would read as partial credit.
ATTACKS["forges_partial_credit"] = (
    """
ip = get_ipython()
ip.events.register("pre_run_cell", lambda info: ip.displayhook(2.0))
""",
    "stub",
)
DELEGATION = """
def clip_grad_norm(parameters, max_norm):
    return torch.nn.utils.clip_grad_norm_(list(parameters), max_norm)
"""


class _Listener:
    """A TCP server on this machine's loopback that records whatever reaches it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                self.received.append(conn.recv(1024) or b"(connected)")

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


def hidden_test_lines(min_length: int = 12) -> set[str]:
    """Lines of the hidden tests that appear nowhere in the release (the attackers
    submit the solution, so their own answers may show up in what they print)."""
    nb = nbformat.read(REPO / "solutions" / AID / f"{AID}.ipynb", as_version=4)
    release = (REPO / "exercises" / AID / f"{AID}.ipynb").read_text()
    hidden = set()
    for cell in nb.cells:
        inside, _ = regions(cell.source, BEGIN_HIDDEN, END_HIDDEN)
        hidden.update(line.strip() for line in inside)
    answers = "\n".join(solution_answers(AID).values())
    return {
        line
        for line in hidden
        if len(line) >= min_length and json.dumps(line)[1:-1] not in release and line not in answers
    }


def _answers(attack: str, port: int) -> dict[str, str]:
    answers = solution_answers(AID)
    code, expected = ATTACKS[attack]
    code = code.replace("PORT", str(port))
    last = answers[LAST] + (DELEGATION if expected == "delegates" else "")
    if expected == "stub":
        last = "def clip_grad_norm(parameters, max_norm):\n    raise NotImplementedError()\n"
    # the answer first, so that an attack stopped at the cell's time limit leaves it defined
    if attack in FIRST_CELL:
        return answers | {FIRST: answers[FIRST] + "\n" + code}
    return answers | {LAST: last + "\n" + code}


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _marked_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if MARK in line and "ps -eo" not in line]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = scratch_course(tmp_path_factory.mktemp("hostile") / "course")
    listener = _Listener()
    release = release_notebook(root, AID)
    for student in CORRECT:
        submit(root, student, AID, fill(release, solution_answers(AID)))
    for attack in ATTACKS:
        submit(root, attack, AID, fill(release, _answers(attack, listener.port)))
    before = {s: _digest(root / "submitted" / s) for s in CORRECT}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "seqlab.kit", "grade"],
        cwd=root,
        env=env() | {"SEQLAB_CELL_TIMEOUT": "20", "SEQLAB_GRADER_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    seconds = time.perf_counter() - t0
    print(f"\n[timing] hostile class of {len(ATTACKS) + len(CORRECT)} graded in {seconds:.1f}s")
    time.sleep(1)  # anything an attack left behind would still be running now
    survivors = _marked_processes()
    listener.close()
    yield root, proc, before, survivors, listener.received
    for line in survivors:  # never leave them to the next test, whatever happened
        subprocess.run(["kill", "-9", line.split()[0]], check=False)


def test_the_class_is_graded_and_the_summary_says_it_was_sandboxed(graded):
    root, proc, *_ = graded
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "WITHOUT THE SANDBOX" not in proc.stdout


@pytest.mark.parametrize("student", CORRECT)
def test_correct_classmates_keep_full_marks(graded, student):
    root, *_ = graded
    scores = cell_scores(root, AID, student)
    assert sum(s for name, (s, _) in scores.items() if name.startswith("test_")) == FULL


@pytest.mark.parametrize("attack", [a for a, (_, e) in ATTACKS.items() if e is not None])
def test_each_attack_scores_what_its_answers_deserve(graded, attack):
    root, *_ = graded
    expected = ATTACKS[attack][1]
    expected = WITHOUT_LAST if expected in ("delegates", "stub") else expected
    scores = cell_scores(root, AID, attack)
    auto = sum(s for name, (s, _) in scores.items() if name.startswith("test_"))
    assert auto == expected
    # nothing it did gave it the hand-graded points of its written answer
    assert scores["why_clip_answer"][0] in (0.0, None)


def test_an_attack_that_turns_its_tests_into_leaks_loses_their_points(graded):
    root, *_ = graded
    scores = cell_scores(root, AID, "leaks_tests_in_its_errors")
    # every cell whose source names the checks now raises the cell's own source
    assert scores["test_clip_grad_norm"][0] == 0.0


def test_a_fork_bomb_is_graded_to_the_end(graded):
    root, proc, *_ = graded
    assert not [line for line in proc.stdout.splitlines() if "FAILED" in line and "fork" in line]
    assert (root / "autograded" / "fork_bomb" / AID / f"{AID}.ipynb").is_file()
    assert set(cell_scores(root, AID, "fork_bomb")) >= {"test_clip_grad_norm"}


def test_classmates_files_are_bit_identical(graded):
    root, _, before, *_ = graded
    for student in CORRECT:
        assert _digest(root / "submitted" / student) == before[student]
        autograded = nbformat.read(root / "autograded" / student / AID / f"{AID}.ipynb", 4)
        assert autograded.cells, "a classmate's autograded notebook was emptied"
        feedback = (root / "feedback" / student / AID / f"{AID}.html").read_text()
        assert len(feedback) > 10_000


def test_nothing_was_written_outside_the_submissions_own_scratch_folder(graded):
    root, *_ = graded
    for place in (root / "pwned", root.parent / "pwned", Path("/tmp/pwned")):
        assert not place.exists(), place
    assert not list(root.rglob("big1"))
    # the gradebook is nbgrader's own SQLite file, not the attack's text
    assert (root / "gradebook.db").read_bytes()[:15] == b"SQLite format 3"


def test_no_process_of_a_submission_outlives_its_grading(graded):
    *_, survivors, _ = graded
    assert survivors == []


def test_no_submission_reached_the_network(graded):
    *_, received = graded
    assert received == []


def _outputs_text(nb) -> str:
    return "\n".join(
        str(o.get("text", ""))
        + str(o.get("data", ""))
        + str(o.get("evalue", ""))
        + "\n".join(o.get("traceback", []))
        for cell in nb.cells
        for o in cell.get("outputs", [])
    )


def test_no_kernel_could_read_the_course(graded):
    """The autograded notebooks keep every output the kernels sent: had an attack
    found a hidden test or a solution on disk, it would be there."""
    root, *_ = graded
    secrets = hidden_test_lines()
    assert len(secrets) > 20
    for attack, cell in (("reads_the_course", LAST), ("reads_its_own_folder", FIRST)):
        nb = nbformat.read(root / "autograded" / attack / AID / f"{AID}.ipynb", 4)
        attack_cell = next(
            c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell
        )
        text = _outputs_text(nbformat.from_dict({"cells": [attack_cell]}))
        assert "FileNotFoundError" in text or "[]" in text, text[:500]
        for line in secrets:
            assert line not in text, (attack, line)
    for listing_of_course in ("solutions", "gradebook.db", "nbgrader_config.py"):
        assert f"'{listing_of_course}'" not in text


def test_no_kernel_saw_the_graders_environment(graded):
    root, *_ = graded
    for student in ATTACKS:
        path = root / "autograded" / student / AID / f"{AID}.ipynb"
        if path.exists():
            assert SECRET not in path.read_text(), student


def test_hidden_tests_run_on_the_cpu_alone_when_graded(graded):
    """Graders with and without a GPU give the same points: the kernel is told to run
    the hidden tests on the CPU (seqlab.grading.devices reads it)."""
    root, *_ = graded
    text = (root / "autograded" / "prints_the_environment" / AID / f"{AID}.ipynb").read_text()
    assert "'SEQLAB_GRADING_DEVICES': 'cpu'" in text


def test_no_feedback_carries_a_hidden_test(graded):
    root, *_ = graded
    secrets = hidden_test_lines()
    for html in (root / "feedback").rglob("*.html"):
        text = re.sub(r"<[^>]+>", "", html.read_text())
        import html as htmllib

        text = htmllib.unescape(text)
        leaked = [line for line in secrets if line in text]
        assert not leaked, f"{html}: {leaked[:3]}"


def test_a_leaking_error_message_is_withheld_in_the_feedback(graded):
    root, *_ = graded
    html = (root / "feedback" / "leaks_tests_in_its_errors" / AID / f"{AID}.html").read_text()
    assert "message withheld" in html


def test_a_flood_of_output_is_cut_and_the_notebook_stays_small(graded):
    root, *_ = graded
    path = root / "autograded" / "floods_output" / AID / f"{AID}.ipynb"
    assert path.stat().st_size < 16 * 2**20
    assert "output stopped here" in path.read_text()


# --- the sandbox's own promises, without a class ------------------------------------


def _without_bwrap(root: Path, missing: Path) -> subprocess.CompletedProcess:
    """``make grade`` where bwrap is missing."""
    submit(root, "alice", AID, fill(release_notebook(root, AID), solution_answers(AID)))
    return subprocess.run(
        [sys.executable, "-m", "seqlab.kit", "grade"],
        cwd=root,
        env=env() | {"SEQLAB_BWRAP": str(missing)},
        capture_output=True,
        text=True,
    )


def _plain_nbgrader(root: Path, missing: Path) -> dict:
    """nbgrader's own autograde on a probe that prints the kernel's host, then again
    where bwrap is missing."""
    probe = "import os, socket\nprint('host', socket.gethostname(), os.listdir('/'))\n"
    answers = solution_answers(AID)
    answers[FIRST] = answers[FIRST] + "\n" + probe
    submit(root, "alice", AID, fill(release_notebook(root, AID), answers))
    run(root, "nbgrader", "generate_assignment", AID, "--force")
    run(root, "nbgrader", "autograde", AID, "--student", "alice")
    graded = (root / "autograded" / "alice" / AID / f"{AID}.ipynb").read_text()
    scores = cell_scores(root, AID, "alice")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", AID, "--student", "alice", "--force"],
        cwd=root,
        env=env() | {"SEQLAB_BWRAP": str(missing)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return {"graded": graded, "scores": scores, "proc": proc, "seconds": time.perf_counter() - t0}


def _no_sandbox(root: Path) -> subprocess.CompletedProcess:
    """``make grade NO_SANDBOX=1``."""
    submit(root, "alice", AID, fill(release_notebook(root, AID), solution_answers(AID)))
    return subprocess.run(
        [sys.executable, "-m", "seqlab.kit", "grade", "--no-sandbox"],
        cwd=root,
        env=env(),
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """One submission graded in each of three courses, side by side (each grades one
    notebook at a time: together they keep both cores busy): without bwrap, by plain
    nbgrader, and without the sandbox."""
    base = tmp_path_factory.mktemp("alone")
    courses = {name: scratch_course(base / name) for name in ("missing", "plain", "open")}
    missing = base / "no-such-bwrap"
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = {
            "missing": pool.submit(_without_bwrap, courses["missing"], missing),
            "plain": pool.submit(_plain_nbgrader, courses["plain"], missing),
            "open": pool.submit(_no_sandbox, courses["open"]),
        }
        return {name: (courses[name], run.result()) for name, run in runs.items()}


def test_grading_without_bwrap_stops_and_says_how_to_install_it(alone):
    root, proc = alone["missing"]
    assert proc.returncode == 1
    assert "apt-get install bubblewrap" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "autograded").exists()


def test_plain_nbgrader_autograde_runs_in_the_sandbox_and_fails_closed_without_it(alone):
    root, plain = alone["plain"]
    assert "host sandbox" in plain["graded"]  # the kernel's own host name, inside bwrap
    assert plain["scores"]["test_clip_grad_norm"][0] == 3.0
    proc = plain["proc"]
    assert "apt-get install bubblewrap" in proc.stdout + proc.stderr
    assert not list((root / "autograded").rglob("*.ipynb"))  # --force removed the old one
    assert plain["seconds"] < 60  # it stops at once, it does not wait for a kernel


def test_no_sandbox_is_said_loudly(alone):
    root, proc = alone["open"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("WITHOUT THE SANDBOX") == 2  # at the top and at the bottom
    assert cell_scores(root, AID, "alice")["test_clip_grad_norm"][0] == 3.0


def test_the_sandbox_starts_here():
    assert sandbox.check()


def test_the_kernel_folder_of_the_course_is_never_bound_whole(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    paths = sandbox._python_paths()
    assert REPO_ROOT not in paths and REPO_ROOT.parent not in paths
    assert all(not (p / "solutions").exists() for p in paths)


REPO_ROOT = REPO


def _feedback_of(cells):
    nb = nbformat.v4.new_notebook(cells=cells)
    out, _ = RedactHiddenTests().preprocess(nb, {})
    return out


def _test_cell(source, outputs):
    cell = nbformat.v4.new_code_cell(source, outputs=outputs)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t", "points": 1}
    return cell


HIDDEN = (
    "### BEGIN HIDDEN TESTS\n"
    "got = grading.call(clip_grad_norm, params, 0.5, forbid='clip_grad_norm')\n"
    "grading.assert_close(got, expected_norm_of_the_secret_case, 'the norm')\n"
    "### END HIDDEN TESTS"
)


@pytest.mark.parametrize(
    "disguise",
    [
        lambda s: s,
        lambda s: s[::-1],
        lambda s: __import__("codecs").encode(s, "rot13"),
        lambda s: __import__("base64").b64encode(s.encode()).decode(),
        lambda s: s.encode().hex(),
    ],
    ids=["plain", "reversed", "rot13", "base64", "hex"],
)
def test_an_error_message_that_quotes_the_hidden_code_is_withheld(disguise):
    leak = disguise(HIDDEN)
    cell = _test_cell(
        "assert True\n" + HIDDEN,
        [
            nbformat.v4.new_output("stream", name="stdout", text=HIDDEN),
            nbformat.v4.new_output("error", ename="AssertionError", evalue=leak, traceback=[]),
        ],
    )
    out = _feedback_of([cell]).cells[0]
    assert [o.output_type for o in out.outputs] == ["error"]
    assert out.outputs[0].evalue == WITHHELD
    assert "expected_norm_of_the_secret_case" not in str(out)


def test_an_assertions_own_message_stays_in_the_feedback():
    cell = _test_cell(
        HIDDEN.replace("'the norm'", "'clip_grad_norm: the norm differs'"),
        [
            nbformat.v4.new_output(
                "error",
                ename="AssertionError",
                evalue="clip_grad_norm: the norm differs (largest gap 0.3)",
                traceback=["long traceback quoting got = grading.call(clip_grad_norm, ...)"],
            )
        ],
    )
    out = _feedback_of([cell]).cells[0]
    assert out.outputs[0].evalue == "clip_grad_norm: the norm differs (largest gap 0.3)"
    assert out.outputs[0].traceback == [
        "AssertionError: clip_grad_norm: the norm differs (largest gap 0.3)"
    ]


def test_answer_cells_after_a_test_keep_only_their_errors():
    answer_before = nbformat.v4.new_code_cell(
        "x = 1", outputs=[nbformat.v4.new_output("stream", name="stdout", text="mine")]
    )
    answer_after = nbformat.v4.new_code_cell(
        "y = 2",
        outputs=[nbformat.v4.new_output("stream", name="stdout", text="anything at all")],
    )
    out = _feedback_of([answer_before, _test_cell(HIDDEN, []), answer_after])
    assert out.cells[0].outputs[0].text == "mine"
    assert out.cells[2].outputs == []


def test_the_grader_environment_stays_out_of_the_sandbox(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQLAB_GRADEBOOK_URL", "postgresql://grader:hunter2@db/course")
    command = sandbox._bwrap_command(
        "bwrap", tmp_path, tmp_path, "/tmp/s", tmp_path, "/tmp/w", ["true"]
    )
    assert "--clearenv" in command
    assert not any("hunter2" in part for part in command)


def test_limits_are_set_inside_the_sandbox(tmp_path):
    command = sandbox._bwrap_command(
        "bwrap", tmp_path, tmp_path, "/tmp/s", tmp_path, "/tmp/w", ["true"]
    )
    prelude = command[command.index("-c") + 1]
    for limit in ("RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_DATA"):
        assert limit in prelude


def test_env_helper_keeps_secrets_out_of_this_module():
    # the secret the class test sets reaches nbgrader's process, not its kernels
    assert "SEQLAB_GRADER_SECRET" not in sandbox._KEPT_ENV
    assert os.environ.get("SEQLAB_GRADER_SECRET") is None


def test_the_summary_points_at_answers_that_reach_into_python(graded):
    _, proc, *_ = graded
    lines = [line for line in proc.stdout.splitlines() if REVIEW in line]
    flagged = {s for s in ATTACKS if any(f"/ {s}: " in line for line in lines)}
    assert {
        "forges_partial_credit",
        "prints_tests_from_a_hook",
        "leaks_tests_in_its_errors",
        "fork_bomb",
        "reaches_the_network",
        "empties_the_forbidden_table",
    } <= flagged
    assert not [line for line in lines for s in CORRECT if f"/ {s}: " in line]


def test_a_course_or_environment_under_tmp_stays_visible(tmp_path):
    """The folders in memory are mounted first: a Python environment bound later, under
    /tmp (a fresh clone in /tmp), is not hidden by the sandbox's own /tmp."""
    command = sandbox._bwrap_command(
        "bwrap", tmp_path, tmp_path, "/tmp/s", tmp_path, "/tmp/w", ["true"]
    )
    tmpfs = [i for i, arg in enumerate(command) if arg == "--tmpfs"]
    binds = [i for i, arg in enumerate(command) if arg == "--ro-bind"]
    home_and_tmp = [i for i in tmpfs if command[i + 1] in ("/tmp", sandbox.HOME)]
    assert len(home_and_tmp) == 2 and max(home_and_tmp) < min(binds)
