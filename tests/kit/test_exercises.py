"""What every released exercise notebook promises a student before any answer is written:
its setup cell installs seqlab where it is missing (Colab), at the course's release tag
(COURSE_REF, never the moving main branch), and nothing where it is there."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import nbformat
import pytest
from course_helpers import REPO

from seqlab.kit.course import COURSE_REF, COURSE_REPOSITORY, assignments

pytestmark = pytest.mark.grading

AIDS = [pytest.param(aid, marks=getattr(pytest.mark, aid)) for aid in assignments(REPO)]


def _setup_cell(aid: str, folder: str = "exercises") -> str:
    nb = nbformat.read(REPO / folder / aid / f"{aid}.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and "import seqlab" in c.source][:1]
    return cell.source


@pytest.mark.parametrize("aid", AIDS)
def test_setup_cell_installs_seqlab_from_the_repository_when_it_is_missing(aid, tmp_path):
    """In Colab the first code cell must install seqlab (without touching PyTorch) and go on."""
    source = _setup_cell(aid)
    head = source.split("from seqlab import grading")[0]
    head = "\n".join(ln for ln in head.splitlines() if not ln.startswith("%"))
    script = tmp_path / "setup.py"
    script.write_text(
        textwrap.dedent(
            """
            import importlib.abc, subprocess, sys

            class Missing(importlib.abc.MetaPathFinder):  # the kernel has no seqlab yet
                def find_spec(self, name, path=None, target=None):
                    if name == "seqlab" and not INSTALLED:
                        raise ModuleNotFoundError("No module named 'seqlab'")

            INSTALLED = False
            sys.meta_path.insert(0, Missing())

            def fake_pip(cmd, *args, **kwargs):  # what a real pip would have done
                global INSTALLED
                print("PIP", cmd)
                INSTALLED = True
                return 0

            subprocess.check_call = fake_pip
            """
        )
        + head
        + "\nprint('IMPORTED', seqlab.__name__)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pip = [ln for ln in proc.stdout.splitlines() if ln.startswith("PIP")]
    assert len(pip) == 1 and "--no-deps" in pip[0], proc.stdout
    assert f"'seqlab @ git+{COURSE_REPOSITORY}@{COURSE_REF}'" in pip[0], pip[0]
    assert "IMPORTED seqlab" in proc.stdout


@pytest.mark.parametrize("aid", AIDS)
def test_setup_cell_installs_nothing_when_seqlab_is_there(aid, tmp_path):
    head = _setup_cell(aid).split("from seqlab import grading")[0]
    script = tmp_path / "setup.py"
    script.write_text(
        "import subprocess\nsubprocess.check_call = lambda *a, **k: print('PIP')\n" + head
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "PIP" not in proc.stdout


def test_the_course_ref_is_a_release_not_a_moving_branch():
    assert COURSE_REF.strip() == COURSE_REF and COURSE_REF
    assert COURSE_REF.lower() not in {"main", "master", "head", "develop", "latest"}


@pytest.mark.parametrize("aid", AIDS)
@pytest.mark.parametrize("folder", ["solutions", "exercises"])
def test_setup_cell_pins_the_course_ref(aid, folder):
    """`make release` writes COURSE_REF into solutions/ and so into exercises/: a changed
    COURSE_REF without a release fails here."""
    source = _setup_cell(aid, folder)
    installs = [ln for ln in source.splitlines() if "git+" in ln]
    assert installs, source
    for line in installs:
        assert f'seqlab @ git+{COURSE_REPOSITORY}@{COURSE_REF}"' in line, line


@pytest.mark.parametrize("aid", AIDS)
def test_every_stub_names_what_is_left_to_write(aid):
    """An unanswered function stops Run All with its own name, not a bare error: each
    answer cell's stub (seqlab.kit.plugins.NamedStubs) names the function or method
    whose body it stands for, and running it says so."""
    nb = nbformat.read(REPO / "exercises" / aid / f"{aid}.ipynb", as_version=4)
    answers = [
        c for c in nb.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    ]  # fmt: skip
    assert answers
    for cell in answers:
        stubs = [ln.strip() for ln in cell.source.splitlines() if "NotImplementedError" in ln]
        assert stubs, cell.metadata["nbgrader"]["grade_id"]
        for stub in stubs:
            assert stub.startswith("raise NotImplementedError('") and "is not written yet" in stub
        first = cell.source.split("def ", 1)[1].split("(", 1)[0]
        assert any(first in stub for stub in stubs), (first, stubs)
    # the first function's stub, run, names it
    namespace = {"torch": None, "math": None}
    source = next(c.source for c in answers if c.source.startswith("def "))
    exec(compile(source, "<stub>", "exec"), namespace)
    name = source.split("def ", 1)[1].split("(", 1)[0]
    arity = namespace[name].__code__.co_argcount
    with pytest.raises(NotImplementedError, match=f"^{name} is not written yet"):
        namespace[name](*[None] * arity)
