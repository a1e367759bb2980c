"""Register the lake's Delta tables in Trino's Delta Lake catalog.

The lander writes Delta tables straight to the object store; Trino knows a table only
once its metastore has an entry pointing at the table's location. ``register_tables``
adds the missing entries (``system.register_table``) for every table of the bronze,
silver, dead-letter and quality layers. Trino reads a table's schema from its Delta log on
every query, so a column the lander adds later shows up without registering again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyarrow import fs

from lakehouse.exceptions import ServiceError
from lakehouse.settings import Settings

LAYERS = ("bronze", "silver", "dead_letter", "quality", "ml")


@dataclass
class Registration:
    """What one ``register_tables`` run did."""

    schemas_created: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)  # "<schema>.<table>"
    already: int = 0


def trino_connection(settings: Settings, *, user: str | None = None) -> Any:
    """A DB-API connection to the settings' Trino, on its lake catalog, as the pipeline's
    user (``trino_user``) or ``user``: with password authentication over HTTPS, with the
    user's password, the server verified against its certificate."""
    import trino

    user = user or settings.trino_user
    security: dict[str, Any] = {"http_scheme": "http"}
    if settings.trino_authentication == "password":
        security = {
            "http_scheme": "https",
            "auth": trino.auth.BasicAuthentication(user, settings.trino_secret(user)),
            "http_session": trino_https_session(settings),
        }
    return trino.dbapi.connect(
        host=settings.trino_host,
        port=settings.trino_port,
        user=user,
        catalog=settings.trino_catalog,
        **security,
    )


def trino_https_session(settings: Settings) -> Any:
    """A ``requests`` session that verifies the stack's Trino against its certificate
    (trino_authentication password)."""
    import requests

    session = requests.Session()
    session.verify = str(settings.trino_certificate)
    # requests lets REQUESTS_CA_BUNDLE (set on many machines) win over a session's
    # verify: without the environment, the certificate is the one verified against
    session.trust_env = False
    return session


def register_tables(settings: Settings) -> Registration:
    """Create the layer schemas and register every Delta table Trino does not know yet;
    idempotent, and a few requests when nothing is new."""
    import trino

    filesystem, root = lake_filesystem(settings)
    found = {layer: _delta_tables(filesystem, f"{root}/{layer}") for layer in LAYERS}
    result = Registration()
    catalog = settings.trino_catalog
    try:
        with trino_connection(settings) as connection:
            cursor = connection.cursor()
            known = _registered(cursor, catalog)
            for layer, tables in found.items():
                if not tables:
                    continue
                if layer not in known:
                    location = f"{settings.lake_root.rstrip('/')}/{layer}"
                    _run(
                        cursor,
                        f'CREATE SCHEMA IF NOT EXISTS "{catalog}"."{layer}" '
                        f"WITH (location = '{_quote(location)}')",
                    )
                    result.schemas_created.append(layer)
                for table in tables:
                    if table in known.get(layer, set()):
                        result.already += 1
                        continue
                    if _register(cursor, catalog, layer, table, settings.table_uri(layer, table)):
                        result.registered.append(f"{layer}.{table}")
                    else:
                        result.already += 1
    except trino.exceptions.TrinoUserError as exc:
        raise ServiceError(f"Trino refused to register the lake's tables: {exc.message}") from None
    except (trino.exceptions.TrinoConnectionError, OSError) as exc:
        raise ServiceError(
            f"cannot reach Trino at {settings.trino_host}:{settings.trino_port} to register "
            f"the lake's tables ({type(exc).__name__}); is the stack up (`lakehouse stack up`)?"
        ) from None
    return result


def lake_tables(settings: Settings, layers: Sequence[str] = LAYERS) -> list[tuple[str, str]]:
    """Every Delta table of the lake's ``layers``, as ``(layer, table)``, sorted."""
    filesystem, root = lake_filesystem(settings)
    return [
        (layer, table) for layer in layers for table in _delta_tables(filesystem, f"{root}/{layer}")
    ]


def lake_filesystem(settings: Settings) -> tuple[fs.FileSystem, str]:
    """A pyarrow filesystem of the lake and the lake's root path within it."""
    root = settings.lake_root
    scheme, sep, path = root.partition("://")
    if not sep:
        return fs.LocalFileSystem(), root.rstrip("/")
    if scheme not in ("s3", "s3a"):
        raise ServiceError(f"cannot list the lake at {root}: only local paths and s3:// are known")
    options = settings.lake_storage_options
    endpoint = options.get("AWS_ENDPOINT_URL", settings.s3_endpoint_url)
    filesystem = fs.S3FileSystem(
        access_key=options.get("AWS_ACCESS_KEY_ID", settings.s3_access_key),
        secret_key=options.get("AWS_SECRET_ACCESS_KEY", settings.s3_secret()),
        endpoint_override=endpoint,
        scheme="http" if endpoint.startswith("http://") else "https",
        region=options.get("AWS_REGION", settings.s3_region),
    )
    return filesystem, path.rstrip("/")


def _delta_tables(filesystem: fs.FileSystem, layer_path: str) -> list[str]:
    """Names of the directories under ``layer_path`` that hold a Delta log."""
    entries = filesystem.get_file_info(fs.FileSelector(layer_path, allow_not_found=True))
    candidates = sorted(e.base_name for e in entries if e.type == fs.FileType.Directory)
    if not candidates:
        return []
    logs = filesystem.get_file_info([f"{layer_path}/{name}/_delta_log" for name in candidates])
    return [
        name for name, log in zip(candidates, logs, strict=True) if log.type != fs.FileType.NotFound
    ]


def _registered(cursor: Any, catalog: str) -> dict[str, set[str]]:
    layers = ", ".join(f"'{layer}'" for layer in LAYERS)
    rows = _run(
        cursor,
        f'SELECT table_schema, table_name FROM "{catalog}".information_schema.tables '
        f"WHERE table_schema IN ({layers})",
    )
    known: dict[str, set[str]] = {}
    for schema, table in rows:
        known.setdefault(schema, set()).add(table)
    schemas = _run(
        cursor,
        f'SELECT schema_name FROM "{catalog}".information_schema.schemata '
        f"WHERE schema_name IN ({layers})",
    )
    for (schema,) in schemas:
        known.setdefault(schema, set())
    return known


def _register(cursor: Any, catalog: str, schema: str, table: str, location: str) -> bool:
    """Register one table; False when another process registered it first."""
    import trino

    try:
        _run(
            cursor,
            f"CALL \"{catalog}\".system.register_table(schema_name => '{_quote(schema)}', "
            f"table_name => '{_quote(table)}', table_location => '{_quote(location)}')",
        )
    except trino.exceptions.TrinoUserError as exc:
        if exc.error_name == "TABLE_ALREADY_EXISTS":
            return False
        raise
    return True


def _run(cursor: Any, sql: str) -> list[Any]:
    cursor.execute(sql)
    return list(cursor.fetchall())


def _quote(text: str) -> str:
    return text.replace("'", "''")
