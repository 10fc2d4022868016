"""The launch buttons of the built book work: Binder opens a chapter's page as a notebook in
JupyterLab, the JupyterHub button comes from one setting (and is absent when it is empty),
nothing points at a placeholder, and an "Open in Colab" badge, served by the book itself,
opens each chapter's exercise notebook.

The book is the one built for the session (tests/conftest.py), or the one SEQLAB_BOOK_HTML
names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
import yaml

pytestmark = pytest.mark.book

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
LAUNCH = CONFIG["launch_buttons"]
REPOSITORY_URL = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"]["branch"]
ORG_REPO = REPOSITORY_URL.removeprefix("https://github.com/")
CHAPTERS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
BADGE = re.compile(
    r'<a class="[^"]*\bcolab-badge\b[^"]*" href="(?P<href>[^"]+)"[^>]*>'
    r'<img src="(?P<src>[^"]+)" alt="(?P<alt>[^"]*)"'
)


def _hrefs(html: str) -> set[str]:
    return set(re.findall(r'href="([^"]+)"', html.replace("&amp;", "&")))


def _page(html_dir: Path, chapter: str) -> str:
    return (html_dir / "book" / f"{chapter}.html").read_text(encoding="utf-8")


def test_the_course_has_chapters():
    assert CHAPTERS and all((REPO / "book" / f"{c}.md").is_file() for c in CHAPTERS), CHAPTERS


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_binder_opens_the_chapter_page_in_jupyterlab(html_dir, chapter):
    binder_url = LAUNCH["binderhub_url"].rstrip("/")
    binder = [h for h in _hrefs(_page(html_dir, chapter)) if h.startswith(binder_url + "/")]
    # the chapter as a notebook with its numbers filled in, which binder/postBuild builds
    notebook = f"_build/html/_notebooks/book/{chapter}.ipynb"
    expected = f"{binder_url}/v2/gh/{ORG_REPO}/{BRANCH}?urlpath=lab/tree/{notebook}"
    assert binder == [expected], binder
    assert re.fullmatch(
        r"https://mybinder\.org/v2/gh/[\w.-]+/[\w.-]+/[\w.-]+\?urlpath=\S+", expected
    )
    assert (html_dir / "_notebooks" / "book" / f"{chapter}.ipynb").is_file()


def _placeholder(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    return (
        host.endswith((".example", ".invalid", ".test", ".localhost"))
        or host in ("localhost", "127.0.0.1")
        or re.search(r"(^|\.)example\.(com|net|org|edu)$", host) is not None
        or any(word in url.lower() for word in ("placeholder", "your-", "changeme"))
    )


def test_no_link_points_at_a_placeholder(html_dir):
    bad = []
    for page in sorted(html_dir.rglob("*.html")):
        if "_static" in page.parts:
            continue
        for href in _hrefs(page.read_text(encoding="utf-8")):
            if href.startswith(("http://", "https://")) and _placeholder(href):
                bad.append(f"{page.relative_to(html_dir)}: {href}")
    assert bad == [], "\n".join(bad[:20])
    hub = LAUNCH.get("jupyterhub_url") or ""
    assert hub == "" or (hub.startswith("https://") and not _placeholder(hub)), (
        f"_config.yml's jupyterhub_url is a placeholder: {hub!r} (leave it empty instead)"
    )


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_jupyterhub_button_only_when_the_hub_url_is_set(html_dir, chapter):
    html = _page(html_dir, chapter)
    pulls = [h for h in _hrefs(html) if "/hub/user-redirect/git-pull" in h]
    hub = (LAUNCH.get("jupyterhub_url") or "").rstrip("/")
    if not hub:
        assert pulls == [] and "logo_jupyterhub" not in html, pulls
        return
    assert len(pulls) == 1 and pulls[0].startswith(hub + "/hub/user-redirect/git-pull?"), pulls
    query = parse_qs(urlparse(pulls[0]).query)
    assert query["repo"] == [REPOSITORY_URL] and query["branch"] == [BRANCH], query
    assert query["urlpath"] == [f"lab/tree/{ORG_REPO.split('/')[1]}/book/{chapter}.md"], query


def test_the_theme_makes_the_jupyterhub_button_an_nbgitpuller_link(tmp_path):
    """What the theme does with _config.yml's launch settings once a term sets its hub."""
    from sphinx_book_theme.header_buttons.launch import add_launch_buttons

    hub = "https://hub.university.edu"
    theme = {
        "launch_buttons": dict(LAUNCH, jupyterhub_url=hub),
        "repository_url": REPOSITORY_URL,
        "repository_branch": BRANCH,
    }
    app = SimpleNamespace(
        config={"html_theme_options": theme},
        env=SimpleNamespace(
            doc2path=lambda name: str(tmp_path / f"{name}.ipynb"),
            metadata={"book/rnn_gradients": {"kernelspec": {"name": "python3"}}},
        ),
        outdir=str(tmp_path / "html"),
    )
    org, repo = ORG_REPO.split("/")
    context = {
        "pagename": "book/rnn_gradients",
        "sourcename": "book/rnn_gradients.ipynb",
        "header_buttons": [],
        "github_url": "https://github.com",
        "github_user": org,
        "github_repo": repo,
    }
    add_launch_buttons(app, "book/rnn_gradients", "page.html", context, None)
    buttons = {b["text"]: b["url"] for g in context["header_buttons"] for b in g["buttons"]}
    url = urlparse(buttons["JupyterHub"])
    assert f"{url.scheme}://{url.netloc}" == hub and url.path == "/hub/user-redirect/git-pull"
    query = parse_qs(url.query)
    assert query == {
        "repo": [REPOSITORY_URL],
        "urlpath": [f"lab/tree/{repo}/book/rnn_gradients.ipynb"],
        "branch": [BRANCH],
    }, query


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_an_open_in_colab_badge_beside_the_exercise_download(html_dir, chapter):
    html = _page(html_dir, chapter)
    exercise = f"exercises/{chapter}/{chapter}.ipynb"
    badges = list(BADGE.finditer(html))
    assert len(badges) == 1, f"{chapter}: {len(badges)} Colab badges"
    badge = badges[0]
    colab = LAUNCH["colab_url"].rstrip("/")
    assert badge["href"] == f"{colab}/github/{ORG_REPO}/blob/{BRANCH}/{exercise}", badge["href"]
    assert badge["href"].startswith("https://colab.research.google.com/github/")
    assert (REPO / exercise).is_file(), f"the badge opens {exercise}, not in the repository"
    # the badge's image is the book's own: nothing is fetched to draw it
    assert not urlparse(badge["src"]).scheme and badge["alt"] == "Open in Colab", badge["src"]
    image = Path(
        urljoin(f"file://{html_dir}/book/{chapter}.html", badge["src"]).removeprefix("file://")
    )
    assert image.is_file() and image.name == "colab-badge.svg", image
    # it sits right after the link that downloads the exercise
    before = html[: badge.start()]
    download = before.rfind("<a ")
    link = before[download:]
    assert "download" in link and f"{chapter}.ipynb" in link, link
    # and the launch menu has no Colab button that would open the MyST page
    assert not any("colab" in h and h.endswith(".md") for h in _hrefs(html))


def _lab_overrides(env: dict) -> subprocess.CompletedProcess:
    """What JupyterLab's server reads as labconfig/ overrides, in a process with ``env``:
    the same ConfigManager lookup that jupyterlab_server.settings_utils._get_overrides makes."""
    read = (
        "import json; from jupyter_server.services.config.manager import ConfigManager;"
        "print(json.dumps(ConfigManager(config_dir_name='labconfig')"
        ".get('default_setting_overrides')))"
    )
    return subprocess.run(
        [sys.executable, "-c", read], env=env, check=True, capture_output=True, text=True
    )


def test_binder_opens_markdown_as_notebooks_and_installs_the_grading_kit(tmp_path):
    requirements = (REPO / "binder" / "requirements.txt").read_text(encoding="utf-8")
    install = [line for line in requirements.splitlines() if line.startswith("-e .[")]
    extras = set(install[0].removeprefix("-e .[").rstrip("]").split(",")) if install else set()
    assert {"book", "grade"} <= extras, requirements
    post_build = REPO / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    bin_dir = Path(sys.executable).parent
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        HOME=str(tmp_path),
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    # the book itself is built by this session (tests/conftest.py): not again here
    env["SEQLAB_BINDER_SKIP_BOOK"] = "1"
    subprocess.run([str(post_build)], env=env, check=True, capture_output=True, timeout=120)
    done = _lab_overrides(env)  # what JupyterLab's server reads from there
    viewers = json.loads(done.stdout)["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["markdown"] == viewers["myst"] == "Jupytext Notebook", viewers


def test_the_courses_own_jupyterlab_opens_markdown_as_notebooks(tmp_path):
    """`make` installs the same default viewers into .venv (etc/jupyter/labconfig), so
    that `.venv/bin/jupyter lab` opens a chapter's page as a notebook, as Binder does,
    without touching the user's own ~/.jupyter."""
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "empty"), HOME=str(tmp_path))
    done = _lab_overrides(env)
    overrides = json.loads(done.stdout)
    shipped = json.loads((REPO / "binder" / "lab-overrides.json").read_text())
    assert overrides == shipped, (
        f"{sys.prefix}/etc/jupyter/labconfig lacks the course's viewers: rm .venv/.installed; "
        "make venv"
    )
