"""Install a system package with apt-get, as root on Debian/Ubuntu (PostgreSQL, Redis)."""

from __future__ import annotations

import os
import subprocess


def apt_install(package: str) -> str | None:
    """Install ``package`` (updating the index once if the first try fails); the last
    line apt-get printed when it still fails, else None."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    if subprocess.run(install, capture_output=True, env=env).returncode == 0:
        return None
    subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
    out = subprocess.run(install, capture_output=True, text=True, env=env)
    if out.returncode == 0:
        return None
    lines = (out.stderr or out.stdout).strip().splitlines() or ["no output"]
    return lines[-1].strip()
