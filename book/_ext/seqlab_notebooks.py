"""Each chapter as a notebook to run, with the numbers its prose quotes filled in.

A chapter is a MyST page. In the built book its roles become what they stand
for: ``{glue:text}`` the numbers the page computed, ``{numref}`` and ``{eq}``
figure and equation numbers, ``{cite:p}`` an author and year. JupyterLab's
notebook view of the same page (jupytext) renders plain Markdown and would show
the roles raw. So after the build this extension writes, for every executed
page, ``_build/html/_notebooks/<page>.ipynb``: the page's cells, with outputs
cleared (the reader runs them), and in the prose every role replaced by the
text the book shows, MyST's label lines and comments removed, ``{math}`` blocks
and admonitions turned into Markdown that JupyterLab renders. The Binder button
opens that notebook (``binder/postBuild`` builds the book first), and a student
with a clone finds them in ``_build/html/_notebooks/book/`` after ``make book``.

The numbers come from the build itself: myst-nb's glue cache of the page
(``<page>.glue.json``), Sphinx's figure and equation numbers, and the
bibliography file. A role that cannot be resolved stops the build with its
name, rather than reaching a student raw.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from functools import partial
from pathlib import Path, PurePosixPath

import latexcodec  # noqa: F401 (registers the "latex" codec that _plain decodes with)
import nbformat
from myst_nb.core.variables import format_plain_text
from pybtex.database import parse_file
from sphinx.application import Sphinx
from sphinx.directives.code import LiteralIncludeReader
from sphinx.errors import ExtensionError

FOLDER = "_notebooks"
# Where `make book` and Binder's postBuild write the book, from the repository's root: links
# from a notebook to the repository's files are relative to its place there.
BUILD = "_build/html"
ROLE = re.compile(r"(?<![\w^])\{(?P<role>[a-z]+(?::[a-z]+)?)\}`(?P<content>[^`]*)`")
EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)
LABEL_LINE = re.compile(r"^\([\w.-]+\)=[ \t]*\n?", re.MULTILINE)
COMMENT_LINE = re.compile(r"^%.*\n?", re.MULTILINE)
TAGGED_MATH = re.compile(r"\$\$[ \t]*\((?P<label>[\w.-]+)\)")
MATH_BLOCK = re.compile(r"^```\{math\}[ \t]*\n(?P<options>(?::[^\n]*\n)*)(?P<body>.*?)^```[ \t]*$",
                        re.MULTILINE | re.DOTALL)  # fmt: skip
LITERALINCLUDE = re.compile(
    r"^```\{literalinclude\}[ \t]*(?P<path>\S+)\n(?P<options>(?::[^\n]*\n)*)^```[ \t]*$",
    re.MULTILINE,
)
ADMONITION = re.compile(
    r"^(?P<fence>:{3,}|`{3,})\{(?P<kind>admonition|note|tip|hint|important|seealso|warning|"
    r"caution|attention|danger|error)\}[ \t]*(?P<title>[^\n]*)\n"
    r"(?P<options>(?::[^\n]*\n)*)(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


class Resolver:
    """What the built book shows for each role of one page."""

    def __init__(self, app: Sphinx, docname: str, glued: dict):
        self.app, self.env, self.docname, self.glued = app, app.env, docname, glued

    def __call__(self, role: str, content: str) -> str:
        method = getattr(self, "_" + role.replace(":", "_"), None)
        if method is None:
            raise ExtensionError(f"{self.docname}: no notebook rendering for the role {{{role}}}")
        return method(content)

    def _glue_text(self, content: str) -> str:
        key, _, spec = content.partition(":")
        if key not in self.glued or "text/plain" not in self.glued[key].get("data", {}):
            raise ExtensionError(f"{self.docname}: glue key {key!r} has no text value")
        return format_plain_text(self.glued[key]["data"]["text/plain"], spec)

    def _numref(self, content: str) -> str:
        match = EXPLICIT.match(content)
        template, label = (match["text"], match["target"]) if match else (None, content)
        docname, labelid, _ = self.env.domaindata["std"]["labels"][label.lower()]
        for figtype, numbers in self.env.toc_fignumbers.get(docname, {}).items():
            if labelid in numbers:
                number = ".".join(map(str, numbers[labelid]))
                fmt = template or self.app.config.numfig_format[figtype]
                return fmt.replace("{number}", number).replace("%s", number)
        raise ExtensionError(f"{self.docname}: {label!r} has no number")

    def _eq(self, content: str) -> str:
        return f"({self._equation_number(content)})"

    def _equation_number(self, label: str) -> int:
        _, number = self.env.domaindata["math"]["objects"][label]
        return number

    def _ref(self, content: str) -> str:
        match = EXPLICIT.match(content)
        if match:
            return match["text"]
        return self.env.domaindata["std"]["labels"][content.lower()][2]

    def _doc(self, content: str) -> str:
        match = EXPLICIT.match(content)
        text, target = (match["text"], match["target"]) if match else (None, content)
        docname = str(PurePosixPath(self.docname).parent / target)
        text = text or self.env.titles[docname].astext()
        return f"[{text}]({self._link_to(docname)})"

    def _download(self, content: str) -> str:
        match = EXPLICIT.match(content)
        text, target = (match["text"], match["target"]) if match else (content, content)
        path = Path(self.app.srcdir, PurePosixPath(self.docname).parent, target).resolve()
        here = Path(self.app.srcdir, BUILD, FOLDER, self.docname).parent
        return f"[{text}]({os.path.relpath(path, here)})"

    # as the book's author-year style shows them: [Bengio et al., 1994, Pascanu et al., 2013]
    # and Bahdanau et al. [2015]
    def _cite_p(self, content: str) -> str:
        return "[" + ", ".join(f"{a}, {y}" for a, y in self._citations(content)) + "]"

    def _cite_t(self, content: str) -> str:
        return ", ".join(f"{a} [{y}]" for a, y in self._citations(content))

    def _citations(self, content: str) -> list[tuple[str, str]]:
        entries = _bibliography(tuple(self.app.config.bibtex_bibfiles), str(self.app.srcdir))
        found = []
        for key in (k.strip() for k in content.split(",")):
            if key not in entries:
                raise ExtensionError(f"{self.docname}: no reference {key!r} in the bibliography")
            found.append(entries[key])
        return sorted(found)  # the book's style lists them by author

    def _link_to(self, docname: str) -> str:
        """A notebook of the page when there is one, else the page in the built book."""
        here = Path(self.app.outdir, FOLDER, self.docname).parent
        notebook = Path(self.app.outdir, FOLDER, docname + ".ipynb")
        page = Path(self.app.outdir, docname + ".html")
        target = notebook if _executed(self.app, docname) else page
        return os.path.relpath(target, here)


_BIBLIOGRAPHIES: dict[tuple, dict[str, tuple[str, str]]] = {}


def _bibliography(files: tuple[str, ...], srcdir: str) -> dict[str, tuple[str, str]]:
    """key -> (authors as the book cites them, year), e.g. ('Bengio et al.', '1994')."""
    if (files, srcdir) not in _BIBLIOGRAPHIES:
        entries = {}
        for name in files:
            for key, entry in parse_file(os.path.join(srcdir, name)).entries.items():
                people = entry.persons.get("author") or entry.persons.get("editor") or []
                last = [_plain(" ".join(p.last_names)) for p in people]
                if len(last) > 2:
                    authors = f"{last[0]} et al."
                else:
                    authors = " and ".join(last) or entry.fields.get("title", key)
                entries[key] = (authors, entry.fields.get("year", "n.d."))
        _BIBLIOGRAPHIES[files, srcdir] = entries
    return _BIBLIOGRAPHIES[files, srcdir]


def _plain(latex: str) -> str:
    """A name of the bibliography as text: M{\\"u}ller -> Müller."""
    return latex.encode("utf-8").decode("latex").replace("{", "").replace("}", "")


def render_markdown(text: str, resolve, equation_number, include) -> str:
    """The prose of one cell as JupyterLab's Markdown shows it: roles resolved.

    ``include`` turns a ``literalinclude`` directive's match into a code block.
    """
    text = ROLE.sub(lambda m: resolve(m["role"], m["content"]), text)
    text = LABEL_LINE.sub("", text)
    text = COMMENT_LINE.sub("", text)
    text = TAGGED_MATH.sub(lambda m: f"\\tag{{{equation_number(m['label'])}}} $$", text)

    def math_block(m: re.Match) -> str:
        label = re.search(r"^:label:\s*(\S+)", m["options"], re.MULTILINE)
        tag = f" \\tag{{{equation_number(label[1])}}}" if label else ""
        return f"$$\n{m['body'].rstrip()}{tag}\n$$"

    text = MATH_BLOCK.sub(math_block, text)

    def admonition(m: re.Match) -> str:
        title = m["title"].strip() or m["kind"].capitalize()
        body = m["body"].strip("\n")
        lines = [f"**{title}**", "", *body.split("\n")]
        return "\n".join(("> " + line).rstrip() for line in lines)

    text = LITERALINCLUDE.sub(include, text)
    while ADMONITION.search(text):  # nested admonitions: the inner ones first
        text = ADMONITION.sub(admonition, text)
    return text


def _include(app: Sphinx, docname: str, m: re.Match) -> str:
    """A ``literalinclude`` as the code block the book shows (Sphinx's own reader)."""
    options = dict(re.findall(r"^:([\w-]+):[ \t]*(.*)$", m["options"], re.MULTILINE))
    path = Path(app.srcdir, PurePosixPath(docname).parent, m["path"]).resolve()
    code, _ = LiteralIncludeReader(str(path), options, app.config).read()
    return f"```{options.get('language', '')}\n{textwrap.dedent(code).rstrip()}\n```"


def _executed(app: Sphinx, docname: str) -> bool:
    return Path(app.env.mystnb_config.output_folder, docname + ".ipynb").is_file()


def page_notebook(app: Sphinx, docname: str) -> nbformat.NotebookNode:
    """The executed page as a notebook to run: prose resolved, outputs cleared."""
    folder = Path(app.env.mystnb_config.output_folder)
    notebook = nbformat.read(folder / f"{docname}.ipynb", as_version=4)
    glue_file = folder / f"{docname}.glue.json"
    glued = json.loads(glue_file.read_text(encoding="utf-8")) if glue_file.is_file() else {}
    resolve = Resolver(app, docname, glued)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = render_markdown(
                cell.source, resolve, resolve._equation_number, partial(_include, app, docname)
            )
        elif cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    notebook.metadata.pop("jupytext", None)  # a notebook of its own, not paired with the page
    notebook.metadata.pop("source_map", None)
    notebook.metadata.pop("widgets", None)
    return notebook


def notebook_path(docname: str) -> str:
    """Where a page's notebook is, relative to the built book's root folder."""
    return f"{FOLDER}/{docname}.ipynb"


def _write_notebooks(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for docname in sorted(app.env.found_docs):
        if _executed(app, docname):
            target = Path(app.outdir, notebook_path(docname))
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(page_notebook(app, docname), target)


def _binder_opens_the_notebook(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """The Binder button of an executed page opens its notebook, not its MyST source."""
    if not _executed(app, pagename):
        return
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []) if isinstance(group, dict) else []:
            if button.get("text") == "Binder" and "urlpath=" in button.get("url", ""):
                base, _, urlpath = button["url"].partition("urlpath=")
                ui = urlpath.split("/")[0]  # lab
                button["url"] = f"{base}urlpath={ui}/tree/{BUILD}/{notebook_path(pagename)}"


def setup(app: Sphinx) -> dict:
    app.connect("build-finished", _write_notebooks)
    app.connect("html-page-context", _binder_opens_the_notebook, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
