"""Grading spread over a Dask cluster: ``make grade CLUSTER=<scheduler address>``.

One Dask task per *batch* of submissions, as many batches as the cluster has
worker threads (more for a large class, so that no batch holds more than
``BATCH_SIZE``). A task runs the same nbgrader process that ``make grade`` runs
for a batch (``nbgrader autograde <id> --student '*'`` with everyone else
excluded), so nbgrader's start-up is paid once per batch, not per submission.
It runs on whichever worker the scheduler picks, so every worker needs:

* the course's Python stack (the course image: seqlab with its ``cluster``
  extra, which brings nbgrader, Dask and the PostgreSQL driver);
* the course folder at the same path as on the machine that runs ``make
  grade`` (shared storage: NFS, a Kubernetes ``ReadWriteMany`` volume): the
  submissions are read and the autograded notebooks written there;
* the gradebook on a database server (``SEQLAB_GRADEBOOK_URL=postgresql://...``):
  nbgrader's default SQLite file allows one writer at a time and its locking
  is not to be trusted over a network file system.

A task is idempotent. While its nbgrader runs, the task marks each submission
graded as soon as nbgrader wrote its autograded notebook (the hash of what was
graded, in :data:`seqlab.kit.grade.GRADED_MARK`); a task skips the submissions
that carry that mark for their exact content; and nbgrader's ``--force``
replaces a half-written grading. So when a worker dies, the scheduler gives its
task to another worker, which grades what the dead one had not finished and
nothing else; and the gradebook holds one submission per student and one grade
per cell whatever happened (its unique keys see to that). What a batch could
not finish is then graded alone, as in local mode, which also tells why it fails.
The kernel of a dead worker's nbgrader dies too (``seqlab.kit.sandbox``'s launcher
dies with nbgrader, and the sandbox with it).

``local:N`` starts a cluster of N single-threaded worker processes on this
machine, a way to try the cluster mode without one.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from pathlib import Path

from tqdm.auto import tqdm

from seqlab.kit import course
from seqlab.kit.course import CourseError
from seqlab.kit.grade import (
    GRADED_MARK,
    Summary,
    autograde,
    autograde_batch,
    fingerprint_of,
    finish_reports,
    graded_since,
    graded_with_other_tests,
    is_graded,
    mark_graded,
    notes_by_student,
    require_sandbox,
)

# what the client passes on to the workers' nbgrader runs (the limits, the gradebook)
FORWARDED = ("SEQLAB_",)

# The most submissions one task grades: small enough that the batches share a
# large class out evenly and a lost worker's unfinished part is soon done again,
# large enough that nbgrader's start-up (a few seconds) is a small part of a batch.
BATCH_SIZE = 16


def check_gradebook(url: str) -> None:
    """Cluster grading needs a gradebook every worker can write to at once."""
    if url.startswith("sqlite"):
        raise CourseError(
            "cluster grading needs the gradebook on a database server: set "
            "SEQLAB_GRADEBOOK_URL=postgresql://user:password@host/database "
            f"(the gradebook is now {url})"
        )


def batches(students: list[str], slots: int, size: int = BATCH_SIZE) -> list[list[str]]:
    """``students`` dealt out into a multiple of ``slots`` batches (tasks that run at
    once) of at most ``size`` each, so that every slot gets the same share."""
    rounds = math.ceil(math.ceil(len(students) / max(1, slots)) / size)
    n = min(len(students), max(1, slots) * rounds)
    return [students[i::n] for i in range(n)]


def grade_batch(root: str, aid: str, batch: list[str], env: dict[str, str]) -> list[dict]:
    """The task run on a worker: autograde a batch of submissions in one nbgrader run.

    Submissions already graded (by an earlier try of this task whose worker died)
    are skipped; each of the others is marked graded as soon as nbgrader is done with it;
    those the batch did not finish are graded alone, one nbgrader run each.
    Returns one record per submission: ``status`` is "graded", "failed" or
    "unchanged", with the reason of a failure, a note, and where and when it ran.
    """
    path = Path(root)
    started = time.time()
    records = {}
    todo = []
    for student in batch:
        record = {"aid": aid, "student": student, "pid": os.getpid(), "started": started}
        records[student] = record
        if is_graded(path, aid, student):
            record.update(status="unchanged", finished=started)
        else:
            todo.append(student)
    if not todo:
        return list(records.values())
    threads = {**env, **_one_thread(env)}
    fingerprints = {s: fingerprint_of(path, aid, s) for s in todo}
    finished: dict[str, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(
        target=_mark_when_written, args=(path, aid, fingerprints, started, stop, finished)
    )
    watcher.start()
    try:
        # nbgrader is started from this thread, the task's: it dies with the worker
        everyone = course.submissions(path, aid)
        log = autograde_batch(path, aid, todo, everyone, 1, threads=threads)
    finally:
        stop.set()
        watcher.join()
    notes = notes_by_student(path, aid, log)
    for student in todo:
        if student in finished:
            records[student].update(status="graded", finished=finished[student])
            why, note = None, notes.get(student)
        else:  # alone, to grade it after all or learn why it fails
            why, note = autograde(path, aid, student, threads=threads)
            records[student].update(status="failed" if why else "graded", finished=time.time())
        records[student].update(why=why, note=note)
    return list(records.values())


def _mark_when_written(root, aid, fingerprints, started, stop, finished) -> None:
    """Until ``stop`` is set (and once more after): mark each submission graded as
    soon as nbgrader wrote its autograded notebook, run (it saves the grades
    before), recording when in ``finished``; a worker that dies loses only what it had not
    written."""
    pending = list(fingerprints)
    while pending:
        last = stop.is_set()
        for student in [s for s in pending if graded_since(root, aid, s, started)]:
            try:
                mark_graded(root, aid, student, fingerprints[student])
            except OSError:  # its folder went (nbgrader failed it): graded alone later
                continue
            finished[student] = time.time()
            pending.remove(student)
        if last:
            return
        stop.wait(0.2)


def _one_thread(env: dict[str, str]) -> dict[str, str]:
    # a worker thread grades one submission at a time: its kernel gets the worker's share
    if "OMP_NUM_THREADS" in env:
        return {}
    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def connect(address: str):
    """A Dask client for ``address``; ``local:N`` starts N worker processes here."""
    try:  # optional: the `cluster` extra brings Dask, which grading on one machine never needs
        from distributed import Client, LocalCluster
    except ImportError as error:
        raise CourseError(
            "grading on a cluster needs the `cluster` extra: pip install 'seqlab[cluster]'"
        ) from error

    if address.startswith("local:"):
        workers = int(address.split(":", 1)[1])
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # the kernels need the cores' threads, not the workers
            env={"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))},
        )
        client = Client(cluster)
        client.wait_for_workers(workers)
        return client, cluster
    return Client(address), None


def grade(
    root: Path, ids: list[str] | None, address: str, regrade: bool = False
) -> tuple[Summary, list[dict]]:
    """Autograde new and changed submissions on a Dask cluster, then generate feedback
    and export grades.csv here. Returns the summary and each submission's record
    (see :func:`grade_batch`; ``batch`` numbers the task that graded it)."""
    check_gradebook(course.gradebook_url(root))
    # the workers' kernels run in the same sandbox: its setting travels in SEQLAB_NO_SANDBOX
    summary, records = Summary(sandboxed=require_sandbox()), []
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED)}
    client, cluster = connect(address)
    try:
        for aid in ids or course.assignments(root):
            everyone = course.submissions(root, aid)
            if regrade:  # forget the marks: each submission is then graded once
                for student in everyone:
                    mark = root / "autograded" / student / aid / GRADED_MARK
                    mark.unlink(missing_ok=True)
            students = [s for s in everyone if not is_graded(root, aid, s)]
            summary.unchanged.extend((aid, s) for s in everyone if s not in students)
            if retested := sum(graded_with_other_tests(root, aid, s) for s in students):
                summary.retested[aid] = retested
            if not students:
                if everyone:  # feedback again: it shows manual grades given since
                    course.generate_feedback(root, aid)
                continue
            if not course.sync_gradebook(root, aid):
                summary.stale.append(aid)
            slots = sum(client.nthreads().values())
            futures = {
                client.submit(
                    grade_batch,
                    str(root),
                    aid,
                    batch,
                    env,
                    key=f"grade-{aid}-{i}-{_digest(root, aid, batch)}",
                    pure=False,
                ): (i, batch)
                for i, batch in enumerate(batches(students, slots))
            }
            _progress(root, aid, students, futures)
            for future, (i, batch) in futures.items():
                for record in _results(root, aid, future, batch):
                    records.append(record | {"batch": i})
                    key = (aid, record["student"])
                    if record["status"] == "failed":
                        summary.failed.append((*key, record["why"]))
                    else:  # "unchanged": graded by an earlier try of its task
                        summary.graded.append(key)  # (whose worker died before it reported)
                    if record.get("note"):
                        summary.notes.append((*key, record["note"]))
            course.generate_feedback(root, aid)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    course.export_grades(root)
    finish_reports(root, summary, ids or course.assignments(root))
    return summary, records


def _progress(root: Path, aid: str, students: list[str], futures) -> None:
    """Until every task is done: a progress bar that counts the submissions whose
    mark the workers wrote since this run started."""
    started = time.time()
    pending = set(students)
    with tqdm(total=len(students), desc=f"autograde {aid}", unit="submission") as bar:
        while pending:
            finished = all(f.done() for f in futures)
            written = {s for s in pending if _marked_since(root, aid, s, started)}
            pending -= written
            bar.update(len(written))
            if finished:
                bar.update(len(pending))  # the failed ones
                return
            time.sleep(0.5)


def _marked_since(root: Path, aid: str, student: str, started: float) -> bool:
    mark = root / "autograded" / student / aid / GRADED_MARK
    try:
        return mark.stat().st_mtime >= started - 1
    except OSError:
        return False


def _results(root: Path, aid: str, future, batch: list[str]) -> list[dict]:
    """The records of a finished task; when the cluster could not run it (its
    workers kept dying: KilledWorker), what its tries finished counts as graded."""
    try:
        return future.result()
    except Exception as error:
        why = f"the cluster could not run it: {type(error).__name__}: {error}"
        records = []
        for student in batch:
            record = {"aid": aid, "student": student, "status": "failed", "why": why}
            if is_graded(root, aid, student):
                record.update(status="unchanged", why=None)
            records.append(record)
        return records


def _digest(root: Path, aid: str, students: list[str]) -> str:
    """A short hash of the batch's submissions' content, part of its task's name."""
    fingerprints = [(s, sorted(fingerprint_of(root, aid, s).items())) for s in students]
    return hashlib.sha256(repr(fingerprints).encode()).hexdigest()[:12]
