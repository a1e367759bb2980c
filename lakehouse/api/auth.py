"""Who is asking: an API key (``X-API-Key``) or the same key as a bearer token
(``Authorization: Bearer``) names a scope, the whole business or one region.

The keys come from the settings or are generated once under ``<data_dir>/secrets``; there
is no default key. A region's key sees only that region's clients, like Superset's
row-level security for that region's role.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from lakehouse.settings import Settings

WHOLE_BUSINESS = "all"


@dataclass(frozen=True)
class Principal:
    """The scope a key was given: ``region`` None sees every region."""

    region: str | None

    @property
    def scope(self) -> str:
        return self.region or WHOLE_BUSINESS

    def sees(self, region: str | None) -> bool:
        """Whether a row of ``region`` is visible to this scope."""
        return self.region is None or region == self.region


class Keys:
    """The keys of every scope, read once from the settings (and their secrets files)."""

    def __init__(self, settings: Settings) -> None:
        self._by_scope: dict[str | None, bytes] = {None: settings.api_secret().encode()}
        for region, key in settings.api_region_secrets().items():
            self._by_scope[region] = key.encode()

    def principal(self, presented: object) -> Principal | None:
        """The scope of ``presented``, or None when it is no key of ours. Every key is
        compared in constant time, so the time taken says nothing about a near miss."""
        if not presented or not isinstance(presented, str):  # a socket's message: any JSON
            return None
        given = presented.strip().encode()
        found: Principal | None = None
        for region, key in self._by_scope.items():
            if hmac.compare_digest(given, key):
                found = Principal(region)
        return found

    @property
    def regions(self) -> list[str]:
        return sorted(r for r in self._by_scope if r is not None)


def presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    """The key a request carries: ``X-API-Key``, else a bearer token."""
    if x_api_key:
        return x_api_key
    if authorization:
        kind, _, token = authorization.partition(" ")
        if kind.lower() == "bearer" and token.strip():
            return token.strip()
    return None
