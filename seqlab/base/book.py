"""What every book page needs around its numbers: glue, formatting and tables.

A page computes its numbers and pastes them into the prose with myst-nb's
``glue``; outside the book (Colab, a plain Jupyter) :func:`glue` does nothing,
so the page still runs top to bottom. Tables are built from rows of values,
never typed by hand, so every number in them is computed on the page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from IPython.display import Markdown

try:
    from myst_nb import glue as _myst_glue
except ImportError:  # outside the book there is nothing to paste into
    _myst_glue = None


def glue(name: str, value, display: bool = False) -> None:
    """Make ``value`` available to the page's prose as ``{glue:text}`name```.

    Unlike myst-nb's own ``glue``, nothing is displayed unless asked, and
    outside a book build nothing happens at all.
    """
    if _myst_glue is not None:
        _myst_glue(name, value, display=display)


def pct(x: float, digits: int = 1) -> str:
    """A share as a percentage for the prose: 0.9312 -> '93.1 %'."""
    return f"{100 * x:.{digits}f} %"


def num(x: float, digits: int = 2) -> str:
    """A number for the prose with a fixed number of decimals: 3.14159 -> '3.14'."""
    return f"{x:.{digits}f}"


def count(n: int) -> str:
    """A whole number with thousands separated by a thin space: 1234567 -> '1 234 567'."""
    return f"{int(n):,}".replace(",", "\u202f")


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def sci(x: float, digits: int = 2) -> str:
    """x rounded to ``digits`` significant digits, as text for the prose.

    0.042, 7.7, 0.9 or 1090; 1.1 × 10¹⁰ and 2.6 × 10⁻¹⁸ when very large or very
    small (the gradients of this chapter span forty orders of magnitude, which
    a fixed number of decimals cannot show).
    """
    if x == 0 or not math.isfinite(x):
        return str(x)
    if 1e-3 <= abs(x) < 1e4:
        decimals = digits - 1 - math.floor(math.log10(abs(x)))
        return f"{round(x, decimals):g}"
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa} × 10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def percent(share: float, digits: int = 2) -> str:
    """A share between 0 and 1 as a percentage with ``digits`` significant digits.

    0.488 -> '48.8 %' (digits=3); a tiny share keeps its digits: '1.2 × 10⁻⁵ %'.
    """
    return f"{sci(100 * share, digits)} %"


def _cell(value) -> str:
    text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(
    header: Sequence[str], rows: Iterable[Sequence], align: str | None = None
) -> str:
    """A Markdown table: ``header`` names the columns, each row gives one value per column.

    align: one character per column, ``l``, ``r`` or ``c`` (default: all left).
    Values are written with ``str``; format numbers before (:func:`pct`, :func:`num`).
    """
    header = list(header)
    rows = [list(row) for row in rows]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} values for {len(header)} columns: {row}")
    align = align or "l" * len(header)
    if len(align) != len(header) or set(align) - set("lrc"):
        raise ValueError(f"align should give one of l, r, c per column, got {align!r}")
    rule = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("| " + " | ".join(rule[a] for a in align) + " |")
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def table(header: Sequence[str], rows: Iterable[Sequence], align: str | None = None) -> Markdown:
    """The table of :func:`table_markdown`, to display as a cell's output."""
    return Markdown(table_markdown(header, rows, align))
