"""nbgrader configuration of the course.

Instructors run nbgrader from the repository root (``make release``,
``make grade``); students only need ``nbgrader validate``, which reads nothing
from here.
"""

import os

from seqlab.kit import plugins

c = get_config()  # noqa: F821 -- injected by nbgrader

c.CourseDirectory.course_id = "seqlab"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# solutions/<id>/ holds the instructor's notebooks; exercises/<id>/ is the
# student release that `nbgrader generate_assignment` writes from them.
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
# SQLite by default; a course on a hub sets SEQLAB_GRADEBOOK_URL to a
# PostgreSQL URL (postgresql://user:pass@host/db).
c.CourseDirectory.db_url = os.environ.get(
    "SEQLAB_GRADEBOOK_URL", "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")
)
# nbgrader's exchange, the folder its release, collect and feedback steps pass files
# through. On a JupyterHub (every user's server has JUPYTERHUB_USER) it is the hub's
# shared folder, which the hub's setup names (book/instructors.md, "Set up the hub").
# Elsewhere it is exchange/ in the course (not in git), made when missing, which no
# student reaches: the formgrader finds one and shows no "The exchange directory ...
# does not exist" warning.
if not os.environ.get("JUPYTERHUB_USER"):
    c.Exchange.root = os.path.join(c.CourseDirectory.root, "exchange")
    try:
        os.makedirs(c.Exchange.root, exist_ok=True)
    except OSError:  # a read-only copy of the course: only the formgrader's warning shows
        pass

# A cell may train a small model: give it 60 s (nbgrader's default is 30 s),
# but no more, so an infinite loop in an answer ends with a clear error.
# SEQLAB_CELL_TIMEOUT overrides it (seconds).
c.Execute.timeout = int(os.environ.get("SEQLAB_CELL_TIMEOUT", "60"))
c.Execute.interrupt_on_timeout = True

# Every kernel that runs a submission runs in the grading sandbox (bubblewrap):
# it sees the Python environment read-only and a scratch copy of its own
# folder, nothing of the course, no network, no other student's work, and has
# limits on memory (SEQLAB_GRADING_MEMORY_GB, default 4), processes, file size,
# output and time. Without bubblewrap grading stops and says how to install it;
# SEQLAB_NO_SANDBOX=1 grades trusted code in plain kernels (see seqlab/kit/sandbox.py).
# The autograde steps are nbgrader's, with a ceiling on each cell's output.
plugins.configure(c)

# Students who delete or edit a locked cell, a test cell or the setup cell
# get the instructor's version back when grading.
c.OverwriteCells.add_missing_cells = True

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Feedback goes back to students: it shows each test's pass/fail and error
# message, but never the hidden tests' source nor tracebacks that quote it;
# answers not yet graded by hand show as pending (not 0), with the points still
# to be graded in the total. The page is the course's own (seqlab/kit/templates):
# one self-contained file that loads nothing from the network (formulas stay as
# TeX) and wraps long messages at any screen width.
plugins.configure_feedback(c)

# `make grade ZIP=...` collects a zip of LMS downloads (seqlab.kit.course.collect_zip,
# then nbgrader zip_collect). Canvas names each file
#     name_[LATE_]userid_submissionid_notebook[-N].ipynb
# (a browser may add " (1)"). The LMS user id is the student id: two students with
# one name stay two, and grades.csv carries the id the LMS imports; the name (the
# first_name group) is kept in the gradebook for display, LATE_ and the submission id
# (the latest of a student's files wins) are read too. Adapt this pattern to another
# LMS: student_id and file_id are the groups nbgrader needs. The submission time is each
# file's time in the zip, which the LMS sets to when it was submitted: it goes to
# downloaded/<id>/lms.json and to nbgrader (submitted/<student>/<id>/timestamp.txt), which
# measures it against the due date (`make due`) and the student's extension (`make
# extension`). A zip's times carry no zone: they are read as UTC, or in the IANA zone that
# SEQLAB_LMS_TIMEZONE names (e.g. Europe/Berlin, where the LMS writes local times).
c.FileNameCollectorPlugin.named_regexp = (
    r".*/(?P<first_name>[^_/]+)_(?P<late>LATE_)?(?P<student_id>\d+)_(?P<submission>\d+)_"
    r"(?P<file_id>[A-Za-z0-9_]+?)(?:-\d+)?(?: ?\(\d+\))?\.ipynb$"
)

# A submission after its due date (an extension moves the student's) loses what nbgrader's
# LateSubmissionPlugin takes: SEQLAB_LATE_PENALTY=none (the default: it is only shown as
# late) or zero (its points are taken off: it counts 0). nbgrader decides it when it
# grades; the kit decides it again when a due date or an extension changes and at every
# `make grade` (seqlab.kit.report.apply_late_penalties).
c.LateSubmissionPlugin.penalty_method = os.environ.get("SEQLAB_LATE_PENALTY", "none")
