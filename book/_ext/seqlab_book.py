"""What the book's pages need beyond the theme's defaults.

* MathJax is served from the book itself, so that equations render offline.
* Launch buttons: every button in the page's launch menu opens that page
  itself (Binder, and JupyterHub through nbgitpuller when ``jupyterhub_url``
  is set in _config.yml; with it empty the theme adds no JupyterHub button).
  Colab opens notebooks only, not the chapters' MyST pages, so it is not in the
  launch menu: an "Open in Colab" badge beside each exercise's download link
  opens the exercise notebook (whose first cell installs seqlab when it is
  missing). The badge's image is book/_static/colab-badge.svg, served by the
  book, so that a reader offline fetches nothing; it appears only while
  ``colab_url`` is set in _config.yml's ``launch_buttons``.
* A script that the theme stack adds twice is kept once (sphinx-thebe's
  configuration, declared with ``const``, otherwise raises a JavaScript error
  on every page).

Sphinx loads MathJax from a CDN by default; a reader without a network (or a
test in a sandbox) would then see raw TeX. The MathJax 3 files come from the
``sphinx-mathjax-offline`` package (a dependency of the book); this extension
copies only what the ``tex-chtml`` component needs (about 3 MB, not the 24 MB
of the whole distribution) into ``_static/mathjax`` and points Sphinx at it.
"""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path, PurePosixPath

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.fileutil import copy_asset
from sphinx.util.osutil import relative_uri

# tex-chtml.js is the combined component; the rest is what it loads on demand:
# TeX extensions (autoload), CommonHTML fonts, and the menu's lazy parts.
NEEDED = ("tex-chtml.js", "input/tex/extensions", "output/chtml", "ui", "a11y", "adaptors")


def _mathjax_dir() -> Path:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "the book needs the package sphinx-mathjax-offline for its equations: "
            "pip install -e '.[book]'"
        )
    return Path(spec.origin).parent / "static" / "mathjax"


def _copy(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = _mathjax_dir(), Path(app.outdir) / "_static" / "mathjax"
    for part in NEEDED:
        if (source / part).is_dir():
            copy_asset(str(source / part), str(target / part))
        else:
            target.mkdir(parents=True, exist_ok=True)
            copy_asset(str(source / part), str(target))


def _unique_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        filename = getattr(script, "filename", script) or ""  # None and "" both mean inline
        key = (str(filename), repr(getattr(script, "attributes", {})))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _launch_settings(app: Sphinx) -> dict:
    return app.config.html_theme_options.get("launch_buttons") or {}


def _empty_means_none(app: Sphinx, config) -> None:
    """``jupyterhub_url:`` left empty in _config.yml reads as None, which the theme cannot
    take: it means "no hub", as "" does."""
    launch = config.html_theme_options.get("launch_buttons") or {}
    for key in ("jupyterhub_url", "binderhub_url", "colab_url"):
        if key in launch and not launch[key]:
            launch[key] = ""


def _no_colab_in_the_launch_menu(app: Sphinx, pagename, templatename, context, doctree) -> None:
    for group in list(context.get("header_buttons", [])):
        buttons = group.get("buttons") if isinstance(group, dict) else None
        if not buttons:
            continue
        buttons[:] = [b for b in buttons if b.get("text") != "Colab"]
        if not buttons:
            context["header_buttons"].remove(group)


def colab_url(app: Sphinx, exercise: str) -> str | None:
    """Colab's link to a notebook of the repository (a path from its root), or None when
    _config.yml sets no ``colab_url`` or the repository is not on GitHub."""
    colab = str(_launch_settings(app).get("colab_url") or "").rstrip("/")
    options = app.config.html_theme_options
    repository = str(options.get("repository_url") or "").rstrip("/")
    if not colab or not repository.startswith("https://github.com/"):
        return None
    org_repo = repository.removeprefix("https://github.com/")
    branch = options.get("repository_branch") or "main"
    return f"{colab}/github/{org_repo}/blob/{branch}/{exercise}"


def _colab_badge_beside_the_exercise(app: Sphinx, doctree, docname: str) -> None:
    if app.builder.format != "html":
        return
    source_dir = PurePosixPath(docname).parent
    for download in list(doctree.findall(addnodes.download_reference)):
        target = download.get("reftarget", "")
        if not target.endswith(".ipynb"):
            continue
        path = Path(app.srcdir, *source_dir.parts, target).resolve()
        try:
            exercise = path.relative_to(Path(app.srcdir).resolve()).as_posix()
        except ValueError:
            continue
        parts = exercise.split("/")
        if len(parts) != 3 or parts[0] != "exercises" or parts[2] != f"{parts[1]}.ipynb":
            continue
        url = colab_url(app, exercise) if path.is_file() else None
        if url is None:
            continue
        image = relative_uri(app.builder.get_target_uri(docname), "_static/colab-badge.svg")
        badge = (
            f' <a class="reference external colab-badge" href="{html.escape(url)}"'
            ' title="Open this exercise in Colab">'
            f'<img src="{html.escape(image)}" alt="Open in Colab" width="117" height="20"'
            ' style="vertical-align: text-bottom"></a>'
        )
        download.parent.insert(
            download.parent.index(download) + 1, nodes.raw("", badge, format="html")
        )


def setup(app: Sphinx) -> dict:
    _mathjax_dir()  # fail early, with the fix, when the files are missing
    app.config.mathjax_path = "mathjax/tex-chtml.js"
    app.connect("build-finished", _copy)
    app.connect("html-page-context", _unique_scripts, priority=900)
    app.connect("config-inited", _empty_means_none)
    app.connect("html-page-context", _no_colab_in_the_launch_menu, priority=900)
    app.connect("doctree-resolved", _colab_badge_beside_the_exercise)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
