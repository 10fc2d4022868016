"""A throw-away PostgreSQL server for the tests: initdb into a scratch folder, a unix
socket only (no port to collide with), trust authentication, stopped and removed at
the end. The server binaries come from Debian's ``postgresql`` package (``.ci/run``
installs it when they are missing).

PostgreSQL refuses to run as root. Run as root (as CI does), the server runs as
the ``postgres`` system user the Debian package creates, or as ``seqlab-pg``,
created here when there is no such user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

SERVER_USER = "seqlab-pg"


def binaries() -> Path | None:
    """The folder with initdb, pg_ctl and postgres, or None."""
    for folder in [
        *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True),
        os.path.dirname(shutil.which("initdb") or "") or None,
    ]:
        if folder and all(os.access(Path(folder) / b, os.X_OK) for b in ("initdb", "pg_ctl")):
            return Path(folder)
    return None


def _server_user() -> str | None:
    """The OS user the server runs as: None for this user, a system user when root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SERVER_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
        check=True,
        capture_output=True,
    )
    return SERVER_USER


def _as(user: str | None, *cmd: str) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else list(cmd)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL server; yield the URL of its superuser (``seqlab``) without a
    database name: append ``<db>?host=<socket folder>`` through :func:`database_url`."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError(
            "no PostgreSQL server binaries (initdb, pg_ctl): `apt-get install postgresql`"
        )
    user = _server_user()
    # not under pytest's tmp_path: that is private to this user, the server needs to enter it
    base = Path(tempfile.mkdtemp(prefix="seqlab-pg-"))
    base.chmod(0o755)
    data, sock = base / "data", base / "sock"
    data.mkdir(mode=0o700)
    sock.mkdir(mode=0o755)
    if user:
        for folder in (data, sock):
            shutil.chown(folder, user, user)
    try:
        subprocess.run(
            _as(
                user,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "seqlab",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
        )
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{sock}' -c fsync=off "
            "-c max_connections=200"
        )
        subprocess.run(
            _as(
                user,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-l",
                str(base / "sock" / "server.log"),
                "start",
            ),
            check=True,
            capture_output=True,
        )
        try:
            yield f"postgresql://seqlab@/?host={sock}"
        finally:
            subprocess.run(
                _as(user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"),
                capture_output=True,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def socket_dir(server_url: str) -> str:
    return server_url.split("?host=", 1)[1]


def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server; return its URL."""
    import psycopg

    with psycopg.connect(
        dbname="postgres", user="seqlab", host=socket_dir(server_url), autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(server_url, name)


def database_url(server_url: str, name: str) -> str:
    return f"postgresql://seqlab@/{name}?host={socket_dir(server_url)}"
