"""The labelled query set (``queries.yaml``) applied to a generated catalogue.

A product's attributes come from the generator's vocabulary (lakehouse/generate/catalog.py):
its name is ``<brand> <adjective> <noun>``, its description names features of its
category. Each query's rules grade the products by those attributes, so the labels follow
whatever catalogue a seed generates, independently of the search code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from lakehouse.generate import catalog as vocabulary

QUERIES = Path(__file__).with_name("queries.yaml")
ATTRIBUTES = ("noun", "category", "brand", "adjective", "feature")


@dataclass(frozen=True)
class Product:
    product_id: int
    category: str
    brand: str
    adjective: str
    noun: str
    features: frozenset[str]


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    rules: tuple[dict[str, Any], ...]

    def grade(self, product: Product) -> int:
        return max((r["grade"] for r in self.rules if _meets(product, r)), default=0)

    def grades(self, products: list[Product]) -> dict[int, int]:
        """Product id -> grade, for the products graded above 0."""
        found = {p.product_id: self.grade(p) for p in products}
        return {pid: g for pid, g in found.items() if g > 0}


def _values(rule: dict[str, Any], key: str) -> list[str]:
    value = rule[key]
    return list(value) if isinstance(value, list) else [value]


def _meets(product: Product, rule: dict[str, Any]) -> bool:
    for key in ATTRIBUTES:
        if key not in rule:
            continue
        wanted = _values(rule, key)
        if key == "feature":
            if not product.features.intersection(wanted):
                return False
        elif getattr(product, key) not in wanted:
            return False
    return True


def load_queries(path: Path = QUERIES) -> list[LabelledQuery]:
    """The queries, their rules checked against the generator's vocabulary (a typo in a
    rule would silently grade nothing)."""
    known = {
        "noun": {n for nouns in vocabulary.NOUNS.values() for n in nouns},
        "category": set(vocabulary.CATEGORIES),
        "brand": {b for brands in vocabulary.BRANDS.values() for b in brands},
        "adjective": set(vocabulary.ADJECTIVES),
        "feature": {f for features in vocabulary.FEATURES.values() for f in features},
    }
    queries = []
    for entry in yaml.safe_load(path.read_text()):
        for rule in entry["rules"]:
            unknown = set(rule) - {"grade", *ATTRIBUTES}
            assert not unknown, f"{entry['query']!r}: unknown rule keys {unknown}"
            assert rule["grade"] in (1, 2, 3), entry["query"]
            for key in set(rule) & set(ATTRIBUTES):
                bad = set(_values(rule, key)) - known[key]
                assert not bad, f"{entry['query']!r}: no {key} {bad} in the catalogue"
        queries.append(LabelledQuery(entry["query"], tuple(entry["rules"])))
    return queries


def attributes(row: dict[str, Any]) -> Product:
    """A product's generator attributes, read back from its name and description."""
    category, brand = row["category"], row["brand"]
    adjective, noun = row["name"].removeprefix(f"{brand} ").split(" ", 1)
    assert noun in vocabulary.NOUNS[category], row["name"]
    described = {f for f in vocabulary.FEATURES[category] if f in row["description"]}
    return Product(int(row["product_id"]), category, brand, adjective, noun, frozenset(described))


def ground_truth_products(truth: Path) -> tuple[pa.Table, list[Product]]:
    """A generated shop's final catalogue in the index's columns (its ``version``: how many
    versions the change stream carried; ``in_stock``: stock on hand in any warehouse), and
    the products' attributes."""
    product = pq.read_table(truth / "product.parquet")
    versions = pq.read_table(truth / "versions.parquet").filter(
        pc.equal(pc.field("table"), "product")
    )
    stock = (
        pq.read_table(truth / "stock.parquet")
        .group_by("product_id")
        .aggregate([("quantity_on_hand", "sum")])
    )
    version_of = dict(
        zip(versions["id"].to_pylist(), versions["versions"].to_pylist(), strict=True)
    )
    on_hand = dict(
        zip(stock["product_id"].to_pylist(), stock["quantity_on_hand_sum"].to_pylist(), strict=True)
    )
    ids = product["product_id"].to_pylist()
    table = pa.table(
        {
            "product_id": product["product_id"],
            "version": pa.array([version_of.get(i, 1) for i in ids], pa.int64()),
            "product_name": product["name"],
            "product_description": product["description"],
            "category": product["category"],
            "brand": product["brand"],
            "price": product["price"].cast(pa.float64()),
            "is_active": product["is_active"],
            "in_stock": pa.array([(on_hand.get(i) or 0) > 0 for i in ids]),
        }
    )
    return table, [attributes(row) for row in product.to_pylist()]
