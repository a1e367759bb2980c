"""Bad input gets one line: a damaged Delta log, a malformed or mistyped contract, a data
directory that does not exist, a port another program holds. Each is run as a user runs
it (the real `lakehouse` command) and must end with exit code 1 and exactly one stderr
line, `error: ...`, naming the thing and what to do; no traceback. Values from the data
(a dead letter's op, its reason) are printed literally, never read as Rich markup."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from rich.console import Console
from rich.errors import MarkupError

from lakehouse.settings import DEFAULT_CONTRACTS_DIR
from tests.support.debezium import Source, item_row, write_item_contract, write_topic

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("bad-input")]

LAKEHOUSE = [sys.executable, "-m", "lakehouse.cli.main"]
TIMEOUT_S = 180


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAKEHOUSE, *args],
        capture_output=True,
        text=True,
        # wide: a line Rich would wrap at 80 columns stays whole for the assertions
        env={**os.environ, "COLUMNS": "250", "RUST_BACKTRACE": "1", **(env or {})},
        timeout=TIMEOUT_S,
    )


def _one_error_line(out: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The run failed with exit code 1 and one stderr line, ``error: ...``, holding every
    ``expected`` text; no traceback anywhere."""
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 1, (out.returncode, out.stderr[-2000:])
    assert len(lines) == 1, out.stderr[-3000:]
    assert lines[0].startswith("error: "), lines[0]
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated and landed shop; each test damages a copy of it. `generate` and
    `ingest` create a data directory that does not exist yet (the control for the data
    directory tests below)."""
    root = tmp_path_factory.mktemp("bad-input") / "shop"
    generated = _run(
        "generate", "--data-dir", str(root), "--clients", "20", "--products", "10", "--days", "5"
    )
    assert generated.returncode == 0, generated.stderr
    landed = _run("ingest", "--data-dir", str(root))
    assert landed.returncode == 0, landed.stderr
    return root


@pytest.fixture
def shop(lake: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "shop"
    shutil.copytree(lake, copy)
    return copy


# -- a damaged Delta log -------------------------------------------------------------------


def _garble(log: Path) -> None:
    log.write_text('{"add": garbage\n')


def _truncate(log: Path) -> None:
    log.write_text("")


@pytest.mark.parametrize("damage", [_garble, _truncate], ids=["garbled", "truncated"])
@pytest.mark.parametrize("command", ["status", "ingest", "build"])
def test_a_damaged_delta_log_is_one_line_naming_the_table(
    shop: Path, damage: object, command: str
) -> None:
    table = shop / "lake" / "silver" / "client"
    healthy = _run("status", "--data-dir", str(shop))
    assert healthy.returncode == 0, healthy.stderr  # the control: the same lake, intact

    damage(table / "_delta_log" / f"{0:020d}.json")  # type: ignore[operator]

    out = _run(command, "--data-dir", str(shop))
    _one_error_line(out, f"cannot read the Delta table {table}", "restore its _delta_log")


def test_a_damaged_table_removed_is_rebuilt_by_ingest(shop: Path) -> None:
    """What the error line says to do works: silver is rebuilt from bronze."""
    before = _run("status", "--json", "--data-dir", str(shop))
    table = shop / "lake" / "silver" / "client"
    _garble(table / "_delta_log" / f"{0:020d}.json")
    shutil.rmtree(table)

    assert _run("ingest", "--data-dir", str(shop)).returncode == 0
    after = _run("status", "--json", "--data-dir", str(shop))

    rows = {
        name: {t["table"]: t["silver_rows"] for t in orjson.loads(out.stdout)["tables"]}
        for name, out in (("before", before), ("after", after))
    }
    assert rows["after"] == rows["before"] and rows["after"]["client"] > 0


# -- contracts -----------------------------------------------------------------------------

CLIENT_LINE = "  - {name: city, type: string}"


BAD_CONTRACTS: dict[str, tuple[str, str, list[str]]] = {  # case: (old, new, expected)
    "malformed-yaml": (
        "primary_key: [client_id]",
        "primary_key: [client_id",
        ["is not valid YAML", "line 5"],
    ),
    "unknown-type": (
        CLIENT_LINE,
        "  - {name: city, type: strnig}",
        ["unknown type 'strnig'", "decimal(p,s)"],
    ),
    "no-primary-key": ("primary_key: [client_id]\n", "", ["'primary_key' is required"]),
    "key-not-a-column": ("primary_key: [client_id]", "primary_key: [clientid]", ["['clientid']"]),
    "unknown-key": ("primary_key:", "primary_keys:", ["unknown key(s) 'primary_keys'"]),
    "unknown-column-key": (
        CLIENT_LINE,
        "  - {name: city, type: string, nulable: false}",
        ["'nulable'"],
    ),
    "nullable-not-a-boolean": (
        CLIENT_LINE,
        "  - {name: city, type: string, nullable: 'false'}",
        ["write true or false"],
    ),
    "hostile-column-name": (
        CLIENT_LINE,
        """  - {name: 'x" or 1=1 --', type: string}""",
        ["""column 'x" or 1=1 --' is not a valid name""", "lowercase letters"],
    ),
    "mixed-case-name": (
        CLIENT_LINE,
        "  - {name: City, type: string}",
        ["column 'City' is not a valid name"],
    ),
    "hostile-table-name": (
        "table: client",
        "table: 'client; drop table x'",
        ["table 'client; drop table x'"],
    ),
    "column-twice": (
        CLIENT_LINE,
        CLIENT_LINE + "\n" + CLIENT_LINE,
        ["['city'] are declared twice"],
    ),
}
# every case through `contracts check`; the commands that read the contracts on their way
# to the lake with a few of them
CONTRACT_RUNS = [(["contracts", "check"], name) for name in BAD_CONTRACTS] + [
    (command, name)
    for command in (["status"], ["ingest"])
    for name in ("malformed-yaml", "unknown-type", "hostile-column-name")
]


@pytest.mark.parametrize(
    ("command", "case"), CONTRACT_RUNS, ids=[f"{' '.join(c)}:{n}" for c, n in CONTRACT_RUNS]
)
def test_a_bad_contract_is_one_line_naming_the_file(
    shop: Path, tmp_path: Path, command: list[str], case: str
) -> None:
    old, new, expected = BAD_CONTRACTS[case]
    contracts = tmp_path / "contracts"
    shutil.copytree(DEFAULT_CONTRACTS_DIR, contracts)
    env = {"LAKEHOUSE_CONTRACTS_DIR": str(contracts)}
    healthy = _run(*command, "--data-dir", str(shop), env=env)
    assert healthy.returncode == 0, healthy.stderr  # the control: the shipped contracts

    client = contracts / "client.yml"
    assert old in client.read_text()
    client.write_text(client.read_text().replace(old, new, 1))

    out = _run(*command, "--data-dir", str(shop), env=env)
    _one_error_line(out, str(client), *expected)


def test_a_live_table_with_a_hostile_name_drafts_no_contract(tmp_path: Path) -> None:
    """Names from a live database go through the same loader: the draft capture writes
    for a table called ``x" or 1=1 --`` is refused, naming it."""
    from lakehouse.contracts import load_contract
    from lakehouse.contracts.infer import render
    from lakehouse.exceptions import ContractError

    draft = {
        "table": 'x" or 1=1 --',
        "schema": "public",
        "primary_key": ["id"],
        "columns": [{"name": "id", "type": "bigint", "nullable": False}],
        "_skipped": [],
    }
    path = tmp_path / "x.yml"
    path.write_text(render(draft, "database shop"))
    with pytest.raises(ContractError, match=r"""table 'x" or 1=1 --' is not a valid name"""):
        load_contract(path)
    draft["table"] = "x"  # the control: the same draft with a plain name loads
    path.write_text(render(draft, "database shop"))
    assert load_contract(path).table == "x"


# -- a data directory that does not exist --------------------------------------------------


@pytest.mark.parametrize(
    "command", [["status"], ["status", "--json"], ["build"], ["dlq", "list"], ["dbt", "debug"]]
)
def test_a_data_directory_that_does_not_exist_is_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    typo = tmp_path / "shpo"
    out = _run(*command, "--data-dir", str(typo))
    _one_error_line(out, f"data directory {typo} does not exist", "--data-dir")
    assert not typo.exists()  # and nothing was created there


def test_an_existing_data_directory_is_reported(lake: Path) -> None:
    """The control: the same command on the directory that exists answers."""
    out = _run("status", "--json", "--data-dir", str(lake))
    assert out.returncode == 0, out.stderr
    assert {t["table"] for t in orjson.loads(out.stdout)["tables"]} >= {"client", "orders"}


# -- a port in use -------------------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


@pytest.mark.parametrize(
    ("command", "setting"),
    [
        (["superset", "up"], "superset_port"),
        (["oltp", "up"], "oltp_port"),
        (["stack", "up", "--only", "redis"], "redis_port"),
    ],
)
def test_a_port_in_use_is_one_line_naming_the_setting(
    tmp_path: Path, taken_port: int, command: list[str], setting: str
) -> None:
    env = {f"LAKEHOUSE_{setting.upper()}": str(taken_port)}
    out = _run(*command, "--data-dir", str(tmp_path / "data"), env=env)
    _one_error_line(
        out, f"port {taken_port} ", "is in use by another program", f"LAKEHOUSE_{setting.upper()}"
    )
    assert setting in out.stderr
    assert not (tmp_path / "data" / "oltp" / "pgdata").exists()  # refused before initdb


# -- values from the data, printed ----------------------------------------------------------

ODD_OPS = ["[/bold]", "[bold red]x[/]"]


def test_rich_markup_in_the_data_would_crash_the_terminal() -> None:
    """The control: printed as markup, the first of these values raises."""
    with pytest.raises(MarkupError):
        Console(file=open(os.devnull, "w")).print(f"unknown op '{ODD_OPS[0]}'")  # noqa: SIM115


def test_dead_letters_are_printed_literally(tmp_path: Path) -> None:
    data = tmp_path / "data"
    contracts = write_item_contract(tmp_path / "contracts")
    src = Source()
    src.snapshot([item_row(i) for i in range(3)])
    good = orjson.loads(src.records[-1])
    odd = [
        orjson.dumps({"key": good["key"], "value": dict(good["value"], op=op)}) for op in ODD_OPS
    ]
    write_topic(data / "changes", "oltp.public.item", src.records + odd)
    env = {"LAKEHOUSE_CONTRACTS_DIR": str(contracts)}

    landed = _run("ingest", "--data-dir", str(data), env=env)
    assert landed.returncode == 0, landed.stderr
    status = _run("status", "--data-dir", str(data), env=env)
    dlq = _run("dlq", "list", "--data-dir", str(data), env=env)

    for out in (status, dlq):
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
        for op in ODD_OPS:
            assert f"unknown op '{op}'" in out.stdout, out.stdout
    assert "dead letters: 2" in status.stdout
