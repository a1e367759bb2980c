"""The project's own PostgreSQL cluster, under ``<data_dir>/oltp``.

======================  ======================================================
``oltp/pgdata/``        the cluster (``initdb``), with ``lakehouse.conf`` included
``oltp/run/``           its unix socket, in a directory only the server's OS user
                        can enter (0700)
``oltp/postgres.log``   the server log
======================  ======================================================

The server listens on ``oltp_host:oltp_port`` with ``wal_level=logical`` (Debezium reads
the WAL) and password (SCRAM) authentication for ordinary and replication connections;
no TCP connection is ever trusted. The role ``oltp_user`` (LOGIN REPLICATION) owns the
database ``oltp_database`` and the schema the migrations create in it; its password is
``oltp_password``, or one generated once in ``<data_dir>/secrets/oltp.password``. The
superuser has no password: it is reached only on the socket, by ``peer`` authentication
of our own OS user (and the server's), for the set-up.

PostgreSQL refuses to run as root. When we are root, its programs run as the ``postgres``
OS user through ``runuser``, and that user owns ``<data_dir>/oltp``.

With ``oltp_managed`` off the database is a real, external one: ``up`` and ``down`` only
check that it answers, and nothing is created in it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import OltpError
from lakehouse.oltp.migrate import applied, migrate
from lakehouse.supervisors.apt import apt_install
from lakehouse.supervisors.process import process_command, process_cwd

if TYPE_CHECKING:
    import psycopg

    from lakehouse.settings import Settings

SERVER_USER = "postgres"  # the OS user PostgreSQL runs as when we are root
SUPERUSER = "postgres"  # the cluster's superuser, reached on the unix socket only
CONF_FILE = "lakehouse.conf"
IDENT_MAP = "lakehouse"  # pg_ident.conf map: the OS users who may be the superuser
START_TIMEOUT_S = 60
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, with its final NUL

Notify = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


# -- finding (or installing) PostgreSQL ----------------------------------------------------


def find_bindir(*, install: bool = True, notify: Notify = _quiet) -> Path:
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


# -- connections --------------------------------------------------------------------------


def connect(settings: Settings, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to the operational database as ``oltp_user``, over TCP."""
    import psycopg

    try:
        return psycopg.connect(
            host=settings.oltp_host,
            port=settings.oltp_port,
            dbname=settings.oltp_database,
            user=settings.oltp_user,
            password=settings.oltp_secret(),
            connect_timeout=5,
            application_name="lakehouse",
            autocommit=autocommit,
        )
    except psycopg.OperationalError as exc:
        hint = (
            "run `lakehouse oltp up`"
            if settings.oltp_managed
            else "check oltp_host, oltp_port, oltp_database, oltp_user and oltp_password"
        )
        raise OltpError(
            f"cannot connect to PostgreSQL at {settings.oltp_host}:{settings.oltp_port} "
            f"(database {settings.oltp_database!r}, user {settings.oltp_user!r}): "
            f"{_last_line(str(exc))}; {hint}"
        ) from None


# -- status -------------------------------------------------------------------------------


@dataclass
class ClusterStatus:
    managed: bool
    running: bool
    host: str
    port: int
    database: str
    user: str
    pid: int | None = None
    data_dir: str | None = None
    log_file: str | None = None
    server_version: str | None = None
    migrations: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)  # row count per table
    error: str | None = None  # why the database could not be read

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the cluster --------------------------------------------------------------------------


class Cluster:
    """The operational database of the settings: ``up``, ``down`` and ``status``."""

    def __init__(self, settings: Settings, *, notify: Notify = _quiet) -> None:
        self.settings = settings
        self.notify = notify
        self.dir = settings.root / "oltp"
        self.pgdata = self.dir / "pgdata"
        self.socket_dir = self.dir / "run"
        self.log_path = self.dir / "postgres.log"
        self._bindir: Path | None = None

    @property
    def managed(self) -> bool:
        return self.settings.oltp_managed

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = find_bindir(notify=self.notify)
        return self._bindir

    @property
    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file()

    # -- up ---------------------------------------------------------------------------

    def up(self) -> list[str]:
        """Make the database ready; return what had to be done (nothing when it was up).

        Idempotent: initialises the cluster if needed, starts it if it is not running,
        waits until it accepts connections, creates the role and the database if they are
        missing, and applies the migrations not applied yet.
        """

        if not self.managed:
            self._check_connection()
            return []
        done: list[str] = []
        if self.pid() is None:  # a port in use is refused before initdb, not after
            self._check_port()
        if not self.initialised:
            self._init()
            done.append(f"initialised a PostgreSQL cluster in {self.pgdata}")
        pid = self.pid()
        if pid is None:
            self._configure()
            self._start()
            done.append(
                f"started PostgreSQL on {self.settings.oltp_host}:{self.settings.oltp_port}"
            )
        else:
            port = self._running_port()
            if port is not None and port != self.settings.oltp_port:
                raise OltpError(
                    f"the cluster in {self.pgdata} is running on port {port}, not on "
                    f"oltp_port {self.settings.oltp_port}: run `lakehouse oltp down` first"
                )
            # a cluster made by an older version trusted every local connection: the
            # access rules are rewritten and reloaded below, so none is left open
            self._configure()
            self._prepare_dirs()
        self._wait_ready()
        if pid is not None:
            self._reload()
        done += self._ensure_role_and_database()
        with connect(self.settings) as conn:
            done += [f"applied migration {v}" for v in migrate(conn)]
        return done

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

    def _check_port(self) -> None:
        s = self.settings
        if _port_in_use(s.oltp_host, s.oltp_port):
            raise OltpError(
                f"port {s.oltp_port} on {s.oltp_host} is in use by another program: choose "
                "another one with LAKEHOUSE_OLTP_PORT (or oltp_port in lakehouse.yaml)"
            )

    def _start(self) -> None:
        s = self.settings
        self._check_port()
        sock = self.socket_dir / f".s.PGSQL.{s.oltp_port}"
        if len(str(sock)) > _SOCKET_PATH_MAX:
            raise OltpError(
                f"the data directory's path is too long for PostgreSQL's unix socket ({sock}): "
                "use a shorter --data-dir"
            )
        self._prepare_dirs()
        out = self._run(
            [
                str(self.bindir / "pg_ctl"),
                "start",
                "--pgdata",
                str(self.pgdata),
                "--log",
                str(self.log_path),
                "--wait",
                "--timeout",
                str(START_TIMEOUT_S),
                "--silent",
            ],
            "pg_ctl start",
            check=False,
        )
        if out.returncode != 0:
            reason = self._log_reason() or _last_line(out.stderr)
            hint = ""
            if "TCP/IP socket" in reason:
                hint = f"; is port {s.oltp_port} free and allowed on {s.oltp_host}?"
            raise OltpError(f"PostgreSQL did not start: {reason}{hint} (log: {self.log_path})")

    def _log_reason(self) -> str | None:
        """The last FATAL/ERROR line of the server log, the reason a start failed."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-50:]
        except OSError:
            return None
        for line in reversed(lines):
            for mark in ("FATAL:", "PANIC:", "ERROR:"):
                if mark in line:
                    return line[line.index(mark) :].strip()
        return None

    def _wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until the server answers on TCP (``pg_isready``)."""
        s = self.settings
        cmd = [str(self.bindir / "pg_isready"), "-q", "-h", s.oltp_host, "-p", str(s.oltp_port)]
        deadline = time.monotonic() + timeout
        while subprocess.run(cmd, env=_clean_env()).returncode != 0:
            if time.monotonic() > deadline:
                raise OltpError(
                    f"PostgreSQL does not accept connections on {s.oltp_host}:{s.oltp_port} "
                    f"after {timeout:.0f} s (log: {self.log_path})"
                )
            time.sleep(0.1)

    def _reload(self) -> None:
        """Make the running server read its configuration files again."""
        with self._admin() as conn:
            conn.execute("select pg_reload_conf()")

    def _admin(self) -> psycopg.Connection:
        """The superuser, on the cluster's unix socket (``peer``: our own OS user)."""
        import psycopg

        try:
            return psycopg.connect(
                host=str(self.socket_dir),
                port=self.settings.oltp_port,
                user=SUPERUSER,
                dbname="postgres",
                autocommit=True,
                connect_timeout=5,
            )
        except psycopg.OperationalError as exc:
            raise OltpError(
                f"cannot connect to the cluster's socket in {self.socket_dir}: "
                f"{_last_line(str(exc))}"
            ) from None

    def _ensure_role_and_database(self) -> list[str]:
        from psycopg import sql

        s = self.settings
        done = []
        user, password = (
            sql.Identifier(s.oltp_user),
            sql.Literal(s.oltp_secret()),
        )
        with self._admin() as conn:
            has_role = conn.execute(
                "select 1 from pg_roles where rolname = %s", (s.oltp_user,)
            ).fetchone()
            verb = "alter" if has_role else "create"
            # the password follows the settings: set it every time
            conn.execute(
                sql.SQL(verb + " role {} with login replication password {}").format(user, password)
            )
            if not has_role:
                done.append(f"created role {s.oltp_user}")
            has_db = conn.execute(
                "select 1 from pg_database where datname = %s", (s.oltp_database,)
            ).fetchone()
            if not has_db:
                conn.execute(
                    sql.SQL(
                        "create database {} owner {} encoding 'UTF8' template template0"
                    ).format(sql.Identifier(s.oltp_database), user)
                )
                done.append(f"created database {s.oltp_database}")
        return done

    # -- down -------------------------------------------------------------------------

    def down(self) -> bool:
        """Stop the cluster (fast shutdown) and wait until no process of it is left.

        Returns whether it was running.
        """
        if not self.managed:
            self._check_connection()
            return False
        pid = self.pid()
        if pid is None:
            return False
        for mode in ("fast", "immediate"):
            out = self._run(
                [
                    str(self.bindir / "pg_ctl"),
                    "stop",
                    "--pgdata",
                    str(self.pgdata),
                    "--mode",
                    mode,
                    "--wait",
                    "--timeout",
                    str(START_TIMEOUT_S),
                    "--silent",
                ],
                "pg_ctl stop",
                check=False,
            )
            if _wait_gone(pid, self.pgdata, timeout=10):
                return True
        raise OltpError(
            f"PostgreSQL (pid {pid}) did not stop: {_last_line(out.stderr or out.stdout)} "
            f"(log: {self.log_path})"
        )

    # -- status -----------------------------------------------------------------------

    def pid(self) -> int | None:
        """The postmaster's pid when the cluster is running, else None.

        ``pg_ctl stop`` signals whatever process has the pid of ``postmaster.pid``: after
        a crash or a reboot that may be another program, or another cluster's server.
        Such a lock file is removed (and ``notify`` says so), and nothing is signalled.
        """
        lock = self.pgdata / "postmaster.pid"
        try:
            pid = int(lock.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        if _is_postmaster_of(pid, self.pgdata):
            return pid
        if _alive(pid):
            lock.unlink(missing_ok=True)
            self.notify(
                f"{lock} named pid {pid}, which is now another program "
                f"({process_command(pid) or '?'}): not signalled, the stale lock file removed"
            )
        return None

    def _running_port(self) -> int | None:
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            return int(lines[3])
        except (OSError, ValueError, IndexError):
            return None

    def status(self) -> ClusterStatus:
        """Whether it runs, where, and what the database holds (migrations, row counts)."""
        s = self.settings
        status = ClusterStatus(
            managed=self.managed,
            running=False,
            host=s.oltp_host,
            port=s.oltp_port,
            database=s.oltp_database,
            user=s.oltp_user,
        )
        if self.managed:
            status.data_dir = str(self.pgdata)
            status.log_file = str(self.log_path)
            status.pid = self.pid()
            if status.pid is None:
                status.error = "not running (`lakehouse oltp up` starts it)"
                return status
            status.port = self._running_port() or s.oltp_port
        try:
            with connect(s, autocommit=True) as conn:
                status.running = True
                _read_contents(conn, status)
        except OltpError as exc:
            status.error = str(exc)
        return status

    # -- helpers ----------------------------------------------------------------------

    def _check_connection(self) -> None:
        with connect(self.settings, autocommit=True) as conn:
            conn.execute("select 1")

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
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
        )
        if check and out.returncode != 0:
            raise OltpError(f"{what} failed: {_last_line(out.stderr or out.stdout)}")
        return out


def _read_contents(conn: psycopg.Connection, status: ClusterStatus) -> None:
    from psycopg import sql

    row = conn.execute("show server_version").fetchone()
    status.server_version = row[0] if row else None
    status.migrations = applied(conn)
    tables = conn.execute(
        "select table_name from information_schema.tables where table_schema = 'public' "
        "and table_type = 'BASE TABLE' and table_name <> 'schema_migrations' order by 1"
    ).fetchall()
    for (name,) in tables:
        count = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(name)))
        status.tables[name] = int(count.fetchone()[0])  # type: ignore[index]


def _local_os_users() -> list[str]:
    """The OS users who may be the cluster's superuser on its socket: ours, and the
    server's own when we are root (it runs as that one)."""
    users = [pwd.getpwuid(os.geteuid()).pw_name]
    if os.geteuid() == 0 and SERVER_USER not in users:
        users.append(SERVER_USER)
    return users


def _clean_env() -> dict[str, str]:
    """Our environment without libpq's ``PG*`` variables, which would override the flags."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _port_in_use(host: str, port: int) -> bool:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError:
                return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is the server of the cluster in ``pgdata``: a ``postgres`` whose
    working directory is ``pgdata`` (the postmaster moves there), or, when that cannot
    be read, whose command line names it."""
    if not _alive(pid):
        return False
    try:
        if "postgres" not in Path(f"/proc/{pid}/comm").read_text():
            return False
    except OSError:
        return False
    cwd = process_cwd(pid)
    if cwd is not None:
        return cwd == pgdata.resolve()
    return str(pgdata) in process_command(pid)


def _wait_gone(pid: int, pgdata: Path, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _is_postmaster_of(pid, pgdata):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


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
