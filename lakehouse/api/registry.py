"""Models served from the registry by alias, swapped in without a restart.

A :class:`Watcher` per registered model runs as one of the serving state's refreshers
(a worker thread, every ``api_refresh_seconds``): it resolves ``champion``, the shadow
alias and the canary alias, and when an alias points at a version it does not hold, or
a new publication changed the inputs, it loads that version and precomputes what a
request needs (its ``prepare``), then swaps the whole :class:`Snapshot` in with one
assignment. A request reads the snapshot once: it never waits for the registry or a
file, and sees one consistent set of versions; the old snapshot serves until the new
one is ready.

Routing (:meth:`Snapshot.route`): a canary share sends a fixed fraction of the keys
(a hash of the client or product id, so one key always gets the same model) to the
canary alias's version; the shadow alias's version is looked up beside the served one
and compared (logged and measured by the caller), never returned.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

from prometheus_client import Counter, Histogram

from lakehouse.settings import Settings
from lakehouse.warehouse import connect
from ml import tracking
from ml.tracking import CHAMPION

log = logging.getLogger("lakehouse.api.models")

T = TypeVar("T")  # what a loaded version serves from (precomputed answers)
In = TypeVar("In")  # what a publication gives every version (inputs read once)

ANSWERED = Counter(
    "lakehouse_api_model_answers_total",
    "Requests answered by a model version, by the alias that routed them",
    ["model", "alias", "version"],
)
SHADOWED = Counter(
    "lakehouse_api_shadow_comparisons_total",
    "Requests also scored by the shadow alias's version (logged, never returned)",
    ["model", "served_version", "shadow_version"],
)
SHADOW_AGREEMENT = Histogram(
    "lakehouse_api_shadow_agreement",
    "How far the shadow's answer agrees with the served one: propositions, the share of "
    "the served top-N the shadow also proposes; forecasts, 1 - the relative absolute "
    "difference of the weeks' total",
    ["model"],
    buckets=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
_shadow_log = logging.getLogger("lakehouse.api.shadow")


@dataclass(frozen=True)
class Served(Generic[T]):
    """One loaded version of a registered model and what it serves."""

    name: str
    version: str
    run_id: str
    loaded_at: datetime
    publication: str
    metrics: dict[str, float]  # its training run's backtest metrics (those asked for)
    answers: T


@dataclass(frozen=True)
class Snapshot(Generic[T]):
    """Alias -> loaded version, as one watcher refresh left it."""

    name: str
    by_alias: dict[str, Served[T]] = field(default_factory=dict)
    shadow_alias: str | None = None
    canary_alias: str | None = None
    canary_share: float = 0.0

    def route(self, key: int) -> tuple[str, Served[T]] | None:
        """The alias and version that answer ``key``: the canary's for a share of keys
        (stable per key), else the champion's; None when no champion is loaded."""
        canary = self.by_alias.get(self.canary_alias) if self.canary_alias else None
        if canary is not None and bucket(self.name, key) < self.canary_share:
            return self.canary_alias or "", canary
        champion = self.by_alias.get(CHAMPION)
        return None if champion is None else (CHAMPION, champion)

    def shadow(self) -> Served[T] | None:
        return self.by_alias.get(self.shadow_alias) if self.shadow_alias else None


def bucket(name: str, key: int) -> float:
    """A stable number in [0, 1) per model and key: the same on every process and run."""
    digest = hashlib.blake2b(f"{name}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


def record(
    model: str,
    alias: str,
    served: Served[T],
    shadow: Served[T] | None,
    key: int,
    agreement: float | None,
) -> None:
    """The answer counted by version; the shadow's comparison logged and measured."""
    ANSWERED.labels(model, alias, served.version).inc()
    if shadow is None or agreement is None:
        return
    SHADOWED.labels(model, served.version, shadow.version).inc()
    SHADOW_AGREEMENT.labels(model).observe(agreement)
    _shadow_log.info(
        "shadow comparison",
        extra={
            "model": model,
            "key": key,
            "served_alias": alias,
            "served_version": served.version,
            "shadow_version": shadow.version,
            "agreement": round(agreement, 6),
        },
    )


def product_names(settings: Settings) -> dict[int, tuple[str, str]]:
    """Product id -> its current name and category, for the answers of either model."""
    from lakehouse.search.catalog import published_products

    rows = published_products(settings).select(["product_id", "product_name", "category"])
    return {
        int(r["product_id"]): (str(r["product_name"]), str(r["category"])) for r in rows.to_pylist()
    }


def publication_id(settings: Settings) -> str | None:
    """The run id of what the published area serves now (None: nothing published)."""
    with connect(settings) as marts:
        found = marts.publication()
    return None if found is None else found.run_id


class Watcher(Generic[In, T]):
    """Keeps the versions of registered model ``name`` that its aliases point at loaded.

    ``read(settings)`` reads a publication's inputs once (shared by every version);
    ``prepare(loaded, inputs)`` precomputes a version's answers from them."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        read: Callable[[Settings], In],
        prepare: Callable[[tracking.Loaded, In], T],
        metrics: tuple[str, ...] = (),
    ) -> None:
        self.settings, self.name = settings, name
        self._read, self._prepare, self._metrics = read, prepare, metrics
        self._inputs: tuple[str, In] | None = None
        self._lock = threading.Lock()  # one refresh at a time (startup, the timer, tests)
        self.snapshot: Snapshot[T] = Snapshot(name)
        self.problem: str | None = None  # why nothing is served, when nothing is

    def aliases(self) -> list[str]:
        s = self.settings
        wanted = [CHAMPION]
        if s.api_shadow_alias:
            wanted.append(s.api_shadow_alias)
        if s.api_canary_share > 0:
            wanted.append(s.api_canary_alias)
        return list(dict.fromkeys(wanted))

    def refresh(self) -> None:
        """Resolve the aliases; load what changed; swap the snapshot in at once."""
        with self._lock:
            try:
                self._refresh()
            except Exception as exc:
                if CHAMPION not in self.snapshot.by_alias:
                    self.problem = f"{self.name} could not be loaded ({exc}): see the API's log"
                raise

    def _refresh(self) -> None:
        publication = publication_id(self.settings)
        if publication is None:
            self.problem = "nothing is published yet: run `lakehouse build`"
            return
        known = tracking.aliases(self.settings, self.name)
        resolved = {alias: known[alias] for alias in self.aliases() if alias in known}
        if CHAMPION not in resolved:
            self.problem = (
                f"registered model {self.name!r} has no {CHAMPION!r}: train one that passes "
                "the promotion gate (`lakehouse ml train`)"
            )
        held = {s.version: s for s in self.snapshot.by_alias.values()}
        by_alias: dict[str, Served[T]] = {}
        for alias, version in resolved.items():
            current = held.get(version)
            if current is None or current.publication != publication:
                try:
                    current = self._load(version, publication)
                except Exception:
                    if alias == CHAMPION:
                        raise  # the state logs it and keeps the last good snapshot
                    log.exception("%s version %s (%s) not loaded", self.name, version, alias)
                    continue
                held[version] = current
            by_alias[alias] = current
        before = {a: s.version for a, s in self.snapshot.by_alias.items()}
        self.snapshot = Snapshot(
            self.name,
            by_alias,
            shadow_alias=self.settings.api_shadow_alias,
            canary_alias=self.settings.api_canary_alias if self.settings.api_canary_share else None,
            canary_share=self.settings.api_canary_share,
        )
        if CHAMPION in resolved:
            self.problem = None
        after = {a: s.version for a, s in by_alias.items()}
        if after != before:
            log.info("%s now serves %s (was %s)", self.name, after, before)

    def _load(self, version: str, publication: str) -> Served[T]:
        if self._inputs is None or self._inputs[0] != publication:
            self._inputs = (publication, self._read(self.settings))
        loaded = tracking.load_version(self.settings, self.name, version)
        answers = self._prepare(loaded, self._inputs[1])
        recorded = tracking.run_metrics(self.settings, loaded.run_id)
        metrics = {m: recorded[m] for m in self._metrics if m in recorded}
        return Served(
            self.name,
            loaded.version,
            loaded.run_id,
            datetime.now(UTC),
            publication,
            metrics,
            answers,
        )
