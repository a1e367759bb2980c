"""Who may reach the stack's Trino, and what each user may read.

* **authentication** (``trino_authentication`` password): HTTPS only, with a key and a
  self-signed certificate made once in the secrets, and Trino's password file of the
  users' bcrypt hashes;
* **access control**: Trino's file-based rules (``rules.json``), from the published
  marts' contract: the pipeline's user does everything, a region's user reads its
  region's rows of the published marts, anyone else the published marts only.

The server itself is :mod:`lakehouse.supervisors.trino`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lakehouse.contracts.marts import PUBLISHED_SCHEMA, region_filter, region_marts
from lakehouse.exceptions import ServiceError
from lakehouse.settings import Settings, write_secret_once

BCRYPT_COST = 10  # Trino refuses bcrypt hashes below cost 8
TLS_DAYS = 3650  # the self-signed certificate's life


def password_config(settings: Settings, etc_dir: Path) -> dict[str, str]:
    """Trino's settings for HTTPS only (the self-signed key and certificate of
    :func:`tls_key_and_certificate`) with the password file authenticator, whose files
    are written into ``etc_dir``: a client has no plain HTTP port to send a user name
    on, or a password over."""
    s = settings
    pem = tls_key_and_certificate(s)
    password_file = etc_dir / "password.db"
    write_private(password_file, password_file_text(s))
    write_properties(
        etc_dir / "password-authenticator.properties",
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


def write_properties(path: Path, values: dict[str, str], *, private: bool = False) -> None:
    """Trino's ``key=value`` properties file (readable by this user only when ``private``)."""
    text = "".join(f"{key}={value}\n" for key, value in values.items())
    text = "# written by lakehouse.supervisors.trino\n" + text
    if private:  # it may hold a secret
        write_private(path, text)
    else:
        path.write_text(text)


def write_private(path: Path, text: str) -> None:
    """``text`` as ``path``, readable by this user only from the start."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
