"""The instructor's kit: release, grade, gradebooks, the grading sandbox and the
Dask cluster path. Students never import it: the teaching library needs none of
its dependencies. It needs the ``grade`` extra (nbgrader), and ``cluster`` for
Dask and PostgreSQL.

* :mod:`seqlab.kit.course`: the course folder, assignments, release, the gradebook;
* :mod:`seqlab.kit.grade`: autograding, resumable runs, the summary;
* :mod:`seqlab.kit.demo`: the demo class (``make demo-class``);
* :mod:`seqlab.kit.cluster`: grading on a Dask cluster;
* :mod:`seqlab.kit.sandbox`: the grading sandbox every kernel runs in;
* :mod:`seqlab.kit.plugins`: the course's nbgrader preprocessors;
* :mod:`seqlab.kit.cli`: ``python -m seqlab.kit release|grade|demo-class``.
"""

import importlib.util

GRADE_EXTRA = ("nbgrader", "nbformat", "nbconvert", "traitlets")


def missing(modules: tuple[str, ...] = GRADE_EXTRA) -> list[str]:
    """The modules of ``modules`` that cannot be imported here (found, not imported:
    the sandbox's kernel launcher, a kit module, must start fast)."""
    absent = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            absent.append(name)
    return absent


if missing():  # every part of the kit runs with nbgrader, or inside nbgrader
    raise ImportError(
        f"seqlab.kit, the instructor's kit, needs the `grade` extra ({', '.join(missing())} "
        "not installed): pip install 'seqlab[grade]' (students need only seqlab itself)"
    )
