"""Trino as a single node (coordinator and worker in one process) over the lake's Delta
tables on the object store.

The server comes from Maven Central once into ``~/.cache/lakehouse/trino-<version>/server``:
``io.trino:trino-server-core:<version>:tar.gz`` plus the Delta Lake plugin
``io.trino:trino-delta-lake:<version>:zip`` (and, with password authentication,
``trino-password-authenticators``), or, where a mirror does not serve a plugin, the full
``io.trino:trino-server`` tarball with every other plugin left out. Each instance has a
home under ``<stack_dir>/trino``:

=============================  ==================================================
``<home>/etc/``                node, config, JVM and log settings, written on start
``<home>/etc/catalog/``        the committed ``docker/trino/etc/catalog/lake.properties``
``<home>/etc/password.db``     with ``trino_authentication`` password: the users' bcrypt
                               hashes (the key and certificate are in the secrets)
``<home>/data/``               the node's data directory
``<home>/trino.log``           the server's console output
=============================  ==================================================

The catalog file reads the object store's endpoint and credentials from ``${ENV:...}``,
so docker compose and the local stack use the same file; the local stack sets them.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lakehouse.contracts.marts import PUBLISHED_SCHEMA, region_filter, region_marts
from lakehouse.exceptions import ServiceError
from lakehouse.settings import PROJECT_DIR, Settings, write_secret_once
from lakehouse.supervisors.process import LocalProcess, ProcessService

# 476 is the newest release Maven Central serves here as server core; it needs Java 24+
DEFAULT_VERSION = "476"
MIN_JAVA = 24
CACHE_ROOT = Path.home() / ".cache" / "lakehouse"
MAVEN = "https://repo1.maven.org/maven2/io/trino"
DELTA_PLUGIN = "delta-lake"
PASSWORD_PLUGIN = "password-authenticators"
CATALOG_FILE = PROJECT_DIR / "docker" / "trino" / "etc" / "catalog" / "lake.properties"
START_TIMEOUT_S = 180.0
BCRYPT_COST = 10  # Trino refuses bcrypt hashes below cost 8
TLS_DAYS = 3650  # the self-signed certificate's life
_JDK_ROOTS = (Path("/usr/lib/jvm"), Path("/opt/java"))

_JVM_CONFIG = """\
-server
-Xmx{heap}
-XX:+UseG1GC
-XX:G1HeapRegionSize=32M
-XX:+ExplicitGCInvokesConcurrent
-XX:+ExitOnOutOfMemoryError
-XX:-OmitStackTraceInFastThrow
-XX:ReservedCodeCacheSize=256M
-XX:+EnableDynamicAgentLoading
--enable-native-access=ALL-UNNAMED
-Djdk.attach.allowAttachSelf=true
-Djdk.nio.maxCachedBufferSize=2000000
-Dfile.encoding=UTF-8
"""


class TrinoServer(ProcessService):
    """The stack's Trino: ``http://<trino_host>:<trino_port>`` (``https://`` with password
    authentication), catalog ``trino_catalog``."""

    name = "trino"

    def __init__(
        self,
        settings: Settings,
        *,
        version: str = DEFAULT_VERSION,
        cache_root: Path = CACHE_ROOT,
        heap: str = "1G",
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.version = version
        self.install_dir = cache_root / f"trino-{version}"
        self.heap = heap
        self.home = settings.stack_dir / "trino"
        self._process = LocalProcess(
            self.name,
            self.home,
            self._command,
            self.healthy,
            env=self._env(),
            start_timeout_s=start_timeout_s,
            ports={"trino_port": settings.trino_port},
        )

    @property
    def url(self) -> str:
        s = self.settings
        return f"{s.trino_http_scheme}://{s.trino_host}:{s.trino_port}"

    @property
    def server_dir(self) -> Path:
        return self.install_dir / "server"

    @property
    def etc_dir(self) -> Path:
        return self.home / "etc"

    # -- install ---------------------------------------------------------------------

    @property
    def plugins(self) -> set[str]:
        """The plugins this configuration loads: Delta Lake, and the password file
        authenticator when clients authenticate with a password."""
        if self.settings.trino_authentication == "password":
            return {DELTA_PLUGIN, PASSWORD_PLUGIN}
        return {DELTA_PLUGIN}

    def install(self) -> Path:
        """Download and unpack the server and its :attr:`plugins` once; later calls reuse
        them, and a plugin asked for later is added to the installed server."""
        if self._missing_plugins() == set():
            return self.server_dir
        self.install_dir.mkdir(parents=True, exist_ok=True)
        with (self.install_dir / ".install.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing it
            missing = self._missing_plugins()
            if missing == set():
                return self.server_dir
            partial = self.install_dir / "server.partial"
            shutil.rmtree(partial, ignore_errors=True)
            if missing is None:  # no server yet
                self._unpack(partial, self.plugins, with_server=True)
                partial.rename(self.server_dir)
            else:  # a running server may use this one: only add the plugin directories
                self._unpack(partial, missing, with_server=False)
                for name in sorted(missing):
                    (partial / "plugin" / name).rename(self.server_dir / "plugin" / name)
                shutil.rmtree(partial)
            for archive_path in self.install_dir.glob("*.tar.gz"):
                archive_path.unlink()  # unpacked; the archives are hundreds of MB
            for archive_path in self.install_dir.glob("*.zip"):
                archive_path.unlink()
        return self.server_dir

    def _missing_plugins(self) -> set[str] | None:
        """The plugins the installed server lacks; None when there is no server."""
        if not (self.server_dir / "bin" / "launcher").exists():
            return None
        return {name for name in self.plugins if not (self.server_dir / "plugin" / name).is_dir()}

    def _unpack(self, target: Path, plugins: set[str], *, with_server: bool) -> None:
        """``plugins`` (and the server, ``with_server``) into ``target``: the server core
        and each plugin's zip where Maven serves them, else the full server tarball with
        every other plugin left out."""
        v = self.version
        zips = {name: f"{MAVEN}/trino-{name}/{v}/trino-{name}-{v}.zip" for name in plugins}
        if all(_served(url) for url in zips.values()):
            if with_server:
                core = self._download(f"{MAVEN}/trino-server-core/{v}/trino-server-core-{v}.tar.gz")
                _untar(core, target, keep_plugins=None)
            for name, url in zips.items():
                with zipfile.ZipFile(self._download(url)) as archive:
                    _unzip_plugin(archive, target / "plugin" / name)
        else:
            full = self._download(f"{MAVEN}/trino-server/{v}/trino-server-{v}.tar.gz")
            _untar(full, target, keep_plugins=plugins)
        for name in plugins:
            if not (target / "plugin" / name).is_dir():
                raise ServiceError(f"Trino {v}: the plugin {name} is missing from {target}")

    def _download(self, url: str) -> Path:
        """``url`` into the install directory, under a temporary name until complete."""
        target = self.install_dir / url.rsplit("/", 1)[1]
        if target.exists():
            return target
        partial = target.with_name(target.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as f:
                shutil.copyfileobj(response, f, length=1 << 20)
        except (urllib.error.URLError, OSError) as exc:
            partial.unlink(missing_ok=True)
            raise ServiceError(f"cannot download {url}: {exc}") from None
        partial.rename(target)
        return target

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> bool:
        """Install, write the configuration, run the server and wait until it has
        started; False (and nothing done) when it already runs."""
        if self.running():
            self._process.wait_healthy()
            return False
        self.install()
        self._write_config()
        self._process.env = {**self._env(), "JAVA_HOME": str(find_java_home(MIN_JAVA))}
        return self._process.start()

    def stop(self) -> bool:
        """Stop the server and wait until the JVM is gone and reaped: its main thread ends
        before the others, which the process's state ("Z") shows as if it had exited."""
        pid = self._process.pid()
        stopped = self._process.stop()
        if pid is not None:
            _wait_gone(pid)
        return stopped

    def healthy(self) -> bool:
        """The server answers ``/v1/info`` and has finished starting."""
        context = None
        if self.settings.trino_authentication == "password":
            if not self.settings.trino_certificate.exists():
                return False
            context = ssl.create_default_context(cafile=self.settings.trino_certificate)
        url = f"{self.url}/v1/info"
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                return json.load(response).get("starting") is False
        except (OSError, ValueError):
            return False

    # -- configuration ---------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        """What the catalog file reads through ``${ENV:...}`` (``JAVA_HOME`` is added on
        start, so that status and stop work on a machine without the JDK)."""
        s = self.settings
        return {
            "LAKEHOUSE_S3_ENDPOINT": s.s3_endpoint_url,
            "LAKEHOUSE_S3_REGION": s.s3_region,
            "LAKEHOUSE_S3_BUCKET": s.s3_bucket,
            "LAKEHOUSE_S3_ACCESS_KEY": s.s3_access_key,
            "LAKEHOUSE_S3_SECRET_KEY": s.s3_secret(),
        }

    def _command(self) -> list[str]:
        return [
            str(self.server_dir / "bin" / "launcher"),
            "run",
            f"--etc-dir={self.etc_dir}",
            f"--data-dir={self.home / 'data'}",
        ]

    def _write_config(self) -> None:
        s = self.settings
        node = {
            "node.environment": "lakehouse",
            "node.id": "lakehouse-trino",
            "node.data-dir": str(self.home / "data"),
            "node.internal-address": "127.0.0.1",
            # reachable from this machine only, unless trino_bind_host says otherwise
            "node.bind-ip": s.trino_bind_host,
        }
        config = {
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            "http-server.http.port": str(s.trino_port),
            "discovery.uri": f"http://127.0.0.1:{s.trino_port}",
            "query.max-memory": "512MB",
            "query.max-memory-per-node": "256MB",
            "task.concurrency": "2",  # a small machine; the default follows the cores
        }
        catalog_dir = self.etc_dir / "catalog"
        catalog_dir.mkdir(parents=True, exist_ok=True)
        for unused in ("password-authenticator.properties", "password.db"):
            (self.etc_dir / unused).unlink(missing_ok=True)
        if s.trino_authentication == "password":
            del config["http-server.http.port"]  # HTTPS only, on the same port
            config.update(self._password_config())
        _write_properties(self.etc_dir / "node.properties", node)
        _write_properties(self.etc_dir / "config.properties", config, private=True)
        _write_properties(self.etc_dir / "log.properties", {"io.trino": "INFO"})
        (self.etc_dir / "jvm.config").write_text(_JVM_CONFIG.format(heap=self.heap))
        for stale in catalog_dir.glob("*.properties"):
            stale.unlink()
        shutil.copyfile(CATALOG_FILE, catalog_dir / f"{s.trino_catalog}.properties")
        for name, text in access_control_files(s, str(self.etc_dir / "rules.json")).items():
            (self.etc_dir / name).write_text(text)

    def _password_config(self) -> dict[str, str]:
        """HTTPS only (the self-signed key and certificate of
        :func:`tls_key_and_certificate`) with the password file authenticator: a client
        has no plain HTTP port to send a user name on, or a password over."""
        s = self.settings
        pem = tls_key_and_certificate(s)
        password_file = self.etc_dir / "password.db"
        _write_private(password_file, password_file_text(s))
        _write_properties(
            self.etc_dir / "password-authenticator.properties",
            {"password-authenticator.name": "file", "file.password-file": str(password_file)},
        )
        return {
            "http-server.http.enabled": "false",
            "http-server.https.enabled": "true",
            "http-server.https.port": str(s.trino_port),
            "http-server.https.keystore.path": str(pem),
            "http-server.authentication.type": "PASSWORD",
            # the node talks to itself over the same HTTPS, its requests signed with the
            # shared secret; without a key store of its own Trino would serve a
            # certificate it made instead of this one
            "discovery.uri": f"https://127.0.0.1:{s.trino_port}",
            "internal-communication.https.required": "true",
            "internal-communication.https.keystore.path": str(pem),
            "internal-communication.https.truststore.path": str(s.trino_certificate),
            "internal-communication.shared-secret": s.generated_secret("trino-internal.key"),
        }


def access_rules(settings: Settings) -> dict[str, Any]:
    """Trino's file-based access control: who may read what in the lake's catalog.

    * the pipeline's user (``trino_user``): everything (it registers, builds, publishes);
    * each region's user (``<r>_analyst``, the Superset user Trino sees through
      impersonation): the published marts with a region column, filtered to the
      region's rows; nothing else, no table function, procedure or session property;
    * any other user (an analyst's client, Superset's admin): the published marts,
      read-only; never bronze, silver, the build area or the ``system`` catalog.

    User names are what clients say they are until Trino authenticates them (a password
    authenticator, ``docs/security.md``): Superset cannot be made to say another."""
    pipeline = re.escape(settings.trino_user)
    catalog = re.escape(settings.trino_catalog)
    regions = {settings.region_user(r): r for r in settings.superset_region_roles}
    region_users = "|".join(re.escape(user) for user in sorted(regions))
    marts = "|".join(re.escape(name) for name in region_marts())
    tables: list[dict[str, Any]] = [
        {"user": pipeline, "privileges": ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"]}
    ]
    for user, region in sorted(regions.items()):
        tables.append(
            {
                "user": re.escape(user),
                "catalog": catalog,
                "schema": PUBLISHED_SCHEMA,
                "table": f"({marts})",
                "privileges": ["SELECT"],
                "filter": region_filter(region),
            }
        )
    if region_users:
        tables.append({"user": f"({region_users})", "privileges": []})
    tables.append({"catalog": catalog, "schema": PUBLISHED_SCHEMA, "privileges": ["SELECT"]})
    return {
        "catalogs": [
            {"user": pipeline, "allow": "all"},
            {"catalog": catalog, "allow": "read-only"},
            {"catalog": "system", "allow": "none"},
        ],
        "schemas": [{"user": pipeline, "owner": True}, {"owner": False}],
        "tables": tables,
        "functions": [{"user": pipeline, "privileges": ["EXECUTE", "GRANT_EXECUTE"]}],
        "procedures": [{"user": pipeline, "privileges": ["EXECUTE"]}],
        "system_session_properties": [{"user": pipeline, "allow": True}],
        "catalog_session_properties": [{"user": pipeline, "allow": True}],
        "queries": [
            {"user": pipeline, "allow": ["execute", "view", "kill"]},
            {"allow": ["execute"]},
        ],
        # Superset signs in as the pipeline's user and runs each statement as its own
        # user (with password authentication Trino checks that it may)
        "impersonation": [{"original_user": pipeline, "new_user": ".*", "allow": True}],
        "system_information": [{"user": pipeline, "allow": ["read"]}],
    }


def access_control_files(settings: Settings, rules_path: str) -> dict[str, str]:
    """File name -> text of Trino's access control: ``access-control.properties`` pointing
    at ``rules_path``, and ``rules.json``."""
    properties = f"access-control.name=file\nsecurity.config-file={rules_path}\n"
    return {
        "access-control.properties": properties,
        "rules.json": json.dumps(access_rules(settings), indent=2) + "\n",
    }


def _wait_gone(pid: int, timeout_s: float = 30.0) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)  # our child (killed by now): reap it
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # someone else's child: its parent reaps it


def find_java_home(minimum: int) -> Path:
    """A JDK of at least Java ``minimum`` (the newest installed under /usr/lib/jvm or
    /opt/java): Trino refuses to start on an older one."""
    found: list[tuple[int, Path]] = []
    for root in _JDK_ROOTS:
        for home in root.glob("*") if root.is_dir() else ():
            feature = _java_feature(home)
            if feature is not None and feature >= minimum and (home / "bin" / "java").exists():
                found.append((feature, home))
    if not found:
        raise ServiceError(
            f"Trino needs Java {minimum} or later: install a JDK {minimum}+ under /usr/lib/jvm"
        )
    return max(found)[1]


def _java_feature(home: Path) -> int | None:
    try:
        release = (home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', release, re.MULTILINE)
    return int(match.group(1)) if match else None


def _served(url: str) -> bool:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=30):
            return True
    except urllib.error.HTTPError:
        return False
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceError(f"cannot reach Maven Central ({url}): {exc}") from None


def _untar(archive: Path, target: Path, keep_plugins: set[str] | None) -> None:
    """Unpack the server's top directory into ``target``; with ``keep_plugins``, remove
    every other ``plugin/<name>/`` afterwards (plugins hard-link each other's jars)."""
    target.mkdir(parents=True)
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            parts = Path(member.name).parts[1:]  # below trino-server[-core]-<version>/
            if not parts:
                continue
            member.name = str(Path(*parts))
            if member.islnk():
                member.linkname = str(Path(*Path(member.linkname).parts[1:]))
            tar.extract(member, target, filter="data")
    if keep_plugins is not None:
        for plugin in (target / "plugin").iterdir():
            if plugin.name not in keep_plugins:
                shutil.rmtree(plugin)


def _unzip_plugin(archive: zipfile.ZipFile, target: Path) -> None:
    """A plugin zip holds one ``trino-<plugin>-<version>/`` directory of jars."""
    target.mkdir(parents=True)
    for info in archive.infolist():
        name = Path(info.filename)
        if info.is_dir() or len(name.parts) < 2:
            continue
        with archive.open(info) as src, (target / name.name).open("wb") as dst:
            shutil.copyfileobj(src, dst)


def _write_properties(path: Path, values: dict[str, str], *, private: bool = False) -> None:
    text = "".join(f"{key}={value}\n" for key, value in values.items())
    text = "# written by lakehouse.supervisors.trino\n" + text
    if private:  # it may hold a secret
        _write_private(path, text)
    else:
        path.write_text(text)


def _write_private(path: Path, text: str) -> None:
    """``text`` as ``path``, readable by this user only from the start."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def password_file_text(settings: Settings) -> str:
    """Trino's password file: the pipeline's user and each region's user, each with the
    bcrypt hash of its password (Trino reads ``$2y$`` hashes of cost 8 or more)."""
    import bcrypt

    regions = settings.superset_region_roles
    users = [settings.trino_user, *(settings.region_user(r) for r in regions)]
    lines = []
    for user in users:
        secret = settings.trino_secret(user).encode()
        hashed = bcrypt.hashpw(secret, bcrypt.gensalt(rounds=BCRYPT_COST)).decode()
        lines.append(f"{user}:$2y${hashed.removeprefix('$2b$')}\n")
    return "".join(lines)


def tls_key_and_certificate(settings: Settings) -> Path:
    """The key and self-signed certificate Trino serves HTTPS with, in one PEM file
    (``<data_dir>/secrets/trino-tls.pem``, created once), and the certificate alone in
    :attr:`Settings.trino_certificate` for the clients to verify the server with.

    The certificate names localhost, 127.0.0.1, this machine and ``trino_host``; a
    ``trino_host`` it does not name is refused (clients would fail to verify it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = settings.secret_path("trino-tls.pem")
    if not pem.exists():
        write_secret_once(pem, _self_signed_pem(_tls_names(settings)))
    certificate = x509.load_pem_x509_certificate(pem.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    known = {str(n) for n in names.get_values_for_type(x509.DNSName)}
    known |= {str(n) for n in names.get_values_for_type(x509.IPAddress)}
    if settings.trino_host not in known:
        raise ServiceError(
            f"{pem} certifies {', '.join(sorted(known))}, not trino_host "
            f"{settings.trino_host!r}: delete it to have a new one generated"
        )
    public = certificate.public_bytes(serialization.Encoding.PEM).decode()
    if not settings.trino_certificate.exists() or settings.trino_certificate.read_text() != public:
        settings.trino_certificate.unlink(missing_ok=True)
        write_secret_once(settings.trino_certificate, public)
    return pem


def _tls_names(settings: Settings) -> set[str]:
    names = {"localhost", "127.0.0.1", socket.gethostname(), settings.trino_host}
    if settings.trino_bind_host not in ("0.0.0.0", "::"):
        names.add(settings.trino_bind_host)
    return names


def _self_signed_pem(names: set[str]) -> str:
    """An RSA key (PKCS#8) and a self-signed certificate for ``names``, both as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=True,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lakehouse trino")])
    alternative: list[x509.GeneralName] = []
    for name in sorted(names):
        try:
            alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative.append(x509.DNSName(name))
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=TLS_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private.decode() + certificate.public_bytes(serialization.Encoding.PEM).decode()


def main(argv: list[str]) -> None:
    """``python -m lakehouse.supervisors.trino docker/trino/etc``: the access control files
    of the compose deployment, from the default settings."""
    out = Path(argv[0] if argv else "docker/trino/etc")
    out.mkdir(parents=True, exist_ok=True)
    # the defaults, not this machine's environment: the files are the project's
    for name, text in access_control_files(Settings.model_construct(), COMPOSE_RULES).items():
        (out / name).write_text(text)
        print(out / name)


COMPOSE_RULES = "/etc/trino/rules.json"  # where docker/compose.yaml mounts rules.json

if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
