"""Fixtures shared by several test files: the book, built once per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def build(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """Build the book once: (the finished jupyter-book process, the html folder)."""
    out = tmp_path_factory.mktemp("book")
    bin_dir = Path(sys.executable).parent
    env = dict(
        os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", MPLBACKEND="Agg"
    )
    process = subprocess.run(
        [
            str(bin_dir / "jupyter-book"),
            "build",
            str(REPO),
            "--path-output",
            str(out),
            "--warningiserror",
            "--nitpick",
            "--keep-going",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    return process, out / "_build" / "html"


@pytest.fixture(scope="session")
def html_dir(request) -> Path:
    """The built book's html folder. SEQLAB_BOOK_HTML names one built already (to iterate
    on the browser tests); by default the book is built for this session."""
    if os.environ.get("SEQLAB_BOOK_HTML"):
        return Path(os.environ["SEQLAB_BOOK_HTML"])
    process, html = request.getfixturevalue("build")
    if process.returncode != 0:
        pytest.fail(f"the book did not build:\n{process.stdout[-4000:]}\n{process.stderr[-4000:]}")
    return html
