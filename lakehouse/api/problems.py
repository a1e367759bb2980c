"""Errors as problem details (RFC 9457): ``application/problem+json`` with ``type``,
``title``, ``status``, ``detail`` and ``instance``; never a stack trace, never a 500 for
what the client sent."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

PROBLEM_JSON = "application/problem+json"
# problem types are URNs, listed with their meaning in docs/api.md
TYPE_BASE = "urn:lakehouse:problem:"


class Problem(Exception):
    """An error the API answers with: ``status`` and a ``detail`` that says what to fix."""

    def __init__(self, status: int, detail: str, *, kind: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.extra = status, detail, extra
        self.kind = kind or HTTPStatus(status).phrase.lower().replace(" ", "-")

    def body(self, instance: str) -> dict[str, Any]:
        return {
            "type": TYPE_BASE + self.kind,
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.extra,
        }
