"""No raw personal data at rest: secrets, file modes, the key's fingerprint in the lake,
dead letters in every form, unreviewed contracts and the change log's retention.

Each check has its positive control: the same data without the protection shows the
personal values (or the other key runs), so a check that cannot fail would be seen."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from lakehouse.cdc.decode import decode
from lakehouse.cdc.file_source import FileSource, RawBatch
from lakehouse.cdc.lander import ingest
from lakehouse.cdc.pii import Masker, fingerprint, recorded_fingerprint
from lakehouse.cdc.replay import replay
from lakehouse.contracts import load_contract
from lakehouse.contracts.infer import render
from lakehouse.exceptions import ConfigError
from lakehouse.settings import MIN_SECRET_LENGTH, Settings, load_settings
from tests.support.debezium import Source, write_topic
from tests.support.pii_scan import scan
from tests.support.truth import expected_token, pii_key

pytestmark = pytest.mark.integration
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
TOPIC = "oltp.public.person"
KEY_A = "a" * 40
KEY_B = "b" * 40
PERSON = """\
table: person
schema: public
primary_key: [person_id]
columns:
  - {{name: person_id, type: bigint, nullable: false}}
  - {{name: email, type: string, pii: email}}
  - {{name: city, type: string}}
  - {{name: visits, type: int, nullable: {visits_nullable}}}
  - {{name: updated_at, type: timestamptz, nullable: false}}
"""


def _person(person_id: int, email: str, city: str = "Lille", **extra: object) -> dict:
    return {
        "person_id": person_id,
        "email": email,
        "city": city,
        "visits": 1,
        "updated_at": "2024-01-01T00:00:00.000000Z",
        **extra,
    }


def _contracts(directory: Path, *, visits_nullable: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = PERSON.format(visits_nullable=str(visits_nullable).lower())
    (directory / "person.yml").write_text(text)
    return directory


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    defaults: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "contracts_dir": _contracts(tmp_path / "contracts"),
        "pii_key": KEY_A,
    }
    return load_settings(**{**defaults, **overrides})


def _silver(settings: Settings) -> dict[int, dict]:
    rows = DeltaTable(settings.table_uri("silver", "person")).to_pyarrow_table().to_pylist()
    return {r["person_id"]: r for r in rows}


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAKEHOUSE, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
        timeout=300,
    )


# -- secrets and file modes ---------------------------------------------------------------


def test_generated_secrets_are_whole_private_and_refused_when_short(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    key = settings.generated_secret("pii.key")
    path = tmp_path / "secrets" / "pii.key"
    assert len(key) >= MIN_SECRET_LENGTH and settings.generated_secret("pii.key") == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["pii.key"]  # no temporary left

    path.write_text("")  # e.g. a disk that filled up, a truncated copy
    with pytest.raises(ConfigError, match=r"pii\.key holds no secret"):
        settings.generated_secret("pii.key")
    path.write_text("short")
    with pytest.raises(ConfigError, match="too short"):
        settings.generated_secret("pii.key")
    with pytest.raises(ConfigError, match=r"'pii_key'.*at least 32 characters"):
        load_settings(data_dir=tmp_path, pii_key="secret")
    with pytest.raises(ConfigError, match="'pii_key'"):
        load_settings(data_dir=tmp_path, pii_key="   ")


def test_the_cli_writes_the_data_directory_for_its_user_only(tmp_path: Path) -> None:
    source = Source(table="person", key=("person_id",))
    source.snapshot([_person(1, "jade.roux.1@example.com")])
    write_topic(tmp_path / "changes", TOPIC, source.records)
    data = tmp_path / "data"
    run = _cli(
        "ingest",
        "--data-dir",
        str(data),
        LAKEHOUSE_CHANGES_DIR=str(tmp_path / "changes"),
        LAKEHOUSE_CONTRACTS_DIR=str(_contracts(tmp_path / "contracts")),
    )
    assert run.returncode == 0, run.stderr
    paths = [data, *data.rglob("*")]
    assert any(p.suffix == ".parquet" for p in paths) and (data / "secrets" / "pii.key").exists()
    loose = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths if p.stat().st_mode & 0o077}
    assert not loose, loose
    # positive control: the same landing outside the CLI, under a umask of 022, is not
    control = tmp_path / "control"
    code = (
        "import os, sys; os.umask(0o022); from lakehouse.cdc.lander import ingest; "
        "from lakehouse.settings import load_settings; "
        "ingest(load_settings(data_dir=sys.argv[1], changes_dir=sys.argv[2], "
        "contracts_dir=sys.argv[3]))"
    )
    args = [str(control), str(tmp_path / "changes"), str(tmp_path / "contracts")]
    subprocess.run([sys.executable, "-c", code, *args], check=True, timeout=300)
    assert any(p.stat().st_mode & 0o077 for p in control.rglob("*.parquet"))


# -- the PII key's fingerprint ------------------------------------------------------------


def test_a_lander_with_another_pii_key_refuses_to_run(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    source = Source(table="person", key=("person_id",))
    source.snapshot([_person(1, "omar.petit.1@example.com")])
    write_topic(settings.changes_path, TOPIC, source.records)
    ingest(settings)
    recorded = recorded_fingerprint(settings)
    assert recorded == fingerprint(KEY_A.encode()) != fingerprint(KEY_B.encode())
    assert recorded is not None and len(recorded) == 16 and recorded not in KEY_A
    key_table = Path(settings.table_uri("_meta", "pii_key"))
    assert not any(KEY_A.encode() in p.read_bytes() for p in key_table.rglob("*") if p.is_file())

    source.transaction([("u", _person(1, "omar.petit.1@example.org"))])
    write_topic(settings.changes_path, TOPIC, source.records)
    other = _settings(tmp_path, pii_key=KEY_B)
    with pytest.raises(ConfigError, match=r"not the one the lake .* was masked with"):
        ingest(other)
    assert _silver(settings)[1]["email"] == expected_token(
        KEY_A.encode(), "omar.petit.1@example.com"
    )

    run = _cli(
        "ingest",
        "--data-dir",
        str(settings.root),
        LAKEHOUSE_PII_KEY=KEY_B,
        LAKEHOUSE_CONTRACTS_DIR=str(settings.contracts_dir),
    )
    assert run.returncode == 1
    assert run.stderr.startswith("error: the PII key") and len(run.stderr.splitlines()) == 1
    assert "Traceback" not in run.stderr

    # positive control: the original key lands the update
    ingest(_settings(tmp_path, pii_key=KEY_A))
    token = expected_token(KEY_A.encode(), "omar.petit.1@example.org")
    assert _silver(settings)[1]["email"] == token


# -- dead letters -------------------------------------------------------------------------

KNOWN = "ines.faure.9@example.com"  # in the contract's PII column
ADDED = "hugo.morel.10@example.com"  # in a column added in the source
TORN = "nina.simon.11@example.com"  # in a line that is not JSON
STRAY = "paul.girard.12@example.com"  # where a row image should be


def _bad_records(source: Source) -> list[bytes]:
    good = orjson.loads(source.records[-1])

    def record(after: object, op: str = "c", key: int = 9) -> bytes:
        value = dict(good["value"], after=after, op=op)
        return orjson.dumps({"key": {"person_id": key}, "value": value})

    return [
        record({**_person(9, KNOWN), "visits": None}),  # null in a not-null column
        record({**_person(10, "x@example.com"), "contact": ADDED}, op="z", key=10),
        b'{"key": {"person_id": 11}, "value": {"after": {"email": "' + TORN.encode() + b'"',
        record(STRAY, key=12),
    ]


def test_dead_letters_mask_pii_in_every_form_and_replay_without_double_masking(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, changes_retention_hours=0)
    source = Source(table="person", key=("person_id",))
    people = ["jade.roux.1@example.com", "emma.leroy.2@example.com", "theo.blanc.3@example.com"]
    source.snapshot([_person(i + 1, e) for i, e in enumerate(people)])
    bad = _bad_records(source)
    source.transaction([("c", _person(4, "lucas.bonnet.4@example.com"))])
    records = source.records[:3] + bad + source.records[3:]
    write_topic(settings.changes_path, TOPIC, records, segment=4)

    report = ingest(settings)
    assert report.rejected == len(bad)
    personal = {*people, "lucas.bonnet.4@example.com", KNOWN, ADDED, TORN, STRAY}
    scanned = scan(settings.root, personal)
    assert scanned.found == {}, scanned.found
    assert scanned.values == 8 and scanned.parquet_files >= 4 and scanned.strings >= 20
    # the change log has gone (retention 0): an empty segment keeps the topic's end
    assert [p.name for p in sorted((settings.changes_path / TOPIC).glob("*.jsonl"))] == [
        f"{len(records):020d}.jsonl"
    ]
    assert FileSource(settings.changes_path).end_offset(TOPIC) == len(records)

    key = pii_key(settings)
    dlq = DeltaTable(settings.table_uri("dead_letter", "events")).to_pyarrow_table()
    raw = dict(zip(dlq.column("offset").to_pylist(), dlq.column("raw").to_pylist(), strict=True))
    known = json.loads(raw[3])["value"]["after"]
    assert known["email"] == expected_token(key, KNOWN) and known["city"] == "Lille"
    added = json.loads(raw[4])["value"]["after"]
    assert added["contact"] == expected_token(key, ADDED)
    assert raw[5].startswith("<not a JSON record: ")
    assert json.loads(raw[6])["value"]["after"] == expected_token(key, STRAY)

    # positive control: the same lines dead-lettered without masking hold every value
    unmasked = decode(
        load_contract(settings.contracts_dir / "person.yml"),
        RawBatch.from_lines(TOPIC, 3, bad),
    )
    pq.write_table(unmasked.rejects, tmp_path / "control.parquet")
    control = scan(tmp_path, {KNOWN, ADDED, TORN, STRAY}, skip=("data", "contracts"))
    assert control.found == {str(tmp_path / "control.parquet"): {KNOWN, ADDED, TORN, STRAY}}

    # the contract is fixed; the change log no longer has the record: the masked copy
    # replays, its token kept as it is (a token of the token would never join)
    _contracts(settings.contracts_dir, visits_nullable=True)
    replayed = replay(settings)
    assert replayed.replayed[TOPIC] == 1 and replayed.still_failing[TOPIC] == 3
    assert _silver(settings)[9]["email"] == expected_token(key, KNOWN)
    assert _silver(settings)[9]["city"] == "Lille"
    assert Masker(key).token(expected_token(key, KNOWN)) == expected_token(key, KNOWN)


# -- unreviewed contracts -----------------------------------------------------------------


def _draft(directory: Path) -> Path:
    draft = {
        "table": "person",
        "schema": "public",
        "primary_key": ["person_id"],
        "columns": [
            {"name": "person_id", "type": "bigint", "nullable": False},
            {"name": "email", "type": "string", "pii": "email"},
            {"name": "city", "type": "string"},
            {"name": "visits", "type": "int", "nullable": False},
            {"name": "updated_at", "type": "timestamptz", "nullable": False},
        ],
        "_skipped": [],
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "person.yml"
    path.write_text(render(draft, "database shop", by_capture=True))
    return path


def test_an_unreviewed_contract_masks_every_text_column_until_approved(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    (shipped / "other.yml").parent.mkdir(parents=True)
    (shipped / "other.yml").write_text(
        PERSON.replace("person", "other").format(visits_nullable="false")
    )
    settings = _settings(tmp_path, contracts_dir=shipped)
    path = _draft(settings.captured_contracts_dir)
    assert load_contract(path).reviewed is False
    source = Source(table="person", key=("person_id",))
    source.snapshot([_person(1, "karim.morel.1@example.com", city="Metz", nickname="Kiki")])
    write_topic(settings.changes_path, TOPIC, source.records)
    ingest(settings)
    key = pii_key(settings)
    row = _silver(settings)[1]
    assert row["city"] == expected_token(key, "Metz")  # no PII class, but nobody said so
    assert row["nickname"] == expected_token(key, "Kiki")  # unknown to the contract
    assert row["email"] == expected_token(key, "karim.morel.1@example.com")
    assert row["visits"] == 1 and row["person_id"] == 1  # numbers are not text

    where = ["--data-dir", str(settings.root)]
    env = {"LAKEHOUSE_CONTRACTS_DIR": str(shipped), "LAKEHOUSE_PII_KEY": KEY_A}
    missing = _cli("contracts", "approve", "nobody", *where, **env)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no contract")
    approved = _cli("contracts", "approve", "public.person", *where, **env)
    assert approved.returncode == 0, approved.stderr
    assert "email (email)" in approved.stdout
    assert load_contract(path).reviewed is True
    assert "reviewed: true" in path.read_text()

    # reviewed: the PII classes decide (the positive control of the masking above)
    source.transaction([("c", _person(2, "rose.michel.2@example.com", city="Metz"))])
    write_topic(settings.changes_path, TOPIC, source.records)
    ingest(settings)
    row = _silver(settings)[2]
    assert row["city"] == "Metz"
    assert row["email"] == expected_token(key, "rose.michel.2@example.com")


def test_shipped_contracts_are_reviewed_and_drafts_are_not() -> None:
    from lakehouse.settings import DEFAULT_CONTRACTS_DIR

    shipped = [load_contract(p) for p in sorted(DEFAULT_CONTRACTS_DIR.glob("*.yml"))]
    assert shipped and all(c.reviewed for c in shipped)


def test_masking_text_of_every_arrow_string_type(tmp_path: Path) -> None:
    """An unreviewed contract's text columns are masked whatever their Arrow type."""
    masker = Masker(KEY_A.encode())
    contract = load_contract(_draft(tmp_path))
    for kind in (pa.string(), pa.large_string(), pa.string_view()):
        table = pa.table({"person_id": [1], "city": pa.array(["Metz"], kind)})
        masked = masker.mask_table(contract, table)
        assert masked.column("city").to_pylist() == [masker.token("Metz")], kind
