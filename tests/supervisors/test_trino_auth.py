"""Trino with password authentication (``trino_authentication=password``): HTTPS only,
with a certificate the clients verify, and a password for every user. Each test sends
what a client that is not the user would: a wrong password, none, plain HTTP, another
user's name, a certificate check against other authorities."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import trino
from pydantic import SecretStr

from lakehouse.lake.catalog import trino_connection, trino_https_session
from lakehouse.settings import Settings, load_settings
from lakehouse.supervisors.superset import SupersetServer
from lakehouse.supervisors.trino import TrinoServer
from tests.support.ports import free_port

# one Trino for the module: its tests run on one worker under `--dist loadgroup`
pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("trino-auth")]

REGION_USER = "north_analyst"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One Trino with password authentication on a free port (no object store: the
    queries here read no table), stopped at the end."""
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("trino-auth"),
        profile="stack",
        trino_port=free_port(),
        trino_authentication="password",
        superset_region_roles=["north"],
    )
    server = TrinoServer(settings)
    try:
        server.start()
        yield settings
    finally:
        server.stop()
    assert not server.running()


def _current_user(connection: Any) -> str:
    with connection:
        cursor = connection.cursor()
        cursor.execute("SELECT current_user")
        return str(cursor.fetchall()[0][0])


def _connect(
    settings: Settings,
    user: str,
    auth: trino.auth.Authentication | None = None,
    scheme: str = "https",
) -> Any:
    """A client of the settings' Trino as ``user`` (the header), signed in with ``auth``,
    over ``scheme``; over HTTPS the server verified against its certificate."""
    session = trino_https_session(settings) if scheme == "https" else None
    return trino.dbapi.connect(
        host=settings.trino_host,
        port=settings.trino_port,
        user=user,
        http_scheme=scheme,
        auth=auth,
        http_session=session,
    )


def _statement_url(settings: Settings, scheme: str = "https") -> str:
    return f"{scheme}://{settings.trino_host}:{settings.trino_port}/v1/statement"


def test_the_right_password_queries(secured: Settings) -> None:
    assert _current_user(trino_connection(secured)) == secured.trino_user
    assert _current_user(trino_connection(secured, user=REGION_USER)) == REGION_USER
    assert TrinoServer(secured).url.startswith("https://")


def test_superset_signs_in_and_runs_as_its_user(
    secured: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Superset's connection (the pipeline's user and password, the certificate) with
    the user Superset's impersonation sets: the statement runs as that user."""
    from sqlalchemy import create_engine, text

    server = SupersetServer(secured)
    uri, extra = server.database_uri()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(secured.trino_certificate))  # as Superset's
    connect_args = {**extra["engine_params"]["connect_args"], "user": REGION_USER}
    engine = create_engine(uri, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_user")).scalar() == REGION_USER
    finally:
        engine.dispose()


def test_dbt_connects_with_the_password_and_verifies_the_server(secured: Settings) -> None:
    from lakehouse.transform.dbt import run_dbt

    assert secured.dbt_target == "trino_password"
    result = run_dbt(secured, ["debug"], raise_on_failure=False)
    assert result.succeeded
    wrong = secured.model_copy(update={"trino_password": SecretStr("x" * 64)})
    assert not run_dbt(wrong, ["debug"], raise_on_failure=False).succeeded


def test_a_wrong_password_is_refused(secured: Settings) -> None:
    wrong = secured.model_copy(update={"trino_password": SecretStr("x" * 64)})
    with pytest.raises(trino.exceptions.HttpError, match="401"):
        _current_user(trino_connection(wrong))
    # a region's user with the pipeline's password
    borrowed = trino.auth.BasicAuthentication(REGION_USER, secured.trino_secret())
    with pytest.raises(trino.exceptions.HttpError, match="401"):
        _current_user(_connect(secured, REGION_USER, borrowed))


def test_no_password_is_refused(secured: Settings) -> None:
    with pytest.raises(trino.exceptions.HttpError, match="401"):
        _current_user(_connect(secured, secured.trino_user))
    response = trino_https_session(secured).post(
        _statement_url(secured), data="SELECT 1", headers={"X-Trino-User": secured.trino_user}
    )
    assert response.status_code == 401


def test_plain_http_cannot_query(secured: Settings) -> None:
    with pytest.raises(trino.exceptions.TrinoConnectionError):
        _current_user(_connect(secured, secured.trino_user, scheme="http"))
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(requests.ConnectionError):
        session.post(
            _statement_url(secured, "http"),
            data="SELECT 1",
            headers={"X-Trino-User": secured.trino_user},
            timeout=10,
        )


def test_a_user_cannot_run_as_another(secured: Settings) -> None:
    """Impersonation is the pipeline's (Superset's) alone: a region's user who asks to
    run as the pipeline's user is refused."""
    own = trino.auth.BasicAuthentication(REGION_USER, secured.trino_secret(REGION_USER))
    with pytest.raises(trino.exceptions.TrinoUserError, match="cannot impersonate"):
        _current_user(_connect(secured, secured.trino_user, own))


def test_the_server_is_verified_and_the_secrets_kept(secured: Settings) -> None:
    """A client that trusts only the usual authorities refuses the server (so the
    clients' check is a real one), and no password is written in clear to Trino's
    configuration or log; the key, the password file and the config are the user's
    alone."""
    session = requests.Session()
    session.trust_env = False  # the system's authorities, not the generated certificate
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"https://{secured.trino_host}:{secured.trino_port}/v1/info", timeout=10)
    home = TrinoServer(secured).home
    passwords = [secured.trino_secret(), secured.trino_secret(REGION_USER)]
    assert len(set(passwords)) == 2
    for path in [*home.rglob("*"), *secured.root.joinpath("secrets").glob("trino-tls.*")]:
        if path.is_file() and path.suffix in {".properties", ".db", ".json", ".log", ".pem"}:
            text = path.read_text(errors="replace")
            assert not any(p in text for p in passwords), path
    for private in (
        secured.secret_path("trino-tls.pem"),
        home / "etc" / "password.db",
        home / "etc" / "config.properties",
    ):
        assert stat.S_IMODE(os.stat(private).st_mode) == 0o600, private
    password_file = (home / "etc" / "password.db").read_text()
    entries = dict(line.split(":", 1) for line in password_file.split())
    assert sorted(entries) == sorted([secured.trino_user, REGION_USER])
    assert all(hashed.startswith("$2y$10$") for hashed in entries.values())
