"""What the propositions endpoint serves from memory: each client's list from one
version of ``client_propositions``, cut by today's rules, computed when the version (or a
new publication) is loaded.

The inputs are those of the batch scoring job (:func:`ml.propositions.jobs.score_job`):
the current clients' segment and region from Feast's online store (read once per
publication for every client, not per request: a Feast online read costs a
``FeatureStore`` on the repository, milliseconds to tens of them, where the p95 budget
is 50 ms), the products that may be proposed now (active, in stock) and the per-category
cap. A request then looks its client up in a dict and slices the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from lakehouse.api.registry import product_names
from lakehouse.settings import Settings
from lakehouse.warehouse import connect
from ml import tracking
from ml.propositions import data, recommenders
from ml.propositions.train import SERVED_CANDIDATES

_CLIENTS_SQL = """
select client_id, segment, region
from {clients}
where is_current and not is_deleted and client_id >= 0
"""


@dataclass(frozen=True)
class Inputs:
    """A publication's inputs to every version: read once, shared."""

    clients: pd.DataFrame  # client_id, segment, region: the model's input (online store)
    # client_id -> segment, region of dim_client's current version: what the answer shows
    # and region scoping filters by, as row-level security does on the marts (the online
    # store does not know a client without features: the model serves it as `unknown`)
    scope: dict[int, tuple[str, str]]
    candidates: pd.DataFrame  # product_id, category, in_stock: may be proposed today
    names: dict[int, str]  # product_id -> current name
    as_of: date  # the day the lists are for: the day after the last purchase
    per_category: int


@dataclass(frozen=True)
class Item:
    rank: int
    product_id: int
    product_name: str
    category: str
    score: float
    reason: str


@dataclass(frozen=True)
class ClientList:
    segment: str
    region: str
    items: tuple[Item, ...]  # best first, at most SERVED_CANDIDATES, rules applied


@dataclass(frozen=True)
class Answers:
    by_client: dict[int, ClientList]
    as_of: date


def read(settings: Settings) -> Inputs:
    """The clients, today's candidates and names of the published marts and the online
    store, as the scoring job reads them."""
    purchases = data.load(settings)
    clients = data.client_features(settings, purchases.clients, None)
    with connect(settings) as marts:
        current = marts.query(_CLIENTS_SQL.format(clients=marts.qualified("dim_client")))
    return Inputs(
        clients=clients[["client_id", "segment", "region"]],
        scope={
            int(r["client_id"]): (str(r["segment"]), str(r["region"])) for r in current.to_pylist()
        },
        candidates=purchases.active_at(None),
        names={pid: name for pid, (name, _) in product_names(settings).items()},
        as_of=purchases.last_date + timedelta(days=1),
        per_category=settings.propositions_per_category,
    )


def prepare(loaded: tracking.Loaded, inputs: Inputs) -> Answers:
    """Every client's list from ``loaded``: its candidates cut by today's rules, as long
    as the rules allow (a request's ``top`` takes the first of them)."""
    served = loaded.predict(inputs.clients)
    lists = recommenders.cut_by_rules(
        served,
        inputs.clients,
        inputs.candidates,
        SERVED_CANDIDATES,
        inputs.per_category,
        inputs.as_of,
    )
    category = inputs.candidates.set_index("product_id")["category"].astype(str).to_dict()
    items: dict[int, list[Item]] = {}
    for row in lists.itertuples(index=False):
        pid = int(row.product_id)
        items.setdefault(int(row.client_id), []).append(
            Item(
                int(row.rank),
                pid,
                inputs.names.get(pid, ""),
                category.get(pid, ""),
                float(row.score),
                str(row.reason),
            )
        )
    by_client = {
        client_id: ClientList(segment, region, tuple(items.get(client_id, ())))
        for client_id, (segment, region) in inputs.scope.items()
    }
    return Answers(by_client, inputs.as_of)


def overlap(served: tuple[Item, ...], shadow: tuple[Item, ...]) -> float:
    """The share of the served list the shadow's list of the same length also holds."""
    if not served:
        return 1.0
    theirs = {i.product_id for i in shadow[: len(served)]}
    return sum(i.product_id in theirs for i in served) / len(served)
