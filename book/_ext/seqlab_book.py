"""What the book's pages need beyond the theme's defaults.

* MathJax is served from the book itself, so that equations render offline.
* Colab opens notebooks only, not the MyST pages of the chapters: on a
  chapter's page its Colab button opens the chapter's exercise notebook
  (whose first cell installs seqlab when it is missing); other pages have none.
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

import importlib.util
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util.fileutil import copy_asset

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


def _colab_opens_the_exercise(app: Sphinx, pagename, templatename, context, doctree) -> None:
    aid = pagename.split("/")[-1]
    exercise = f"exercises/{aid}/{aid}.ipynb"
    is_chapter = (Path(app.srcdir) / exercise).is_file()
    for group in context.get("header_buttons", []):
        buttons = group.get("buttons") if isinstance(group, dict) else None
        if not buttons:
            continue
        for button in list(buttons):
            if button.get("text") != "Colab":
                continue
            if not is_chapter:
                buttons.remove(button)
                continue
            prefix = button["url"].split("/blob/", 1)[0]
            branch = button["url"].split("/blob/", 1)[1].split("/", 1)[0]
            button["url"] = f"{prefix}/blob/{branch}/{exercise}"
            button["tooltip"] = "Open this chapter's exercise in Colab"


def setup(app: Sphinx) -> dict:
    _mathjax_dir()  # fail early, with the fix, when the files are missing
    app.config.mathjax_path = "mathjax/tex-chtml.js"
    app.connect("build-finished", _copy)
    app.connect("html-page-context", _unique_scripts, priority=900)
    app.connect("html-page-context", _colab_opens_the_exercise, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
