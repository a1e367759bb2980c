"""Alerts: a JSON report POSTed to ``alert_webhook_url`` when one is set (Slack-, Teams- or
any HTTP-receiver style). Sending never fails the pipeline: an unreachable webhook is
logged, and the log always carries the alert."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

from lakehouse.settings import Settings

log = logging.getLogger(__name__)


def send_alert(settings: Settings, payload: dict[str, object], timeout_s: float = 5.0) -> bool:
    """Log the alert, and POST ``payload`` to the webhook; True when it answered 2xx."""
    log.warning("alert: %s", payload.get("summary") or payload.get("event"))
    return post_json(settings.alert_webhook_url, payload, timeout_s)


def post_json(url: str | None, payload: dict[str, object], timeout_s: float = 5.0) -> bool:
    """POST ``payload`` as JSON; True when it answered 2xx, False (and a log line) when
    there is no URL or the receiver cannot be reached."""
    if not url:
        return False
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "lakehouse"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("the alert webhook %s did not take the alert: %s", url, exc)
        return False
