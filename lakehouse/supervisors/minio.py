"""MinIO, the stack's S3-compatible object store, as a local process.

MinIO ships as source only (since late 2025), so the binary is built once from its Go
module into ``~/.cache/lakehouse/minio/bin/minio``. It supports the conditional writes
(``If-None-Match``/``If-Match``) delta-rs needs for safe concurrent commits
(``aws_conditional_put=etag``). State lives under ``<stack_dir>/minio``: the object data
in ``data/``, the console output in ``minio.log``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

from lakehouse.exceptions import ServiceError
from lakehouse.settings import Settings
from lakehouse.supervisors.process import LocalProcess, ProcessService

CACHE_ROOT = Path.home() / ".cache" / "lakehouse"
MODULE = "github.com/minio/minio@latest"
START_TIMEOUT_S = 60.0
_GO_CANDIDATES = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")


class MinioServer(ProcessService):
    """The stack's MinIO on ``127.0.0.1:<minio_port>`` with the lake's bucket."""

    name = "minio"

    def __init__(
        self,
        settings: Settings,
        *,
        cache_root: Path = CACHE_ROOT,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.install_dir = cache_root / "minio"
        self.home = settings.stack_dir / "minio"
        self._process = LocalProcess(
            self.name,
            self.home,
            self._command,
            self.healthy,
            env={
                "MINIO_ROOT_USER": settings.s3_access_key,
                "MINIO_ROOT_PASSWORD": settings.s3_secret(),
                "MINIO_BROWSER": "on",
                "MINIO_UPDATE": "off",  # no calls home for updates
            },
            start_timeout_s=start_timeout_s,
            ports={
                "minio_port": settings.minio_port,
                "minio_console_port": settings.minio_console_port,
            },
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.minio_port}"

    @property
    def binary(self) -> Path:
        return self.install_dir / "bin" / "minio"

    def install(self) -> Path:
        """Build the server from its Go module once (minutes, a few GB of Go cache)."""
        if self.binary.exists():
            return self.binary
        go = shutil.which("go") or next((g for g in _GO_CANDIDATES if Path(g).exists()), None)
        if go is None:
            raise ServiceError("cannot build MinIO: `go` is not on PATH (install Go 1.24+)")
        self.install_dir.mkdir(parents=True, exist_ok=True)
        with (self.install_dir / ".install.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it
            if self.binary.exists():
                return self.binary
            log_path = self.install_dir / "build.log"
            with log_path.open("wb") as log:
                done = subprocess.run(
                    [go, "install", MODULE],
                    env={**os.environ, "GOBIN": str(self.binary.parent)},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
            if done.returncode != 0 or not self.binary.exists():
                raise ServiceError(
                    f"cannot build MinIO with `go install {MODULE}` (exit {done.returncode}); "
                    f"see {log_path}"
                )
        return self.binary

    def start(self) -> bool:
        """Run the server, wait until it is live and create the lake's bucket; False (and
        nothing done) when it already runs."""
        if self.running():
            self._process.wait_healthy()
            return False
        self.install()
        started = self._process.start()
        self._create_bucket()
        return started

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/minio/health/live", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _command(self) -> list[str]:
        s = self.settings
        return [
            str(self.binary),
            "server",
            str(self.home / "data"),
            "--address",
            f"127.0.0.1:{s.minio_port}",
            "--console-address",
            f"127.0.0.1:{s.minio_console_port}",
            "--quiet",
        ]

    def _create_bucket(self) -> None:
        from pyarrow import fs

        s = self.settings
        store = fs.S3FileSystem(
            access_key=s.s3_access_key,
            secret_key=s.s3_secret(),
            endpoint_override=self.url,
            scheme="http",
            region=s.s3_region,
            allow_bucket_creation=True,
        )
        try:
            if store.get_file_info(s.s3_bucket).type == fs.FileType.NotFound:
                store.create_dir(s.s3_bucket)
        except OSError as exc:
            raise ServiceError(f"cannot create bucket {s.s3_bucket!r} in MinIO: {exc}") from None
