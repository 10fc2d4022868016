"""Grading beyond one machine: a PostgreSQL gradebook and a Dask cluster, for real.

One class of chapter-1 submissions (the solution, the release untouched,
plausible wrong answers, and the solution with a planted bug in one function,
twice) is graded three ways, and every cell's score must be the same each time:

* ``make grade``'s local mode with the default SQLite gradebook (the reference);
* two ``make grade`` runs at once, each on half of the class, in two copies of
  the course sharing one gradebook on a PostgreSQL server the tests start;
* ``make grade CLUSTER=...`` on a Dask cluster of two worker processes, one of
  which is killed with SIGKILL while it grades its batch, half way through.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from course_helpers import (
    cell_scores,
    env,
    fill,
    release_notebook,
    scratch_course,
    solution_answers,
    submit,
)
from planted_bugs import PLANTED, WRONG
from postgres_server import binaries, create_database, postgres_server

from seqlab.kit import cluster, grade

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.grading,
    pytest.mark.skipif(
        binaries() is None,
        reason="NO POSTGRESQL SERVER BINARIES: the PostgreSQL and cluster grading tests "
        "did not run (.ci/run installs Debian's postgresql; or apt-get install postgresql)",
    ),
]

AID = "rnn_gradients"
BUGGY = ("rnn_step", "clip_grad_norm")


def _write_class(root, students: list[str] | None = None) -> list[str]:
    """The class (or the named part of it) under root/submitted; returns its students."""
    released = release_notebook(root, AID)
    answers = solution_answers(AID)
    planted = PLANTED[AID]
    notebooks = {
        "solution": fill(released, answers),
        "blank": released,
        "wrong": fill(released, answers | WRONG[AID]),
    }
    for f in BUGGY:  # the solution with the first planted bug of one function
        notebooks[f"bug_{f}"] = fill(released, answers | {f: next(iter(planted[f].values()))})
    chosen = students or sorted(notebooks)
    for student in chosen:
        submit(root, student, AID, notebooks[student])
    return chosen


def _grades_csv(root) -> dict[str, tuple[float, float]]:
    with open(root / "grades.csv", newline="") as f:
        return {
            r["student_id"]: (float(r["score"]), float(r["max_score"]))
            for r in csv.DictReader(f)
            if r["assignment"] == AID
        }


def _submission_rows(url: str) -> list[str]:
    """The students of every submission of AID the gradebook holds, one per row."""
    from nbgrader.api import Gradebook

    with Gradebook(url) as gb:
        return sorted(s.student.id for s in gb.assignment_submissions(AID))


@pytest.fixture(scope="module")
def server():
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The class graded by `make grade` in local mode with the SQLite gradebook."""
    root = scratch_course(tmp_path_factory.mktemp("sqlite") / "course")
    students = _write_class(root)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "seqlab.kit", "grade", "--assignment", AID],
        cwd=root,
        env={k: v for k, v in env().items() if k != "SEQLAB_GRADEBOOK_URL"},  # SQLite
        capture_output=True,
        text=True,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0 and f"graded {len(students)} submission(s), 0 failed" in log, log
    print(
        f"\n[timing] local mode, SQLite: {len(students)} submissions in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    scores = {s: cell_scores(root, AID, s) for s in students}
    # the class is worth grading: full marks, none, and some in between
    totals = [sum(v for v, _ in cells.values()) for cells in scores.values()]
    assert len(set(totals)) >= 3 and min(totals) == 0
    return scores, _grades_csv(root)


def test_two_graders_at_once_into_one_postgresql_gradebook_equal_the_sqlite_run(
    server, reference, tmp_path
):
    scores, grades = reference
    url = create_database(server, "two_graders")
    students = sorted(scores)
    halves = {"ta1": students[0::2], "ta2": students[1::2]}
    roots, children, started, ended, logs = {}, {}, {}, {}, {}
    for ta, part in halves.items():
        roots[ta] = scratch_course(tmp_path / ta)
        _write_class(roots[ta], part)
    # The assignment is in the gradebook before the graders start, as after a term's
    # first `make grade`: two graders setting up a new gradebook at the same instant
    # can rewrite its cells under each other (see the instructor's guide).
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from seqlab.kit import course; course.sync_gradebook(course.find_root(), {AID!r})",
        ],
        cwd=roots["ta1"],
        env=env() | {"SEQLAB_GRADEBOOK_URL": url},
        check=True,
        capture_output=True,
    )
    t0 = time.perf_counter()
    for ta in halves:
        started[ta] = time.monotonic()
        children[ta] = subprocess.Popen(
            [sys.executable, "-m", "seqlab.kit", "grade", "--assignment", AID, "--jobs", "2"],
            cwd=roots[ta],
            env=env() | {"SEQLAB_GRADEBOOK_URL": url},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait(ta):
        logs[ta] = children[ta].communicate()[0]
        ended[ta] = time.monotonic()

    waiters = [threading.Thread(target=wait, args=(ta,)) for ta in children]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    print(
        f"\n[timing] two graders at once, PostgreSQL: {len(students)} submissions in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    for ta, child in children.items():
        assert child.returncode == 0, logs[ta][-3000:]
        summary = [ln for ln in logs[ta].splitlines() if "graded " in ln or "FAILED" in ln]
        assert f"graded {len(halves[ta])} submission(s), 0 failed" in logs[ta], (
            f"{ta}: {summary}\n{logs[ta][-3000:]}"
        )
    # the two runs were grading into the gradebook at the same time: each started
    # before the other ended (which of the two finishes a notebook first is the
    # scheduler's choice, so the check is on the runs, not on single notebooks)
    assert max(started.values()) < min(ended.values())
    assert _submission_rows(url) == students  # one submission each, nothing lost
    for student in students:
        assert cell_scores(roots["ta1"], AID, student, url) == scores[student], student
    # the gradebook is one: either copy of the course exports the whole class
    subprocess.run(
        [sys.executable, "-m", "nbgrader", "export", "--to", str(roots["ta1"] / "grades.csv")],
        cwd=roots["ta1"],
        env=env() | {"SEQLAB_GRADEBOOK_URL": url},
        check=True,
        capture_output=True,
    )
    assert _grades_csv(roots["ta1"]) == grades


def test_cluster_mode_refuses_a_sqlite_gradebook(tmp_path):
    root = scratch_course(tmp_path / "course")
    _write_class(root, ["blank"])
    e = env()
    e.pop("SEQLAB_GRADEBOOK_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "seqlab.kit", "grade", "--cluster", "local:2"],
        cwd=root,
        env=e,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "cluster grading needs the gradebook on a database server" in proc.stderr
    assert not (root / "autograded").exists()


def test_batches_share_the_class_evenly_between_the_workers_threads():
    students = [f"s{i:02d}" for i in range(40)]
    assert [len(b) for b in cluster.batches(students, 2)] == [10, 10, 10, 10]  # at most 16
    assert [len(b) for b in cluster.batches(students[:5], 2)] == [3, 2]
    assert sorted(s for b in cluster.batches(students, 3) for s in b) == students


def test_a_submission_counts_as_graded_only_once_nbgrader_wrote_it_run(tmp_path):
    """nbgrader writes the autograded notebook twice: sanitized (no cell run), then run;
    a worker killed between the two must not leave it marked as graded."""
    folder = tmp_path / "autograded" / "ada" / AID
    folder.mkdir(parents=True)
    cell = {"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": []}
    nb = {"cells": [cell | {"execution_count": None}], "metadata": {}, "nbformat": 4}
    nb["nbformat_minor"] = 5
    started = time.time()
    (folder / f"{AID}.ipynb").write_text(json.dumps(nb))  # sanitized
    assert not grade.graded_since(tmp_path, AID, "ada", started)
    (folder / f"{AID}.ipynb").write_text(json.dumps(nb)[:-20])  # half written
    assert not grade.graded_since(tmp_path, AID, "ada", started)
    nb["cells"] = [cell | {"execution_count": 1}]
    (folder / f"{AID}.ipynb").write_text(json.dumps(nb))  # run
    assert grade.graded_since(tmp_path, AID, "ada", started)
    assert not grade.graded_since(tmp_path, AID, "ada", started + 60)  # an earlier run's


def _grading_in(pid: int, students: list[str]) -> tuple[set[str], list[int]]:
    """The students a worker process's nbgrader is grading (its batch: everyone but
    those it excludes; none when it runs no nbgrader) and the pids of what the
    worker started for that (nbgrader and nbgrader's kernel)."""
    import psutil

    exclude = "--CourseDirectory.student_id_exclude="
    try:
        procs = psutil.Process(pid).children(recursive=True)
        for p in procs:
            cmd = p.cmdline()
            if "autograde" in cmd and "--student" in cmd:
                student = cmd[cmd.index("--student") + 1]
                excluded = ",".join(a.split("=", 1)[1] for a in cmd if a.startswith(exclude))
                others = set(excluded.split(","))
                batch = set(students) - others if student == "*" else {student}
                return batch, [q.pid for q in procs]
    except psutil.NoSuchProcess:
        pass
    return set(), []


@pytest.fixture(scope="module")
def cluster_run(server, reference, tmp_path_factory):
    """The class graded on a local Dask cluster (a scheduler and two worker processes);
    a worker is killed with SIGKILL while it runs nbgrader, once it has graded part
    of its batch and not the rest."""
    import psutil
    from distributed import Client, LocalCluster

    root = scratch_course(tmp_path_factory.mktemp("cluster") / "course")
    students = _write_class(root)
    url = create_database(server, "cluster")
    saved = os.environ.get("SEQLAB_GRADEBOOK_URL")
    os.environ["SEQLAB_GRADEBOOK_URL"] = url
    try:
        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env={"OMP_NUM_THREADS": "1"},
            ) as local,
            Client(local) as client,
        ):
            pids = client.run(os.getpid)
            assert len(set(pids.values()) - {os.getpid()}) == 2  # two worker processes
            out: dict = {}
            t0 = time.perf_counter()

            def grade_on_the_cluster():
                out["summary"], out["records"] = cluster.grade(root, [AID], local.scheduler_address)

            grading = threading.Thread(target=grade_on_the_cluster)
            grading.start()
            victim = None
            while grading.is_alive() and victim is None:
                time.sleep(0.2)
                graded = {s for s in students if grade.is_graded(root, AID, s)}
                if not graded:
                    continue
                for pid in pids.values():
                    batch, tree = _grading_in(pid, students)
                    if batch & graded and batch - graded:
                        victim = (pid, batch - graded, tree, set(graded), batch & graded)
                        before = {
                            s: (root / "autograded" / s / AID / f"{AID}.ipynb").stat().st_mtime
                            for s in graded
                        }
                        os.kill(pid, signal.SIGKILL)
                        break
            assert victim is not None, "no worker was caught grading"
            # nbgrader and its kernel die with their worker: no orphan grades on
            deadline = time.time() + 15
            while any(psutil.pid_exists(p) for p in victim[2]) and time.time() < deadline:
                time.sleep(0.2)
            orphans = [p for p in victim[2] if psutil.pid_exists(p)]
            grading.join(timeout=600)
            seconds = time.perf_counter() - t0
            print(
                f"\n[timing] Dask cluster, 2 workers, one killed: {len(students)} "
                f"submissions in {seconds:.1f}s"
            )
            address = local.scheduler_address
            yield {
                "root": root,
                "url": url,
                "students": students,
                "victim": victim,
                "before": before,
                "orphans": orphans,
                "address": address,
                **out,
            }
    finally:
        if saved is None:
            os.environ.pop("SEQLAB_GRADEBOOK_URL", None)
        else:
            os.environ["SEQLAB_GRADEBOOK_URL"] = saved


def test_cluster_scores_equal_local_mode_although_a_worker_was_killed(cluster_run, reference):
    scores, grades = reference
    root, url = cluster_run["root"], cluster_run["url"]
    assert "summary" in cluster_run, "the cluster run did not finish"
    summary = cluster_run["summary"]
    assert sorted(s for _, s in summary.graded) == cluster_run["students"]
    assert not summary.failed
    for student in cluster_run["students"]:
        assert cell_scores(root, AID, student, url) == scores[student], student
    assert _grades_csv(root) == grades


def test_the_killed_workers_submission_is_graded_once_and_nothing_twice(cluster_run):
    root, url = cluster_run["root"], cluster_run["url"]
    killed, unfinished, _, graded_before, finished = cluster_run["victim"]
    assert not cluster_run["orphans"], "nbgrader outlived the worker that started it"
    # one record per submission: the killed try of the batch never reported, its retry did
    records = {r["student"]: r for r in cluster_run["records"]}
    assert sorted(r["student"] for r in cluster_run["records"]) == cluster_run["students"]
    assert all(grade.is_graded(root, AID, s) for s in unfinished)
    # one submission per student in the gradebook
    assert _submission_rows(url) == cluster_run["students"]
    # what was graded before the kill was not graded again
    for student, mtime in cluster_run["before"].items():
        assert student in graded_before
        path = root / "autograded" / student / AID / f"{AID}.ipynb"
        assert path.stat().st_mtime == mtime, f"{student} was graded twice"
    # the killed worker's batch ran again in another worker process, which graded what
    # the killed one had not finished and skipped what it had
    for student in unfinished:
        assert records[student]["pid"] != killed and records[student]["status"] == "graded"
    for student in finished:
        assert records[student]["pid"] != killed and records[student]["status"] == "unchanged"


def test_grading_again_on_the_cluster_grades_nothing(cluster_run):
    root = cluster_run["root"]
    before = _grades_csv(root)
    proc = run_grade_cli(root, cluster_run["url"], "--cluster", cluster_run["address"])
    n = len(cluster_run["students"])
    assert f"graded 0 submission(s), 0 failed, {n} unchanged" in proc.stdout
    assert _grades_csv(root) == before


def run_grade_cli(root, url: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "seqlab.kit", "grade", "--assignment", AID, *args],
        cwd=root,
        env=env() | {"SEQLAB_GRADEBOOK_URL": url},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc
