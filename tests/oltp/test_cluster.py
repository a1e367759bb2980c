"""The project's own PostgreSQL cluster: up, down, status, and a schema that is the contracts."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from pydantic import SecretStr

from lakehouse.contracts import Contract, load_contracts
from lakehouse.exceptions import OltpError
from lakehouse.oltp.cluster import Cluster, connect
from lakehouse.oltp.migrate import migrations
from lakehouse.settings import Settings
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
    settings = oltp_settings(tmp_path, oltp_managed=False, oltp_port=free_port())
    cluster = Cluster(settings)
    with pytest.raises(OltpError, match=re.escape("cannot connect to PostgreSQL at 127.0.0.1")):
        cluster.up()
    with pytest.raises(OltpError, match="cannot connect"):
        cluster.down()
    status = cluster.status()
    assert not status.running and not status.managed and "cannot connect" in (status.error or "")
    assert not (tmp_path / "oltp").exists()  # nothing was created for it
