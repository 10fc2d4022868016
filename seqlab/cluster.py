"""Grading spread over a Dask cluster: ``make grade CLUSTER=<scheduler address>``.

One Dask task per submission. A task runs the same ``nbgrader autograde <id>
--student <s> --force`` that ``make grade`` runs, on whichever worker the
scheduler picks, so every worker needs:

* the course's Python stack (the course image: seqlab with its ``grade``
  extra, which brings nbgrader);
* the course folder at the same path as on the machine that runs ``make
  grade`` (shared storage: NFS, a Kubernetes ``ReadWriteMany`` volume): the
  submissions are read and the autograded notebooks written there;
* the gradebook on a database server (``SEQLAB_GRADEBOOK_URL=postgresql://...``):
  nbgrader's default SQLite file allows one writer at a time and its locking
  is not to be trusted over a network file system.

A task is idempotent: it does nothing when the submission carries the mark of a
finished grading of its exact content (``course.GRADED_MARK``, written after
nbgrader finished), and nbgrader's ``--force`` replaces a half-written grading.
So when a worker dies, the scheduler gives its task to another worker, which
grades the submission from the start; a task that had finished is not run
again; and the gradebook holds one submission per student and one grade per
cell whatever happened (its unique keys see to that).

``local:N`` starts a cluster of N single-threaded worker processes on this
machine, a way to try the cluster mode without one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tqdm.auto import tqdm

from seqlab import course
from seqlab.course import CourseError, Summary

# what the client passes on to the workers' nbgrader runs (the limits, the gradebook)
FORWARDED = ("SEQLAB_",)


def check_gradebook(url: str) -> None:
    """Cluster grading needs a gradebook every worker can write to at once."""
    if url.startswith("sqlite"):
        raise CourseError(
            "cluster grading needs the gradebook on a database server: set "
            "SEQLAB_GRADEBOOK_URL=postgresql://user:password@host/database "
            f"(the gradebook is now {url})"
        )


def grade_submission(root: str, aid: str, student: str, env: dict[str, str]) -> dict:
    """The task run on a worker: autograde one submission unless already graded.

    Returns what happened: ``status`` is "graded", "failed" or "unchanged",
    with the reason of a failure, a note, and where and when it ran.
    """
    path = Path(root)
    started = time.time()
    result = {"aid": aid, "student": student, "pid": os.getpid(), "started": started}
    if course.is_graded(path, aid, student):
        return result | {"status": "unchanged", "finished": time.time()}
    why, note = course.autograde(path, aid, student, threads={**env, **_one_thread(env)})
    status = "graded" if why is None else "failed"
    return result | {"status": status, "why": why, "note": note, "finished": time.time()}


def _one_thread(env: dict[str, str]) -> dict[str, str]:
    # a worker thread grades one submission: its kernel gets the worker's share of cores
    if "OMP_NUM_THREADS" in env:
        return {}
    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def connect(address: str):
    """A Dask client for ``address``; ``local:N`` starts N worker processes here."""
    from distributed import Client, LocalCluster

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
        return Client(cluster), cluster
    return Client(address), None


def grade(
    root: Path, ids: list[str] | None, address: str, regrade: bool = False
) -> tuple[Summary, list[dict]]:
    """Autograde new and changed submissions on a Dask cluster, then generate feedback
    and export grades.csv here. Returns the summary and each task's record."""
    from distributed import as_completed

    check_gradebook(course.gradebook_url(root))
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED)}
    summary, records = Summary(), []
    client, cluster = connect(address)
    try:
        for aid in ids or course.assignments(root):
            everyone = course.submissions(root, aid)
            if regrade:  # forget the marks: each task then grades its submission once
                for student in everyone:
                    mark = root / "autograded" / student / aid / course.GRADED_MARK
                    mark.unlink(missing_ok=True)
            students = [s for s in everyone if not course.is_graded(root, aid, s)]
            summary.unchanged.extend((aid, s) for s in everyone if s not in students)
            if not students:
                if everyone:  # feedback again: it shows manual grades given since
                    course.generate_feedback(root, aid)
                continue
            if not course.sync_gradebook(root, aid):
                summary.stale.append(aid)
            futures = {
                client.submit(
                    grade_submission,
                    str(root),
                    aid,
                    student,
                    env,
                    key=f"grade-{aid}-{student}-{_digest(root, aid, student)}",
                    pure=False,
                ): student
                for student in students
            }
            with tqdm(total=len(futures), desc=f"autograde {aid}", unit="submission") as bar:
                for future in as_completed(futures):
                    try:
                        record = future.result()
                    except Exception as error:  # e.g. its workers kept dying (KilledWorker)
                        why = f"the cluster could not run it: {type(error).__name__}: {error}"
                        record = {"aid": aid, "student": futures[future], "status": "failed"}
                        record["why"] = why
                    records.append(record)
                    bar.update(1)
                    key = (aid, record["student"])
                    if record["status"] == "failed":
                        summary.failed.append((*key, record["why"]))
                    else:  # "unchanged": graded by an earlier try of this task
                        summary.graded.append(key)  # (its worker died before it reported)
                    if record.get("note"):
                        summary.notes.append((*key, record["note"]))
            course.generate_feedback(root, aid)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    course._nbgrader(root, "export", "--to", str(root / "grades.csv"))
    return summary, records


def _digest(root: Path, aid: str, student: str) -> str:
    """A short hash of the submission's content, part of its task's name."""
    import hashlib

    fingerprint = course._fingerprint(root, aid, student)
    return hashlib.sha256(repr(sorted(fingerprint.items())).encode()).hexdigest()[:12]
