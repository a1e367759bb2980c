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
so docker compose and the local stack use the same file; the local stack sets them. Who
may connect and what each user may read is :mod:`lakehouse.supervisors.trino_access`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import ssl
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from lakehouse.exceptions import ServiceError
from lakehouse.settings import PROJECT_DIR, Settings
from lakehouse.supervisors.process import LocalProcess, ProcessService
from lakehouse.supervisors.trino_access import (
    access_control_files,
    password_config,
    write_properties,
)

# 476 is the newest release Maven Central serves here as server core; it needs Java 24+
DEFAULT_VERSION = "476"
MIN_JAVA = 24
CACHE_ROOT = Path.home() / ".cache" / "lakehouse"
MAVEN = "https://repo1.maven.org/maven2/io/trino"
DELTA_PLUGIN = "delta-lake"
PASSWORD_PLUGIN = "password-authenticators"
CATALOG_FILE = PROJECT_DIR / "docker" / "trino" / "etc" / "catalog" / "lake.properties"
START_TIMEOUT_S = 180.0
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
            config.update(password_config(s, self.etc_dir))
        write_properties(self.etc_dir / "node.properties", node)
        write_properties(self.etc_dir / "config.properties", config, private=True)
        write_properties(self.etc_dir / "log.properties", {"io.trino": "INFO"})
        (self.etc_dir / "jvm.config").write_text(_JVM_CONFIG.format(heap=self.heap))
        for stale in catalog_dir.glob("*.properties"):
            stale.unlink()
        shutil.copyfile(CATALOG_FILE, catalog_dir / f"{s.trino_catalog}.properties")
        for name, text in access_control_files(s, str(self.etc_dir / "rules.json")).items():
            (self.etc_dir / name).write_text(text)


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
