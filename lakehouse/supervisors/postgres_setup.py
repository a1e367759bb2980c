"""The project's own PostgreSQL cluster on disk, under ``<data_dir>/oltp``.

======================  ======================================================
``oltp/pgdata/``        the cluster (``initdb``), with ``lakehouse.conf`` included
``oltp/run/``           its unix socket, in a directory only the server's OS user
                        can enter (0700)
``oltp/postgres.log``   the server log
======================  ======================================================

Here: finding (or installing) the server programs, ``initdb``, the directories'
owners and modes, and the configuration and access rules written from the settings.
Starting, stopping and the roles are :mod:`lakehouse.supervisors.postgres`.

PostgreSQL refuses to run as root. When we are root, its programs run as the ``postgres``
OS user through ``runuser``, and that user owns ``<data_dir>/oltp``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.exceptions import OltpError
from lakehouse.supervisors.apt import apt_install
from lakehouse.supervisors.process import last_line

if TYPE_CHECKING:
    from lakehouse.settings import Settings

SERVER_USER = "postgres"  # the OS user PostgreSQL runs as when we are root
SUPERUSER = "postgres"  # the cluster's superuser, reached on the unix socket only
CONF_FILE = "lakehouse.conf"
IDENT_MAP = "lakehouse"  # pg_ident.conf map: the OS users who may be the superuser

Notify = Callable[[str], None]


def quiet(_message: str) -> None:
    pass


# -- finding (or installing) PostgreSQL ----------------------------------------------------


def find_bindir(*, install: bool = True, notify: Notify = quiet) -> Path:
    """The directory of the server programs (``initdb``, ``pg_ctl``, ``postgres``).

    Looked up with ``pg_config --bindir``, then under ``/usr/lib/postgresql/*/bin`` (newest
    first), then on ``PATH``. When none is found and we are root with ``apt-get``, the
    ``postgresql`` package is installed (and ``notify`` says so).
    """
    for candidate in _bindir_candidates():
        if all((candidate / p).is_file() for p in ("initdb", "pg_ctl", "postgres")):
            return candidate
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        notify("PostgreSQL is not installed: installing the `postgresql` package with apt-get")
        _apt_install("postgresql")
        return find_bindir(install=False, notify=notify)
    raise OltpError(
        "PostgreSQL server programs (initdb, pg_ctl) not found: install PostgreSQL "
        "(Debian/Ubuntu: `apt-get install postgresql`) or put its bin directory on PATH"
    )


def _bindir_candidates() -> list[Path]:
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))

    def version(path: Path) -> tuple[int, str]:
        name = path.parent.name
        return (int(name) if name.isdigit() else -1, name)

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    return candidates


def _apt_install(package: str) -> None:
    failure = apt_install(package)
    if failure is not None:
        raise OltpError(
            f"`apt-get install {package}` failed: {failure}; install PostgreSQL yourself"
        )


# -- the cluster's directory --------------------------------------------------------------


class ClusterDirectory:
    """The cluster's files: made by ``initdb``, configured from the settings."""

    def __init__(self, settings: Settings, *, notify: Notify = quiet) -> None:
        self.settings = settings
        self.notify = notify
        self.dir = settings.root / "oltp"
        self.pgdata = self.dir / "pgdata"
        self.socket_dir = self.dir / "run"
        self.log_path = self.dir / "postgres.log"
        self._bindir: Path | None = None

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = find_bindir(notify=self.notify)
        return self._bindir

    @property
    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file()

    def _init(self) -> None:
        bindir = self.bindir
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise OltpError(
                f"{self.pgdata} exists but holds no PostgreSQL cluster: move it away or remove it"
            )
        self._prepare_dirs()
        self._run(
            [
                str(bindir / "initdb"),
                "--pgdata",
                str(self.pgdata),
                "--username",
                SUPERUSER,
                "--encoding",
                "UTF8",
                "--no-locale",
                "--auth-local",
                "peer",
                "--auth-host",
                "scram-sha-256",
            ],
            "initdb",
        )
        conf = self.pgdata / "postgresql.conf"
        with conf.open("a") as f:
            f.write(f"\n# written by lakehouse: its settings live in {CONF_FILE}\n")
            f.write(f"include '{CONF_FILE}'\n")

    def _prepare_dirs(self) -> None:
        for path in (self.dir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
        # the socket is reached by its directory: only the server's OS user (and root)
        self.socket_dir.chmod(0o700)
        if os.geteuid() != 0:
            return
        uid, gid = self._server_ids()
        for path in (self.dir, self.socket_dir):
            os.chown(path, uid, gid)
        # the data directory is 0700 (the CLI's umask): the server's user may pass
        # through it to its own directory, without listing or reading anything else
        root = self.dir.parent
        if root.stat().st_uid == os.geteuid():
            root.chmod(root.stat().st_mode | 0o001)
        for path in (self.dir, self.socket_dir):
            check = ["runuser", "-u", SERVER_USER, "--", "test", "-w", str(path), "-a", "-x"]
            if subprocess.run([*check, str(path)], capture_output=True).returncode != 0:
                blocker = _unreachable_parent(path)
                raise OltpError(
                    f"PostgreSQL runs as the `{SERVER_USER}` OS user (not as root), and it "
                    f"cannot reach {path}"
                    + (
                        f" because {blocker} is closed to it (chmod o+x {blocker})"
                        if blocker
                        else ""
                    )
                    + ": use a --data-dir it can reach, e.g. under /srv or /var/tmp"
                )

    def _server_ids(self) -> tuple[int, int]:
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise OltpError(
                f"PostgreSQL will not run as root and there is no `{SERVER_USER}` OS user to run "
                f"it as: create one (`useradd --system {SERVER_USER}`) or run as another user"
            ) from None
        return entry.pw_uid, entry.pw_gid

    def _configure(self) -> None:
        """(Re)write the server settings and access rules from the settings."""
        s = self.settings
        values = {
            "listen_addresses": s.oltp_host,
            "port": s.oltp_port,
            "unix_socket_directories": str(self.socket_dir),
            "wal_level": "logical",
            "max_replication_slots": 10,
            "max_wal_senders": 10,
            "shared_buffers": "128MB",
            "max_connections": 50,
            "timezone": "UTC",
            "log_timezone": "UTC",
        }
        lines = ["# written by `lakehouse oltp up` from the settings: edits are overwritten"]
        for name, value in values.items():
            text = (
                str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"
            )
            lines.append(f"{name} = {text}")
        self._write(self.pgdata / CONF_FILE, "\n".join(lines) + "\n")
        hosts = ["127.0.0.1/32", "::1/128"]
        if s.oltp_host not in ("127.0.0.1", "localhost", "::1"):
            hosts += ["0.0.0.0/0", "::/0"]
        rules = [
            "# written by `lakehouse oltp up`: on the socket (a 0700 directory) only the",
            f"# OS users of pg_ident.conf's map {IDENT_MAP} may be {SUPERUSER}; TCP needs a",
            "# password (SCRAM), always",
            f"local   all          {SUPERUSER}   peer   map={IDENT_MAP}",
            f"local   replication  {SUPERUSER}   peer   map={IDENT_MAP}",
        ]
        for cidr in hosts:
            rules.append(f"host    all          all   {cidr}   scram-sha-256")
            rules.append(f"host    replication  all   {cidr}   scram-sha-256")
        self._write(self.pgdata / "pg_hba.conf", "\n".join(rules) + "\n")
        ident = [f"# written by `lakehouse oltp up`: who may connect as {SUPERUSER} on the socket"]
        ident += [f"{IDENT_MAP}   {user}   {SUPERUSER}" for user in _local_os_users()]
        self._write(self.pgdata / "pg_ident.conf", "\n".join(ident) + "\n")

    def _write(self, path: Path, text: str) -> None:
        path.write_text(text)
        path.chmod(0o600)
        if os.geteuid() == 0:
            os.chown(path, *self._server_ids())

    def _run(
        self, cmd: list[str], what: str, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a server program, as the ``postgres`` OS user when we are root."""
        if os.geteuid() == 0:
            self._server_ids()
            cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            cwd=self.dir if self.dir.is_dir() else None,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
        )
        if check and out.returncode != 0:
            raise OltpError(f"{what} failed: {last_line(out.stderr or out.stdout)}")
        return out


def clean_env() -> dict[str, str]:
    """Our environment without libpq's ``PG*`` variables, which would override the flags."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _local_os_users() -> list[str]:
    """The OS users who may be the cluster's superuser on its socket: ours, and the
    server's own when we are root (it runs as that one)."""
    users = [pwd.getpwuid(os.geteuid()).pw_name]
    if os.geteuid() == 0 and SERVER_USER not in users:
        users.append(SERVER_USER)
    return users


def _unreachable_parent(path: Path) -> Path | None:
    """The first parent directory the ``postgres`` user may not traverse."""
    uid, _ = pwd.getpwnam(SERVER_USER)[2:4]
    for parent in reversed(path.parents):
        st = parent.stat()
        if st.st_uid == uid:
            continue
        if not st.st_mode & 0o001:
            return parent
    return None
