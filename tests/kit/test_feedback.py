"""The feedback page a student gets, rendered here from cells without grading a class.

The course's nbgrader_config.py sets it (seqlab.kit.plugins.configure_feedback): the
grades with the answers still to be graded by hand, the hidden tests redacted, on the
course's own page (seqlab/kit/templates/feedback). The pages that real grading
writes, and a grade given by hand then fed back, are checked by
tests/kit/test_grading_roundtrip.py; the page's widths in a browser by
tests/kit/test_feedback_browser.py.
"""

from __future__ import annotations

import fnmatch
import html
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import torch
from course_helpers import REPO
from traitlets.config import Config

from seqlab import grading
from seqlab.kit import course, plugins

pytestmark = pytest.mark.grading

HIDDEN_CODE = (
    "### BEGIN HIDDEN TESTS\n"
    "_got = grading.call(sequence_nll, _logits_of_the_secret_case, _targets_of_it, 0,"
    " forbid='sequence_nll')\n"
    "grading.assert_close(_got, _expected_loss_of_the_secret_case, 'the weights of a padded"
    " batch, float64 on cpu')\n"
    "### END HIDDEN TESTS"
)
# a message and a line that a browser cannot break at a space
UNBROKEN = "x" * 400
LONG_NAME = "a_name_as_long_as_a_sentence_" * 12


def failed_comparison() -> str:
    """What a hidden test's assert_close says when the first wrong value is at [1, 3]."""
    want = torch.full((2, 4), 0.25, dtype=torch.float64)
    got = want.clone()
    got[1, 3] = 0.3125
    with pytest.raises(AssertionError) as failure:
        grading.assert_close(got, want, "the weights of a padded batch, float64 on cpu")
    return str(failure.value)


def _cell(cell, **nbgrader):
    cell.metadata["nbgrader"] = {"schema_version": 3, "locked": False, "task": False} | nbgrader
    return cell


def graded_notebook() -> tuple[nbformat.NotebookNode, dict]:
    """A graded submission as GetGradesAndPending leaves it: one failed test with a hidden
    part, one written answer not graded yet (3 points), one graded by hand (2.5 of 4)."""
    new = nbformat.v4
    cells = [
        new.new_markdown_cell("# Exercise\n\n" r"The score is $\frac{\sum_t \log p}{n^\alpha}$."),
        _cell(
            new.new_code_cell(
                f"def sequence_nll(logits, targets, pad_id):\n    {LONG_NAME} = 1\n",
                outputs=[new.new_output("stream", name="stdout", text=UNBROKEN + "\n")],
            ),
            grade=False,
            solution=True,
            grade_id="sequence_nll",
        ),
        _cell(
            new.new_code_cell(
                "assert sequence_nll is not None, 'visible'\n" + HIDDEN_CODE,
                outputs=[
                    new.new_output(
                        "error",
                        ename="AssertionError",
                        evalue=failed_comparison(),
                        traceback=["----> 2 _got = grading.call(sequence_nll, _logits_of_the..."],
                    )
                ],
            ),
            grade=True,
            solution=False,
            grade_id="test_sequence_nll",
            points=3,
            score=0.0,
            pending=False,
        ),
        _cell(
            new.new_markdown_cell("Greedy keeps one prefix; $\\log p$ adds up."),
            grade=True,
            solution=True,
            grade_id="beam_answer",
            points=3,
            score=0.0,
            pending=True,
        ),
        _cell(
            new.new_markdown_cell("Each term is at most 0."),
            grade=True,
            solution=True,
            grade_id="derivation",
            points=4,
            score=2.5,
            pending=False,
            comment="Part (c) is missing.",
        ),
    ]
    nb = new.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    resources = {
        "nbgrader": {
            "notebook": "seq2seq", "assignment": "seq2seq", "student": "ada",
            "score": 2.5, "max_score": 10.0, "late_penalty": 0.0, "pending": 3.0,
        },
    }  # fmt: skip
    return nb, resources


def render(nb: nbformat.NotebookNode, resources: dict) -> str:
    """The page nbgrader's GenerateFeedback writes with the course's configuration, from a
    notebook whose grades are already read (every feedback step after GetGrades)."""
    c = Config()
    plugins.configure_feedback(c)
    first, *rest = c.GenerateFeedback.preprocessors
    assert first is plugins.GetGradesAndPending
    exporter = c.GenerateFeedback.exporter_class(config=c)
    for step in rest:  # as nbgrader's converters register them
        exporter.register_preprocessor(step, enabled=True)
    page, _ = exporter.from_notebook_node(nb, resources=resources)
    return page


def feedback_page(folder: Path) -> Path:
    """The rendered page of graded_notebook, as a file in ``folder``."""
    path = folder / "feedback.html"
    path.write_text(render(*graded_notebook()))
    return path


def text_of(page: str) -> str:
    """What a reader sees: the page without its tags, white space squeezed."""
    body = page[page.index("<body") :]
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.fixture(scope="module")
def page() -> str:
    return render(*graded_notebook())


def test_the_course_config_uses_the_feedback_page_and_the_pending_grades():
    settings = course.config(REPO)
    assert settings.GenerateFeedback.preprocessors[:2] == [
        plugins.GetGradesAndPending,
        plugins.RedactHiddenTests,
    ]
    assert settings.GenerateFeedback.exporter_class is plugins.FeedbackExporter
    assert settings.FeedbackExporter.template_name == "feedback"
    # the course's page first; nbgrader's templates stay on the path, and the formgrader's
    # HTMLExporter (its formgrade page) is left alone
    basedirs = [Path(d) for d in settings.FeedbackExporter.extra_template_basedirs]
    assert basedirs == [plugins.TEMPLATES, plugins.NBGRADER_TEMPLATES]
    assert (plugins.NBGRADER_TEMPLATES / "formgrade").is_dir()
    assert "template_name" not in settings.HTMLExporter
    assert "extra_template_basedirs" not in settings.HTMLExporter


def test_nbgrader_api_and_command_line_settings_still_give_the_course_page():
    """nbgrader's GenerateFeedback sets HTMLExporter's template and folders where the config
    does not, and its API (formgrader, python -m seqlab.kit grade) forces the template name:
    the course's page wins both ways."""
    c = Config()
    plugins.configure_feedback(c)
    c.HTMLExporter.template_name = "feedback"
    c.HTMLExporter.extra_template_basedirs = [str(plugins.NBGRADER_TEMPLATES)]
    exporter = plugins.FeedbackExporter(config=c)
    assert Path(exporter.extra_template_basedirs[0]) == plugins.TEMPLATES
    nb, resources = graded_notebook()
    page, _ = exporter.from_notebook_node(nb, resources=resources)
    assert "points still to be graded by hand" in page


def test_the_template_is_installed_with_the_package():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = data["package-data"]["seqlab.kit"]
    kit = REPO / "seqlab" / "kit"
    files = [p.relative_to(kit).as_posix() for p in plugins.TEMPLATES.rglob("*") if p.is_file()]
    assert "templates/feedback/index.html.j2" in files
    assert all(any(fnmatch.fnmatch(f, pattern) for pattern in patterns) for f in files), files


def test_a_failing_hidden_test_says_what_differs_and_never_shows_its_code(page):
    text = text_of(page)
    message = failed_comparison()
    assert "at [1, 3]: expected 0.25, got 0.3125 (largest gap 0.0625)" in message
    assert message in text and plugins.WITHHELD not in text
    for secret in ("_logits_of_the_secret_case", "_expected_loss_of_the_secret_case", "_targets"):
        assert secret not in page
    assert "# (hidden tests)" in text and "visible" in text


def test_ungraded_written_answers_are_pending_and_the_total_says_how_many_points(page):
    text = text_of(page)
    assert "Score: 2.5 / 10 (3 points still to be graded by hand)" in text
    assert "Written answer beam_answer : to be graded by hand (3 points)" in text
    assert "Score: 0 / 3" in text  # the failed test
    assert text.count("to be graded by hand (3 points)") == 2  # the summary and the cell
    assert "Written answer derivation : Score: 2.5 / 4" in text
    assert "Part (c) is missing." in text


def test_a_page_with_nothing_pending_shows_only_the_score():
    nb, resources = graded_notebook()
    nb.cells[3].metadata.nbgrader.update(pending=False, score=3.0)
    resources["nbgrader"].update(pending=0.0, score=5.5)
    text = text_of(render(nb, resources))
    assert "Score: 5.5 / 10" in text and "graded by hand" not in text


def test_the_page_loads_nothing_from_the_network(page):
    assert not re.search(r"<script[^>]*\bsrc=", page), "the page loads a script"
    assert not re.search(r"<link[^>]*\bhref=", page), "the page loads a style sheet"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page), "CSS that fetches a file"
    assert "mathjax" not in page.lower()
    # formulas stay as the TeX the student wrote, readable without MathJax
    assert r"$\frac{\sum_t \log p}{n^\alpha}$" in text_of(page)
    assert len(page) < 60_000, "a feedback page should stay small"


def test_long_messages_and_lines_wrap_inside_their_box(page):
    style = next(s for s in re.findall(r"<style>(.*?)</style>", page, re.S) if "seqlab" in s)
    rule = re.search(r"(?m)^pre\s*\{([^}]*)\}", style)
    assert rule and "white-space: pre-wrap" in rule[1] and "overflow-wrap: anywhere" in rule[1]
    assert re.search(r"body\s*\{[^}]*overflow-wrap: anywhere", style)
    assert re.search(r'<meta[^>]*"width=device-width[^>]*name="viewport"', page)
    assert UNBROKEN in page and LONG_NAME in page


def test_a_message_may_name_what_the_notebook_shows_but_not_quote_the_hidden_code():
    """A run of the hidden code that the notebook shows anyway (a graded function's long
    name, called by a visible test) does not withhold a message; the rest still does."""
    hidden = (
        "### BEGIN HIDDEN TESTS\n"
        "_w = scaled_dot_product_attention(_secret_queries_of_case_7, _k, _v)\n"
        "### END HIDDEN TESTS"
    )
    names_it = "scaled_dot_product_attention on cpu: values differ from the expected ones at [0]"
    quotes_it = "see _w=scaled_dot_product_attention(_secret_queries_of_case_7"
    cells = [
        _cell(
            nbformat.v4.new_code_cell(
                "out = scaled_dot_product_attention(q, k, v)\n" + hidden,
                outputs=[nbformat.v4.new_output("error", ename="AssertionError", evalue=evalue)],
            ),
            grade=True,
            solution=False,
            grade_id=f"test_{i}",
            points=1,
        )  # fmt: skip
        for i, evalue in enumerate([names_it, quotes_it])
    ]
    out, _ = plugins.RedactHiddenTests().preprocess(nbformat.v4.new_notebook(cells=cells), {})
    assert [c.outputs[0].evalue for c in out.cells] == [names_it, plugins.WITHHELD]
