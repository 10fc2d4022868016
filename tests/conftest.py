"""What every test file shares: each test belongs to a chapter or a part of the course, and
the book is built once per session, in the background while the other tests run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from seqlab.chapters import CHAPTERS

REPO = Path(__file__).resolve().parents[1]
# The parts of the course a test can belong to besides a chapter (pyproject.toml lists them all).
PARTS = ("base", "book", "browser", "grading", "sandbox", "hub", "cluster", "bench")


def pytest_collection_modifyitems(config, items):
    """Every test belongs to one chapter or to a named part of the course, never two chapters,
    so that `pytest -m <chapter id>` runs exactly that chapter's tests."""
    wrong = []
    for item in items:
        names = {m.name for m in item.iter_markers()}
        chapters = names & set(CHAPTERS)
        if len(chapters) > 1 or not (chapters or names & set(PARTS)):
            wrong.append(f"{item.nodeid}: markers {sorted(names & (set(CHAPTERS) | set(PARTS)))}")
    if wrong:
        raise pytest.UsageError(
            "each test needs one chapter marker or a part marker "
            f"({', '.join(PARTS)}):\n" + "\n".join(wrong[:20])
        )
    # the tests that read the built book run last, while it builds beside the others
    book = [i for i in items if i.get_closest_marker("book") or i.get_closest_marker("browser")]
    if book:
        items[:] = [i for i in items if i not in book] + book


class _Build:
    """The book's build, started in the background as soon as the session knows it needs it."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="seqlab-book-"))
        bin_dir = Path(sys.executable).parent
        env = dict(
            os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", MPLBACKEND="Agg"
        )
        self.stdout = open(self.folder / "stdout.txt", "w+")  # noqa: SIM115 (closed in finish)
        self.stderr = open(self.folder / "stderr.txt", "w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(bin_dir / "jupyter-book"), "build", str(REPO),
             "--path-output", str(self.folder), "--warningiserror", "--nitpick", "--keep-going"],
            stdout=self.stdout, stderr=self.stderr, text=True, env=env,
        )  # fmt: skip

    def result(self) -> tuple[subprocess.CompletedProcess, Path]:
        returncode = self.process.wait(timeout=1800)
        self.stdout.seek(0)
        self.stderr.seek(0)
        done = subprocess.CompletedProcess(
            self.process.args, returncode, self.stdout.read(), self.stderr.read()
        )
        return done, self.folder / "_build" / "html"

    def finish(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stdout.close()
        self.stderr.close()
        shutil.rmtree(self.folder, ignore_errors=True)


_BUILD: list[_Build] = []


def pytest_collection_finish(session):
    """The book takes minutes to build: it starts now, beside the other tests, and the
    tests that read it run last (see pytest_collection_modifyitems)."""
    wanted = any(i.get_closest_marker("book") or i.get_closest_marker("browser")
                 for i in session.items)  # fmt: skip
    if wanted and not session.config.option.collectonly and not os.environ.get("SEQLAB_BOOK_HTML"):
        _BUILD.append(_Build())


def pytest_sessionfinish(session, exitstatus):
    for build in _BUILD:
        build.finish()
    _BUILD.clear()


@pytest.fixture(scope="session")
def build() -> tuple[subprocess.CompletedProcess, Path]:
    """The book, built once per session: (the finished jupyter-book process, the html folder)."""
    if not _BUILD:
        _BUILD.append(_Build())
    return _BUILD[0].result()


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
