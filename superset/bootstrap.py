"""Run by `lakehouse superset up` with Superset's own Python: imports the assets bundle
and creates the example region roles.

The assets (``superset/assets``, Superset's export format) are imported with the
connection of this deployment in place of the committed one, by Superset's assets
importer, which overwrites what it finds: a chart changed in git changes in Superset
(``superset import-dashboards`` would keep the old one).

For each region given, a role ``region_<r>`` that may read the datasets with a ``region``
column (and nothing else), a row-level security filter ``region = '<r>'`` on those
datasets for that role, and a user ``<r>_analyst`` with the roles Gamma (dashboards),
sql_lab (SQL Lab) and ``region_<r>``. Charts, samples and CSV exports of those datasets
are filtered by Superset. SQL the user writes is not trusted to Superset's parser
(``lakehouse_security.py``): on ``local`` the role gets a database of its own,
``<database>_<r>``, the region's published file that holds only its rows, on a connection
that cannot read files; on ``stack`` the database impersonates the user and Trino's
access control filters the rows.

Running it again brings assets, roles, filters and passwords back to this state. Input,
one JSON object on stdin: ``{"assets": "<dir>", "database_uri": "...", "database_extra":
{...}, "impersonate_user": false, "region_databases": {"north": {"uri": "...", "extra":
{...}}}, "admin": "admin", "database": "lakehouse", "regions": ["north"], "passwords":
{"north": "..."}}`` (``docker/compose.yaml`` runs it too).
"""

from __future__ import annotations

import json
import sys

REGION_COLUMN = "region"


def main() -> None:
    spec = json.load(sys.stdin)
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        _import(spec)
        _regions(spec)


def _import(spec: dict) -> None:
    from pathlib import Path

    import yaml
    from flask import g
    from sqlalchemy.engine.url import make_url
    from superset.commands.importers.v1.assets import ImportAssetsCommand

    from superset import security_manager

    g.user = security_manager.find_user(username=spec["admin"])
    root = Path(spec["assets"])
    if not (root / "metadata.yaml").exists():
        raise SystemExit(f"no Superset assets in {root} (metadata.yaml missing)")
    contents = {}
    for path in sorted(root.rglob("*.yaml")):
        name = path.relative_to(root).as_posix()
        text = path.read_text()
        if name.startswith("databases/"):  # the connection of this deployment
            database = yaml.safe_load(text)
            database["sqlalchemy_uri"] = spec["database_uri"]
            database["extra"] = {**(database.get("extra") or {}), **spec["database_extra"]}
            database["impersonate_user"] = bool(spec.get("impersonate_user", False))
            text = yaml.safe_dump(database, sort_keys=False)
        contents[name] = text
    try:
        ImportAssetsCommand(contents).run()
    except Exception as exc:
        messages = getattr(exc, "normalized_messages", lambda: None)() or str(exc)
        raise SystemExit(f"the assets of {root} do not import: {messages}") from None
    uri = make_url(spec["database_uri"]).render_as_string(hide_password=True)
    print(f"imported {len(contents)} files of {root} ({uri})")


def _region_database(spec: dict, region: str) -> object | None:
    """The database ``<database>_<region>`` (its connection from the spec), created or
    brought to the spec; None where the spec has none for the region (stack)."""
    from superset.models.core import Database

    from superset import db

    conn = (spec.get("region_databases") or {}).get(region)
    if conn is None:
        return None
    name = f"{spec['database']}_{region}"
    database = db.session.query(Database).filter_by(database_name=name).one_or_none()
    if database is None:
        database = Database(database_name=name)
        db.session.add(database)
    database.set_sqlalchemy_uri(conn["uri"])
    database.extra = json.dumps(conn["extra"])
    database.expose_in_sqllab = True
    database.allow_dml = False
    database.allow_ctas = False
    database.allow_cvas = False
    database.allow_file_upload = False
    database.allow_run_async = False
    database.impersonate_user = False
    db.session.flush()
    return database


def _regions(spec: dict) -> None:
    from superset.connectors.sqla.models import RowLevelSecurityFilter, SqlaTable
    from superset.models.core import Database

    from superset import db, security_manager

    database = db.session.query(Database).filter_by(database_name=spec["database"]).one()
    datasets = [
        table
        for table in db.session.query(SqlaTable).filter_by(database_id=database.id)
        if any(column.column_name == REGION_COLUMN for column in table.columns)
    ]
    if not datasets:
        raise SystemExit(f"no dataset of database {spec['database']} has a region column")
    gamma = security_manager.find_role("Gamma")
    sql_lab = security_manager.find_role("sql_lab")
    for region in spec["regions"]:
        role = security_manager.find_role(f"region_{region}") or security_manager.add_role(
            f"region_{region}"
        )
        role.permissions = [
            security_manager.add_permission_view_menu("datasource_access", dataset.perm)
            for dataset in datasets
        ]
        own = _region_database(spec, region)
        if own is not None:  # SQL Lab on the region's own rows, and nothing else
            role.permissions.append(
                security_manager.add_permission_view_menu("database_access", own.perm)
            )
        name = f"region {region}"
        rls = db.session.query(RowLevelSecurityFilter).filter_by(name=name).one_or_none()
        if rls is None:
            rls = RowLevelSecurityFilter(name=name)
            db.session.add(rls)
        rls.description = f"the rows of region {region} only"
        rls.filter_type = "Regular"
        rls.group_key = REGION_COLUMN
        rls.clause = f"{REGION_COLUMN} = '{region}'"
        rls.roles = [role]
        rls.tables = datasets
        username = f"{region}_analyst"
        password = spec["passwords"][region]
        user = security_manager.find_user(username=username)
        if user is None:
            user = security_manager.add_user(
                username,
                region.capitalize(),
                "Analyst",
                f"{username}@lakehouse.invalid",
                [gamma, sql_lab, role],
                password=password,
            )
            if not user:
                raise SystemExit(f"could not create the user {username}")
        else:
            user.roles = [gamma, sql_lab, role]
            security_manager.reset_password(user.id, password)
        db.session.commit()
        print(f"role region_{region}: {len(datasets)} datasets, user {username}")


if __name__ == "__main__":
    main()
