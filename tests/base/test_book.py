"""The book pages' helpers: glue outside the book, number formats, tables from rows."""

import math

import pytest
from IPython.display import Markdown

from seqlab.base import book
from seqlab.base.book import percent, sci

pytestmark = pytest.mark.base


def test_glue_outside_a_book_build_does_nothing_and_returns_none():
    assert book.glue("answer", 42) is None


def test_pct_num_and_count_format_for_the_prose():
    assert book.pct(0.9312) == "93.1 %"
    assert book.pct(0.5, digits=0) == "50 %"
    assert book.num(3.14159) == "3.14"
    assert book.num(2.0, digits=0) == "2"
    assert book.count(1234567) == "1\u202f234\u202f567"


def test_table_markdown_has_a_header_a_rule_and_one_line_per_row():
    text = book.table_markdown(["model", "accuracy"], [("GRU", "93.1 %"), ("LSTM", 0.5)], "lr")
    assert text.splitlines() == [
        "| model | accuracy |",
        "| --- | ---: |",
        "| GRU | 93.1 % |",
        "| LSTM | 0.5 |",
    ]


def test_table_escapes_pipes_and_newlines_in_values():
    text = book.table_markdown(["a"], [["x | y\nz"]])
    assert text.splitlines()[-1] == "| x \\| y z |"


def test_table_refuses_rows_of_the_wrong_width_and_unknown_alignments():
    with pytest.raises(ValueError, match="row 1 has 1 values for 2 columns"):
        book.table_markdown(["a", "b"], [(1, 2), (3,)])
    with pytest.raises(ValueError, match="align"):
        book.table_markdown(["a", "b"], [(1, 2)], align="lx")


def test_table_displays_as_markdown():
    shown = book.table(["a"], [[1]])
    assert isinstance(shown, Markdown) and "| 1 |" in shown.data


def test_sci_keeps_significant_digits_and_writes_powers_of_ten_when_far_from_one():
    assert sci(1093.0, 3) == "1090"
    assert sci(0.04213) == "0.042"
    assert sci(7.71) == "7.7"
    assert sci(0.9) == "0.9"
    assert sci(1.1e10) == "1.1 × 10¹⁰"
    assert sci(2.6e-18) == "2.6 × 10⁻¹⁸"
    assert sci(-3.14159, 3) == "-3.14"
    assert sci(0.0) == "0.0" and sci(math.inf) == "inf"


def test_percent_writes_a_share_with_significant_digits():
    assert percent(0.488, 3) == "48.8 %"
    assert percent(1.2e-7) == "1.2 × 10⁻⁵ %"
