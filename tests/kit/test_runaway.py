"""A runaway answer costs one time limit: after a test cell of a function hits the
limit, the later cells that call that function fail at once, with a reason, and
the cells of other functions still run (seqlab.kit.plugins.LimitedExecute)."""

import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from seqlab.kit import plugins

pytestmark = pytest.mark.grading

LIMIT = 3  # seconds a cell may run here


def _cell(source, grade_id, solution=False, points=1):
    meta = {"grade": not solution, "solution": solution, "locked": not solution,
            "grade_id": grade_id, "schema_version": 3, "task": False}  # fmt: skip
    if not solution:
        meta["points"] = points
    return new_code_cell(source, metadata={"nbgrader": meta})


def test_names_of_graded_functions_and_the_cells_that_test_them():
    nb = new_notebook(cells=[
        _cell("def beam(x):\n    return x\n\nclass Beam:\n    pass", "beam", solution=True),
        _cell("def beam_search(x):\n    return x", "beam_search", solution=True),
    ])  # fmt: skip
    names = plugins.answered_names(nb)
    assert names == {"beam", "Beam", "beam_search"}
    assert plugins.tested_function("test_beam_search_values", names) == "beam_search"
    assert plugins.tested_function("test_beam", names) == "beam"
    assert plugins.tested_function("test_tiny_transformer", names) is None


def test_a_runaway_costs_one_time_limit_and_other_functions_still_run():
    nb = new_notebook(
        cells=[
            _cell("def spin(n):\n    while True:\n        pass", "spin", solution=True),
            _cell("def double(n):\n    return 2 * n", "double", solution=True),
            _cell("assert spin(1) == 1", "test_spin_values"),
            _cell("assert double(2) == 4", "test_double"),
            _cell("# spin's second behaviour\nassert spin(2) == 2", "test_spin_edges"),
            _cell("print('spin')  # a string naming it calls nothing\nassert double(3) == 6",
                  "test_double_more"),  # fmt: skip
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    started = time.monotonic()
    out, _ = plugins.LimitedExecute(timeout=LIMIT, kernel_name="python3").preprocess(nb, {})
    took = time.monotonic() - started
    errors = {
        c.metadata["nbgrader"]["grade_id"]: [o for o in c.outputs if o.output_type == "error"]
        for c in out.cells
    }
    assert errors["test_spin_values"], "the first cell that hangs is stopped at the limit"
    assert errors["test_double"] == [] and errors["test_double_more"] == []
    skipped = errors["test_spin_edges"]
    assert len(skipped) == 1 and skipped[0].ename == "TimeoutError"
    assert "spin ran past the time limit in test_spin_values" in skipped[0].evalue
    assert took < 2 * LIMIT + 20, f"{took:.0f} s: the second cell of spin ran to its limit too"
    nbformat.validate(out)
