"""The built book in a real browser: Debian's chromium, driven by Playwright.

Used by tests/book/test_browser.py and by ``make screenshots``::

    python tests/book/browser.py _build/html _build/screenshots

which saves every page of the book at desktop and phone width.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
# Chromium as root in a sandbox, and with no network: no background connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """The chromium executable (``SEQLAB_CHROMIUM`` overrides the search)."""
    path = os.environ.get("SEQLAB_CHROMIUM") or shutil.which("chromium")
    if not path:
        raise RuntimeError(
            "the browser tests need Debian's chromium: apt-get install chromium "
            "(or set SEQLAB_CHROMIUM to a Chromium executable); .ci/run installs it"
        )
    return path


def toc_pages() -> list[str]:
    """The book's pages, in the order of _toc.yml, as html paths ("book/intro.html")."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files, stack = [toc["root"]], list(toc.get("chapters", []))
    while stack:
        entry = stack.pop(0)
        if "file" in entry:
            files.append(entry["file"])
        stack.extend(entry.get("sections", []))
    return [f"{f}.html" for f in files]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@contextlib.contextmanager
def jupyter_lab(
    root: Path, scratch: Path, server: str = "jupyterlab", environ: dict | None = None
) -> Iterator[str]:
    """JupyterLab of this environment (its extensions and settings: widgets, jupytext,
    nbgrader) serving ``root`` on a free port; yields its URL, with the token as a query.
    ``scratch`` holds its own config, data and runtime folders (nothing of the user's) and
    its log. ``server="jupyter_server"`` starts the bare server (for the formgrader);
    ``environ`` replaces this process's environment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    environ = dict(os.environ if environ is None else environ)
    lab = ["--LabApp.expose_app_in_browser=True",  # window.jupyterapp, for the tests
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]  # fmt: skip
    for name in ("config", "data", "runtime"):
        (scratch / name).mkdir(parents=True, exist_ok=True)
        environ[f"JUPYTER_{name.upper()}_DIR"] = str(scratch / name)
    log = open(scratch / "jupyter.log", "w+")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", server, "--no-browser", "--allow-root", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         *(lab if server == "jupyterlab" else [])],
        cwd=root, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"{server} did not start:\n{log.read()}") from None
                time.sleep(0.3)
        yield f"{url}/?token={token}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@contextlib.contextmanager
def serve(html_dir: Path) -> Iterator[str]:
    """Serve ``html_dir`` on localhost, as a static host would; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def browser():
    """A headless chromium, closed at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def wait_for_math(page) -> None:
    """Wait until MathJax has typeset the page (pages without math return at once)."""
    page.evaluate(
        "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
        " ? MathJax.startup.promise.then(() => true) : true"
    )


def screenshots(html_dir: Path, out: Path) -> list[Path]:
    """Every page of the book at desktop and phone width, as full-page PNGs in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with serve(html_dir) as base, browser() as b:
        for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page = b.new_page(viewport=size)
            for name in toc_pages():
                page.goto(base + name, wait_until="load")
                wait_for_math(page)
                path = out / f"{name.removesuffix('.html').replace('/', '-')}-{size_name}.png"
                page.screenshot(path=str(path), full_page=True)
                saved.append(path)
            page.close()
    return saved


if __name__ == "__main__":
    html, out = (Path(a) for a in (sys.argv[1:3] if len(sys.argv) >= 3 else sys.exit(__doc__)))
    for path in screenshots(html, out):
        print(f"saved {path}")
