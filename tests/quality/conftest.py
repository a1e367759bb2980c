"""Fixtures shared by the quality tests."""

from __future__ import annotations

from tests.support.webhook import webhook

__all__ = ["webhook"]
