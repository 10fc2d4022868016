"""Benchmark: the same class of N chapter-1 submissions graded by `make grade` in local
mode (SQLite gradebook) and on a local Dask cluster (PostgreSQL gradebook on a scratch
server), the scores compared, the cost of a submission in each mode and their ratio,
and a projection for a large course.

    python bench/grade_cluster.py --students 100 --workers 2 --out bench/grade_cluster.json

Needs PostgreSQL's server binaries (as the tests do).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests" / "kit")]

from grade_class import AID, make_class  # noqa: E402
from postgres_server import create_database, postgres_server  # noqa: E402

from seqlab.kit import cluster, course, grade  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "grade_cluster.json")
    args = parser.parse_args()
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    os.environ.pop("SEQLAB_GRADEBOOK_URL", None)
    n, workers = args.students, args.workers
    result = {"students": n, "cores": os.cpu_count(), "workers": workers}
    with tempfile.TemporaryDirectory() as tmp:
        local, dask = Path(tmp) / "local", Path(tmp) / "cluster"
        for root in (local, dask):
            root.mkdir()
            make_class(root, n)
        t0 = time.perf_counter()
        summary = grade.grade(local, [AID], jobs=workers)
        result["local_s"] = time.perf_counter() - t0
        result["local_graded"] = len(summary.graded)
        with postgres_server() as server:
            os.environ["SEQLAB_GRADEBOOK_URL"] = create_database(server, "bench")
            t0 = time.perf_counter()
            summary, records = cluster.grade(dask, [AID], f"local:{workers}")
            result["cluster_s"] = time.perf_counter() - t0
            result["cluster_graded"] = len(summary.graded)
            # a batch's time: from its (last) try's start to its last submission's end
            ends: dict[int, tuple[float, float]] = {}
            for r in records:
                start, end = ends.get(r["batch"], (r["started"], r["finished"]))
                ends[r["batch"]] = (max(start, r["started"]), max(end, r["finished"]))
            spans = sorted(end - start for start, end in ends.values())
            result["batches"] = len(spans)
            result["batch_s_median"] = spans[len(spans) // 2]
            scores = lambda root: sorted(  # noqa: E731
                (r["student_id"], r["score"]) for r in course.read_grades(root)
            )
            result["same_scores"] = scores(local) == scores(dask)
            os.environ.pop("SEQLAB_GRADEBOOK_URL")
    # seconds of one worker per submission, start-up and feedback included
    result["local_s_per_submission_per_worker"] = result["local_s"] * workers / n
    result["cluster_s_per_submission_per_worker"] = result["cluster_s"] * workers / n
    t = result["cluster_s_per_submission_per_worker"]
    result["cluster_over_local"] = t / result["local_s_per_submission_per_worker"]
    course_runs = 1000 * 6  # 1,000 students, six notebooks
    result["projection_hours_1000x6"] = {
        str(w): round(course_runs * t / w / 3600, 2) for w in (1, 2, 16, 64, 256)
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
