"""The course's nbgrader preprocessors, set by its ``nbgrader_config.py``.

* :func:`configure` sets nbgrader's autograde steps, :class:`LimitedExecute`
  in place of ``Execute``, and the sandboxed kernels (:mod:`seqlab.kit.sandbox`);
* :class:`LimitedExecute` runs a submission (nbgrader's ``Execute``) with a
  ceiling on its output, in the grader's process;
* :class:`RedactHiddenTests` writes the feedback a student gets: what the
  grader decided (pass or fail, points, the error's name and message), never
  the hidden tests, whatever the notebook's code printed.

Both run inside nbgrader, as the grader; student code runs in the sandboxed
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

from nbconvert.preprocessors import ClearMetadataPreprocessor, Preprocessor
from nbformat.v4 import new_output
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    Execute,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)
from traitlets import Bool, Integer

from seqlab.kit import sandbox

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
        return super().preprocess(nb, resources, km)

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


class _Secrets:
    """Every QUOTE-character run of the hidden tests' code (white space ignored)."""

    def __init__(self, hidden: str):
        code = _squash(_without_strings(hidden))
        self.runs = {code[i : i + QUOTE] for i in range(max(0, len(code) - QUOTE + 1))}

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
      hex) is withheld, and every message is cut to MESSAGE_LIMIT characters.

    The grade and the pass/fail mark are nbgrader's, computed from the autograded
    notebook, and stay.
    """

    # nbconvert runs a registered preprocessor only when it is enabled
    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb, resources):
        secrets = _Secrets("\n".join(_split(c.source)[0] for c in nb.cells if _is_test(c)))
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


def configure(c) -> None:
    """The course's autograding, in the traitlets config ``c`` (nbgrader_config.py calls
    it): nbgrader's own autograde steps with :class:`LimitedExecute` running the
    notebook, each kernel in the grading sandbox (:func:`seqlab.kit.sandbox.configure`)."""
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
