"""The project's own PostgreSQL server: started, stopped, and its role and database.

The server listens on ``oltp_host:oltp_port`` with ``wal_level=logical`` (Debezium reads
the WAL) and password (SCRAM) authentication for ordinary and replication connections;
no TCP connection is ever trusted. The role ``oltp_user`` (LOGIN REPLICATION) owns the
database ``oltp_database``; its password is ``oltp_password``, or one generated once in
``<data_dir>/secrets/oltp.password``. The superuser has no password: it is reached only
on the socket, by ``peer`` authentication of our own OS user (and the server's), for the
set-up. The cluster's files are :mod:`lakehouse.supervisors.postgres_setup`.

This knows nothing of the shop: the schema (the migrations) and the connection the
stages use are :mod:`lakehouse.oltp`.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.exceptions import OltpError
from lakehouse.supervisors.postgres_setup import SUPERUSER, ClusterDirectory, clean_env
from lakehouse.supervisors.process import last_line, pid_alive, process_command, process_cwd

if TYPE_CHECKING:
    import psycopg

START_TIMEOUT_S = 60
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, with its final NUL


class PostgresServer(ClusterDirectory):
    """The managed cluster of the settings: ``up``, ``down``, ``pid``."""

    def up(self) -> list[str]:
        """Make the server ready; return what had to be done (nothing when it was up).

        Idempotent: initialises the cluster if needed, starts it if it is not running,
        waits until it accepts connections, and creates the role and the database if they
        are missing.
        """
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
            port = self.running_port()
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
            self.reload()
        done += self._ensure_role_and_database()
        return done

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
            reason = self._log_reason() or last_line(out.stderr)
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
        while subprocess.run(cmd, env=clean_env()).returncode != 0:
            if time.monotonic() > deadline:
                raise OltpError(
                    f"PostgreSQL does not accept connections on {s.oltp_host}:{s.oltp_port} "
                    f"after {timeout:.0f} s (log: {self.log_path})"
                )
            time.sleep(0.1)

    def reload(self) -> None:
        """Make the running server read its configuration files again."""
        with self.admin() as conn:
            conn.execute("select pg_reload_conf()")

    def admin(self, dbname: str = "postgres") -> psycopg.Connection:
        """The superuser, on the cluster's unix socket (``peer``: our own OS user)."""
        import psycopg

        try:
            return psycopg.connect(
                host=str(self.socket_dir),
                port=self.settings.oltp_port,
                user=SUPERUSER,
                dbname=dbname,
                autocommit=True,
                connect_timeout=5,
            )
        except psycopg.OperationalError as exc:
            raise OltpError(
                f"cannot connect to the cluster's socket in {self.socket_dir}: "
                f"{last_line(str(exc))}"
            ) from None

    def _ensure_role_and_database(self) -> list[str]:
        from psycopg import sql

        s = self.settings
        done = []
        user, password = (
            sql.Identifier(s.oltp_user),
            sql.Literal(s.oltp_secret()),
        )
        with self.admin() as conn:
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

    def down(self) -> bool:
        """Stop the cluster (fast shutdown) and wait until no process of it is left.

        Returns whether it was running.
        """
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
            f"PostgreSQL (pid {pid}) did not stop: {last_line(out.stderr or out.stdout)} "
            f"(log: {self.log_path})"
        )

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
        if pid_alive(pid):
            lock.unlink(missing_ok=True)
            self.notify(
                f"{lock} named pid {pid}, which is now another program "
                f"({process_command(pid) or '?'}): not signalled, the stale lock file removed"
            )
        return None

    def running_port(self) -> int | None:
        """The port the running server listens on (``postmaster.pid``), if it runs."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            return int(lines[3])
        except (OSError, ValueError, IndexError):
            return None


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


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is the server of the cluster in ``pgdata``: a ``postgres`` whose
    working directory is ``pgdata`` (the postmaster moves there), or, when that cannot
    be read, whose command line names it."""
    if not pid_alive(pid):
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
