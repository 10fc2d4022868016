"""The course's nbgrader preprocessors, set by its ``nbgrader_config.py``.

* :func:`configure` sets nbgrader's autograde steps, :class:`LimitedExecute`
  in place of ``Execute``, and the sandboxed kernels (:mod:`seqlab.kit.sandbox`);
* :class:`LimitedExecute` runs a submission (nbgrader's ``Execute``) with a
  ceiling on its output, in the grader's process;
* :class:`RedactHiddenTests` writes the feedback a student gets: what the
  grader decided (pass or fail, points, the error's name and message), never
  the hidden tests, whatever the notebook's code printed;
* :class:`GetGradesAndPending` reads each cell's grade into the feedback, and
  which answers still wait for a grade by hand, shown as pending, not as 0,
  by the course's feedback page (``templates/feedback``, :func:`configure_feedback`).

They run inside nbgrader, as the grader; student code runs in the sandboxed
kernel (:mod:`seqlab.kit.sandbox`).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import io
import json
import re
import tokenize
from pathlib import Path

import nbgrader
from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import (
    ClearMetadataPreprocessor,
    CSSHTMLHeaderPreprocessor,
    Preprocessor,
)
from nbformat.v4 import new_output
from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearSolutions,
    Execute,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)
from traitlets import Bool, Integer

from seqlab.kit import sandbox

TEMPLATES = Path(__file__).with_name("templates")  # the course's feedback page
# nbgrader's own (its feedback and formgrade pages), which GenerateFeedback puts on the path
NBGRADER_TEMPLATES = Path(nbgrader.__file__).parent / "server_extensions/formgrader/templates"

BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"


class LimitedExecute(Execute):
    """nbgrader's Execute, with a ceiling on what a notebook may print.

    Past ``cell_output`` bytes in one cell (or ``notebook_output`` in the whole
    notebook) further output is dropped and one line says so: a cell that prints
    a gigabyte costs its own time limit, not the grader's memory. A test cell's
    result (``execute_result``) is never kept: nbgrader would read a number there
    as partial credit, and a hook of the notebook's could show one.
    """

    cell_output = Integer(2**20, help="bytes of output one cell may send").tag(config=True)
    notebook_output = Integer(8 * 2**20, help="bytes of output a notebook may send").tag(
        config=True
    )

    def preprocess(self, nb, resources=None, km=None):
        self._sent: dict[int, int] = {}
        self._total = 0
        self._told: set[int] = set()
        self._runaway: tuple[str, str] | None = None  # (function, the test cell it hung in)
        return super().preprocess(nb, resources, km)

    async def _async_handle_timeout(self, timeout, cell=None):
        # a test cell ran past its limit: remember the graded function it tests, so that
        # the later cells that call it fail at once instead of costing a limit each
        if cell is not None and self._runaway is None and _is_test(cell):
            grade_id = cell.metadata["nbgrader"].get("grade_id", "")
            function = tested_function(grade_id, answered_names(self.nb))
            if function:
                self._runaway = function, grade_id
                self.log.warning(
                    "%s%s ran past the %s s limit in %s; later cells that call it are not run",
                    RUNAWAY, function, timeout, grade_id,
                )  # fmt: skip
        return await super()._async_handle_timeout(timeout, cell)

    def preprocess_cell(self, cell, resources, index):
        if self._runaway and cell.cell_type == "code" and not _is_answer(cell):
            function, grade_id = self._runaway
            if re.search(rf"\b{re.escape(function)}\b", _without_strings(cell.source)):
                message = (
                    f"not run: {function} ran past the time limit in {grade_id}, so the "
                    f"cells that call it after that fail without running (a loop that never "
                    f"ends costs one time limit, not one per cell)"
                )
                cell.outputs = [
                    new_output("error", ename="TimeoutError", evalue=message, traceback=[message])
                ]
                return cell, resources
        return super().preprocess_cell(cell, resources, index)

    def output(self, outs, msg, display_id, cell_index):
        # nbgrader reads a number shown as a test cell's result as partial credit: only
        # the test's own code may decide, so no result of a test cell is kept (a hook
        # of the notebook's could show one); the course's tests end in assertions
        if msg["msg_type"] == "execute_result" and _is_test(self.nb.cells[cell_index]):
            return None
        size = len(json.dumps(msg.get("content", {})))
        self._total += size
        self._sent[cell_index] = self._sent.get(cell_index, 0) + size
        over = self._sent[cell_index] > self.cell_output or self._total > self.notebook_output
        # an error always stays: it is what fails a test
        if over and msg["msg_type"] != "error":
            # what is still on its way is dropped too: no need to wait for it
            self.raise_on_iopub_timeout = False
            if cell_index not in self._told:
                self._told.add(cell_index)
                # on stdout: nbgrader fails a test cell that wrote to stderr
                outs.append(
                    new_output(
                        "stream",
                        name="stdout",
                        text=f"[output stopped here: while graded, a cell may print at most "
                        f"{self.cell_output // 2**10} KiB and a notebook "
                        f"{self.notebook_output // 2**20} MiB]\n",
                    )
                )
            return None
        return super().output(outs, msg, display_id, cell_index)


# An error's message in the feedback is cut to this many characters.
MESSAGE_LIMIT = 1000
# Quoting this many characters of the hidden tests' code (string literals left out,
# white space ignored) withholds a message.
QUOTE = 24
WITHHELD = "(message withheld: it quotes the hidden tests)"


RUNAWAY = "runaway: "  # starts the log line that names a function that hung


def _is_answer(cell) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution"))


def answered_names(nb) -> set[str]:
    """The functions and classes the notebook's answer cells define (the graded ones)."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and _is_answer(cell):
            names.update(re.findall(r"^\s*(?:async\s+)?(?:def|class)\s+(\w+)", cell.source, re.M))
    return names


def tested_function(grade_id: str, names: set[str]) -> str | None:
    """The graded function a test cell ``test_<function>`` or ``test_<function>_<what>``
    checks, of ``names``; None for another cell."""
    fits = [n for n in names if grade_id == f"test_{n}" or grade_id.startswith(f"test_{n}_")]
    return max(fits, key=len) if fits else None


def _is_test(cell) -> bool:
    nbgrader = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(nbgrader.get("grade")) and not nbgrader.get("solution")


def _split(source: str) -> tuple[str, str]:
    """A test cell's source as (its hidden tests, the rest with a placeholder for them)."""
    hidden, visible, inside = [], [], False
    for line in source.split("\n"):
        if BEGIN_HIDDEN in line:
            inside = True
        elif END_HIDDEN in line:
            inside = False
            visible.append("# (hidden tests)")
        elif inside:
            hidden.append(line)
        else:
            visible.append(line)
    return "\n".join(hidden), "\n".join(visible)


def _without_strings(code: str) -> str:
    """The code's tokens but its string literals and comments: an assertion's own message
    is a literal of the test, and the feedback may well show it."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return re.sub(r"(['\"]).*?\1", " ", code)
    kept = [t.string for t in tokens if t.type not in (tokenize.STRING, tokenize.COMMENT)]
    return " ".join(kept)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _runs(flat: str) -> set[str]:
    return {flat[i : i + QUOTE] for i in range(max(0, len(flat) - QUOTE + 1))}


class _Secrets:
    """Every QUOTE-character run of the hidden tests' code (white space ignored), but
    those the feedback shows anyway: a run found in ``visible`` (the notebook's text
    outside the hidden tests), such as a graded function's long name
    (``scaled_dot_product_attention``), gives nothing away."""

    def __init__(self, hidden: str, visible: str = ""):
        shown = _runs(_squash(visible)) | _runs(_squash(_without_strings(visible)))
        self.runs = _runs(_squash(_without_strings(hidden))) - shown

    def quoted_in(self, text: str) -> bool:
        if not self.runs:
            return False
        for candidate in _readings(text):
            flat = _squash(candidate)
            if any(flat[i : i + QUOTE] in self.runs for i in range(len(flat) - QUOTE + 1)):
                return True
        return False


def _readings(text: str):
    """The text, and the ways a notebook could have disguised a quote in it."""
    yield text
    yield text[::-1]
    yield codecs.encode(text, "rot13")
    for token in re.findall(r"[A-Za-z0-9+/=_\-]{16,}", text):
        for decode in (base64.b64decode, base64.urlsafe_b64decode, base64.b32decode):
            try:
                yield decode(token + "=" * (-len(token) % 4)).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                pass
    for token in re.findall(r"(?:[0-9a-fA-F]{2}){8,}", text):
        yield bytes.fromhex(token).decode("utf-8", "replace")


def _message(output, secrets: _Secrets) -> str:
    name = str(output.get("ename", "Error"))
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]{0,79}", name):
        name = "Error"
    message = str(output.get("evalue", ""))
    if secrets.quoted_in(name + " " + message):
        message = WITHHELD
    elif len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + " [...]"
    return f"{name}: {message}" if message else name


class RedactHiddenTests(Preprocessor):
    """nbgrader feedback preprocessor: the feedback holds what the grader decided.

    * Test cells lose their ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``
      region. Of their outputs only errors stay, reduced to ``ErrorName: message``:
      anything else printed while a test ran may have been printed by the
      notebook's own code (an IPython hook, a patched ``print``, a thread) and
      may quote the test.
    * From the first test cell on, every cell's outputs are reduced the same way
      (a hook that saw one test can print it in a later answer's output); the
      cells before it show the student's own output, which no test has touched.
    * A message that quotes the hidden tests' code (even reversed, ROT13, base64 or
      hex) is withheld, and every message is cut to MESSAGE_LIMIT characters. What
      the notebook shows anyway (a graded function's name) is not a quote.

    The grade and the pass/fail mark are nbgrader's, computed from the autograded
    notebook, and stay.
    """

    # nbconvert runs a registered preprocessor only when it is enabled
    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb, resources):
        tests = [_split(c.source) if _is_test(c) else ("", c.source) for c in nb.cells]
        secrets = _Secrets("\n".join(h for h, _ in tests), "\n".join(v for _, v in tests))
        touched = False
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            test = _is_test(cell)
            touched = touched or test
            if test:
                cell.source = _split(cell.source)[1]
            if touched:
                outputs = [
                    new_output(
                        "error",
                        ename=o.get("ename", "Error"),
                        evalue=o.get("evalue", ""),
                        traceback=[_message(o, secrets)],
                    )
                    for o in cell.get("outputs", [])
                    if o.get("output_type") == "error"
                ]
                for output in outputs:
                    output["ename"], _, output["evalue"] = output["traceback"][0].partition(": ")
                cell.outputs = outputs
        return nb, resources


class GetGradesAndPending(GetGrades):
    """nbgrader's GetGrades (each graded cell's score and points from the gradebook), which
    also marks the cells that no one has graded yet: a written answer (or any cell without
    an automatic score) whose grade by hand has not been given. Each such cell gets
    ``nbgrader.pending = True``, and ``resources["nbgrader"]["pending"]`` the points they
    are worth, so that the feedback shows them as still to be graded by hand instead of
    as 0. Once a grader gives the grade (formgrader or the gradebook API) and the feedback
    is generated again, the cell shows its score."""

    def preprocess(self, nb, resources):
        self._pending = 0.0
        nb, resources = super().preprocess(nb, resources)
        resources["nbgrader"]["pending"] = self._pending
        return nb, resources

    def _get_score(self, cell, resources) -> None:
        grade = self.gradebook.find_grade(
            cell.metadata["nbgrader"]["grade_id"],
            self.notebook_id,
            self.assignment_id,
            self.student_id,
        )
        # nbgrader counts a grade with neither score as 0; it is not graded yet
        pending = grade.manual_score is None and grade.auto_score is None
        cell.metadata.nbgrader["score"] = grade.score
        cell.metadata.nbgrader["points"] = grade.max_score
        cell.metadata.nbgrader["pending"] = pending
        if pending:
            self._pending += grade.max_score or 0.0


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter on the course's feedback page, ``templates/feedback``
    (which nbgrader's template of the same name would otherwise be). Its own class, so
    that its settings leave alone the formgrader's HTMLExporter, which renders submissions
    with nbgrader's ``formgrade`` template."""


def configure_feedback(c) -> None:
    """The feedback the course returns, in the traitlets config ``c``: the grades with the
    answers still to be graded by hand (:class:`GetGradesAndPending`), the hidden tests
    redacted (:class:`RedactHiddenTests`), on the course's own page
    (``templates/feedback/index.html.j2``, through :class:`FeedbackExporter`, for
    ``nbgrader generate_feedback`` and for nbgrader's API and formgrader alike). The page
    is one file that loads nothing from the network (no script, font or style sheet:
    formulas stay as the TeX the student wrote) and wraps long messages and lines inside
    their box. nbgrader's own templates stay on the path, after the course's."""
    c.GenerateFeedback.preprocessors = [
        GetGradesAndPending,
        RedactHiddenTests,
        CSSHTMLHeaderPreprocessor,
    ]
    c.GenerateFeedback.exporter_class = FeedbackExporter
    # set on the subclass, these win over the HTMLExporter settings nbgrader adds
    c.FeedbackExporter.template_name = "feedback"
    c.FeedbackExporter.extra_template_basedirs = [str(TEMPLATES), str(NBGRADER_TEMPLATES)]


STUB = "raise NotImplementedError()"  # the last line of ClearSolutions.code_stub


class NamedStubs(ClearSolutions):
    """nbgrader's ClearSolutions, whose stub says which function is left to write: an
    unanswered notebook then stops (Run All) or fails (Validate) with
    ``NotImplementedError: beam_search is not written yet: ...``, not a bare name."""

    def preprocess_cell(self, cell, resources, cell_index):
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if cell.cell_type == "code" and STUB in cell.source:
            lines = cell.source.split("\n")
            for i, line in enumerate(lines):
                if line.strip() == STUB:
                    name = _enclosing(lines[:i], len(line) - len(line.lstrip()))
                    what = f"{name} is not written yet" if name else "this cell is not answered yet"
                    message = f"{what}: replace this line with your code, then run the cell"
                    lines[i] = line.replace(STUB, f"raise NotImplementedError({message!r})")
            cell.source = "\n".join(lines)
        return cell, resources


def _enclosing(lines: list[str], indent: int) -> str:
    """The qualified name of the def/class blocks that hold a line indented ``indent``."""
    names = []
    for line in reversed(lines):
        match = re.match(r"(\s*)(?:async\s+)?(?:def|class)\s+(\w+)", line)
        if match and len(match[1]) < indent:
            names.append(match[2])
            indent = len(match[1])
    return ".".join(reversed(names))


def configure(c) -> None:
    """The course's release and autograding, in the traitlets config ``c``
    (nbgrader_config.py calls it): stubs that name their function (:class:`NamedStubs`);
    nbgrader's own autograde steps with :class:`LimitedExecute` running the notebook,
    each kernel in the grading sandbox (:func:`seqlab.kit.sandbox.configure`)."""
    steps = GenerateAssignment.class_traits()["preprocessors"].default()
    c.GenerateAssignment.preprocessors = [NamedStubs if p is ClearSolutions else p for p in steps]
    c.Autograde.autograde_preprocessors = [
        LimitedExecute,
        IgnorePattern,
        ClearMetadataPreprocessor,
        LimitOutput,
        SaveAutoGrades,
        AssignLatePenalties,
        CheckCellMetadata,
    ]
    sandbox.configure(c)
