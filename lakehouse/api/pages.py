"""The API's two HTML pages (the live view, the report viewer): files beside this module,
served with a Content-Security-Policy that allows their own inline script and style only,
by hash."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files


def page(name: str) -> str:
    return files("lakehouse.api").joinpath(name).read_text()


def inline_hash(html: str, kind: str) -> str:
    """The CSP source of the page's one inline ``<script>`` or ``<style>``."""
    match = re.search(rf"<{kind}>(.*?)</{kind}>", html, re.DOTALL)
    assert match is not None, f"the page has no <{kind}>"
    digest = base64.b64encode(hashlib.sha256(match[1].encode()).digest()).decode()
    return f"'sha256-{digest}'"


def headers(html: str, allow: str) -> dict[str, str]:
    """The page's response headers: its inline script and style, plus ``allow`` (the
    other CSP directives it needs); no framing of the page, no referrer."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src {inline_hash(html, 'script')}; "
            f"style-src {inline_hash(html, 'style')}; {allow}; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
