"""The project's own PostgreSQL cluster: up, down, status, and a schema that is the contracts."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from pydantic import SecretStr

from lakehouse.contracts import Contract, load_contracts
from lakehouse.exceptions import ConfigError, OltpError
from lakehouse.oltp.client import connect
from lakehouse.oltp.cluster import Cluster
from lakehouse.oltp.migrate import migrations
from lakehouse.settings import Settings
from lakehouse.supervisors.postgres import PostgresServer
from lakehouse.supervisors.postgres_setup import SUPERUSER
from tests.support.oltp import oltp_cluster, oltp_settings
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

SHOP = ("client", "order_item", "orders", "product", "promotion", "sale", "stock", "transporter")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with oltp_cluster(tmp_path_factory.mktemp("oltp")) as running:
        yield running


@pytest.fixture(scope="module")
def contracts(settings: Settings) -> dict[str, Contract]:
    return load_contracts(settings.contracts_dir)


def _processes_of(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(pgdata) in " ".join(proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def test_up_is_idempotent(settings: Settings) -> None:
    cluster = Cluster(settings)
    pid = cluster.pid()
    assert pid is not None
    assert cluster.up() == []
    assert cluster.pid() == pid
    status = cluster.status()
    assert status.running and status.pid == pid and status.port == settings.oltp_port
    assert status.migrations == [m.version for m in migrations()] == ["0001_shop_schema"]


def test_cluster_settings_and_access(settings: Settings) -> None:
    with connect(settings, autocommit=True) as conn:
        values = dict(
            conn.execute(
                "select name, setting from pg_settings where name in "
                "('wal_level', 'max_replication_slots', 'max_wal_senders', 'port', "
                "'listen_addresses', 'server_encoding')"
            ).fetchall()
        )
        role = conn.execute(
            "select rolcanlogin, rolreplication, rolsuper from pg_roles where rolname = %s",
            (settings.oltp_user,),
        ).fetchone()
        owner = conn.execute(
            "select pg_get_userbyid(datdba) from pg_database where datname = current_database()"
        ).fetchone()
    assert values == {
        "wal_level": "logical",
        "max_replication_slots": "10",
        "max_wal_senders": "10",
        "port": str(settings.oltp_port),
        "listen_addresses": settings.oltp_host,
        "server_encoding": "UTF8",
    }
    assert role == (True, True, False)
    assert owner == (settings.oltp_user,)
    wrong = settings.model_copy(update={"oltp_password": SecretStr("not-the-password")})
    with pytest.raises(OltpError, match="password authentication failed"):
        connect(wrong)


def _tcp(settings: Settings, user: str, password: str | None) -> str:
    """Connect over TCP as ``user``; '' when let in, else the server's reason."""
    import psycopg

    try:
        with psycopg.connect(
            host=settings.oltp_host,
            port=settings.oltp_port,
            dbname=settings.oltp_database,
            user=user,
            password=password,
            connect_timeout=5,
            passfile=os.devnull,  # no ~/.pgpass of the developer's helps
        ) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError as exc:
        return str(exc)
    return ""


def test_the_password_is_generated_and_tcp_always_needs_it(settings: Settings) -> None:
    """No default password: the managed cluster's is generated once (0600); over TCP
    nobody gets in without it, the superuser not at all."""
    generated = settings.root / "secrets" / "oltp.password"
    assert settings.oltp_password is None  # the tests' settings leave it unset
    assert stat.S_IMODE(generated.stat().st_mode) == 0o600
    secret = generated.read_text().strip()
    assert len(secret) >= 32 and secret != "lakehouse"
    assert _tcp(settings, settings.oltp_user, secret) == ""  # positive control
    for user, password in [
        (settings.oltp_user, None),
        (settings.oltp_user, ""),
        (settings.oltp_user, "lakehouse"),  # the old default
        (settings.oltp_user, secret + "x"),
        (SUPERUSER, None),
        (SUPERUSER, secret),
    ]:
        refused = _tcp(settings, user, password)
        assert refused, f"{user} got in over TCP with password {password!r}"
        assert "password" in refused, refused


def test_the_socket_is_closed_and_nothing_is_trusted(settings: Settings) -> None:
    import psycopg

    cluster = PostgresServer(settings)
    assert stat.S_IMODE(cluster.socket_dir.stat().st_mode) == 0o700
    rules = [
        line.split()
        for line in (cluster.pgdata / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert rules and all(rule[0] in ("local", "host") for rule in rules)
    assert all(rule[4:] == ["scram-sha-256"] for rule in rules if rule[0] == "host"), rules
    assert not any("trust" in rule for rule in rules), rules
    assert {rule[2] for rule in rules if rule[0] == "local"} == {SUPERUSER}
    # the socket lets in the superuser (our own OS user, by peer), and no other role
    with cluster.admin() as admin:
        assert admin.execute("select current_user").fetchone() == (SUPERUSER,)
    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
        psycopg.connect(
            host=str(cluster.socket_dir),
            port=settings.oltp_port,
            dbname=settings.oltp_database,
            user=settings.oltp_user,
            connect_timeout=5,
        )


def test_an_old_trusting_cluster_is_closed_by_up(tmp_path: Path) -> None:
    """A data directory made by an older version trusted the socket and had the password
    `lakehouse`: `up` on the running cluster rewrites and reloads the rules and sets the
    generated password."""
    settings = oltp_settings(tmp_path)
    cluster = Cluster(settings)
    try:
        cluster.up()
        hba = cluster.pgdata / "pg_hba.conf"
        hba.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        cluster.server.reload()
        cluster.server.socket_dir.chmod(0o755)
        assert _tcp(settings, SUPERUSER, None) == ""  # the planted hole is open
        with cluster.server.admin() as admin:
            admin.execute(f"alter role {settings.oltp_user} password 'lakehouse'")
        cluster.up()
        assert "trust" not in hba.read_text()
        assert stat.S_IMODE(cluster.server.socket_dir.stat().st_mode) == 0o700
        assert _tcp(settings, SUPERUSER, None)
        assert _tcp(settings, settings.oltp_user, "lakehouse")
        assert _tcp(settings, settings.oltp_user, settings.oltp_secret()) == ""
    finally:
        cluster.down()


def test_an_external_database_needs_its_password(tmp_path: Path) -> None:
    settings = oltp_settings(tmp_path, oltp_managed=False)
    with pytest.raises(ConfigError, match="oltp_password is not set"):
        connect(settings)
    assert not (tmp_path / "secrets").exists()  # nothing generated for a database not ours


# the contract types as PostgreSQL's information_schema names them
_PG_TYPES = {
    "int": "integer",
    "bigint": "bigint",
    "string": "text",
    "boolean": "boolean",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "date": "date",
}


def _expected_type(ctype: str) -> tuple[str, int | None, int | None]:
    m = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", ctype)
    if m:
        return ("numeric", int(m.group(1)), int(m.group(2)))
    return (_PG_TYPES[ctype], None, None)


def test_schema_matches_the_contracts(settings: Settings, contracts: dict[str, Contract]) -> None:
    """Tables, columns (order, type, nullability) and primary keys are the contracts'."""
    assert sorted(contracts) == list(SHOP)
    with connect(settings, autocommit=True) as conn:
        tables = conn.execute(
            "select table_name from information_schema.tables where table_schema = 'public' "
            "and table_name <> 'schema_migrations' order by 1"
        ).fetchall()
        assert [t for (t,) in tables] == list(SHOP)
        for name, contract in contracts.items():
            columns = conn.execute(
                "select column_name, data_type, numeric_precision, numeric_scale, is_nullable "
                "from information_schema.columns where table_schema = 'public' "
                "and table_name = %s order by ordinal_position",
                (name,),
            ).fetchall()
            expected = []
            for c in contract.columns:
                pg_type, precision, scale = _expected_type(c.type)
                if pg_type in ("integer", "bigint"):  # information_schema gives their bits
                    precision, scale = (32 if pg_type == "integer" else 64), 0
                expected.append((c.name, pg_type, precision, scale, "YES" if c.nullable else "NO"))
            assert columns == expected, name
            key = conn.execute(
                "select a.attname from pg_index i "
                "join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
                "where i.indrelid = %s::regclass and i.indisprimary "
                "order by array_position(i.indkey::int2[], a.attnum)",
                (name,),
            ).fetchall()
            assert tuple(k for (k,) in key) == contract.primary_key, name


def test_constraints_follow_the_contracts(
    settings: Settings, contracts: dict[str, Contract]
) -> None:
    """Every min, max and accepted_values of a contract is a CHECK on its column."""
    with connect(settings, autocommit=True) as conn:
        rows = conn.execute(
            "select conrelid::regclass::text, pg_get_constraintdef(oid) from pg_constraint "
            "where contype = 'c' and connamespace = 'public'::regnamespace"
        ).fetchall()
        identity = dict(
            conn.execute(
                "select relname, relreplident from pg_class where relname = any(%s)",
                (list(SHOP),),
            ).fetchall()
        )
        foreign = {
            (t, d)
            for t, d in conn.execute(
                "select conrelid::regclass::text, pg_get_constraintdef(oid) from pg_constraint "
                "where contype = 'f' and connamespace = 'public'::regnamespace"
            ).fetchall()
        }
    checks: dict[str, list[str]] = {}
    for table, definition in rows:
        checks.setdefault(table, []).append(definition)
    for name, contract in contracts.items():
        for c in contract.columns:
            on_column = [d for d in checks.get(name, []) if re.search(rf"\b{c.name}\b", d)]
            if c.min is not None:
                assert any(f">= ({c.min:g}" in d or f">= {c.min:g}" in d for d in on_column), c
            if c.max is not None:
                assert any(f"<= ({c.max:g}" in d or f"<= {c.max:g}" in d for d in on_column), c
            if c.accepted_values:
                assert any(all(f"'{v}'" in d for v in c.accepted_values) for d in on_column), c
    assert identity == dict.fromkeys(SHOP, "f")  # REPLICA IDENTITY FULL everywhere
    references = {
        ("orders", "client_id", "client"),
        ("orders", "transporter_id", "transporter"),
        ("order_item", "order_id", "orders"),
        ("order_item", "product_id", "product"),
        ("order_item", "promotion_id", "promotion"),
        ("sale", "order_id", "orders"),
        ("sale", "client_id", "client"),
        ("stock", "product_id", "product"),
    }
    assert {
        (t, re.findall(r"KEY \((\w+)\)", d)[0], re.findall(r"REFERENCES (\w+)", d)[0])
        for t, d in foreign
    } == references


def test_down_stops_every_process_and_up_restarts(tmp_path: Path) -> None:
    settings = oltp_settings(tmp_path)
    cluster = Cluster(settings)
    try:
        done = cluster.up()
        assert any("initialised" in step for step in done)
        with connect(settings, autocommit=True) as conn:
            conn.execute("insert into transporter values (1, 'Kept', 'economy', 1.50, now())")
        assert _processes_of(cluster.pgdata), "postgres should be running"
        assert cluster.down() is True
        assert _processes_of(cluster.pgdata) == []
        assert cluster.pid() is None and not cluster.status().running
        assert cluster.down() is False  # already down: nothing to do
        again = cluster.up()  # the data survives a restart; nothing is created twice
        assert len(again) == 1 and again[0].startswith("started")
        assert cluster.status().tables["transporter"] == 1
    finally:
        cluster.down()
    assert _processes_of(cluster.pgdata) == []


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = oltp_settings(tmp_path, oltp_port=port)
        with pytest.raises(OltpError, match=re.escape(f"port {port} on 127.0.0.1 is in use")):
            Cluster(settings).up()
    assert Cluster(settings).pid() is None


def test_an_external_database_is_only_checked(tmp_path: Path) -> None:
    settings = oltp_settings(
        tmp_path, oltp_managed=False, oltp_port=free_port(), oltp_password="theirs"
    )
    cluster = Cluster(settings)
    with pytest.raises(OltpError, match=re.escape("cannot connect to PostgreSQL at 127.0.0.1")):
        cluster.up()
    with pytest.raises(OltpError, match="cannot connect"):
        cluster.down()
    status = cluster.status()
    assert not status.running and not status.managed and "cannot connect" in (status.error or "")
    assert not (tmp_path / "oltp").exists()  # nothing was created for it


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL)


def test_down_never_signals_a_pid_that_is_not_the_cluster(
    settings: Settings, tmp_path: Path
) -> None:
    """A postmaster.pid left by a crash whose pid is now another program, or another
    cluster's server: down signals nothing, the lock file goes, and `notify` says so."""
    running = Cluster(settings)
    server = running.pid()
    assert server is not None
    sleeper = _sleeper()
    try:
        for stranger in (sleeper.pid, server):
            said: list[str] = []
            (tmp_path / str(stranger)).mkdir()
            stale = Cluster(oltp_settings(tmp_path / str(stranger)), notify=said.append)
            stale.pgdata.mkdir(parents=True)
            (stale.pgdata / "PG_VERSION").write_text("15\n")
            lock = stale.pgdata / "postmaster.pid"
            lock.write_text(f"{stranger}\n{stale.pgdata}\n1700000000\n{settings.oltp_port}\n")
            assert stale.pid() is None
            assert not lock.exists() and len(said) == 1 and f"pid {stranger}" in said[0]
            lock.write_text(f"{stranger}\n")
            assert stale.down() is False
            time.sleep(0.5)  # a signal would have landed by now
            assert sleeper.poll() is None, "the unrelated process was signalled"
            assert running.pid() == server, "the other cluster was signalled"
            with connect(settings, autocommit=True) as conn:
                conn.execute("select 1")
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)
