"""A generated catalogue for the search tests: the demo shop's final products (its ground
truth) in the index's columns, with their generator attributes."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.generate import GenerateParams, generate
from lakehouse.settings import Settings, load_settings
from tests.search.labels import Product, ground_truth_products

# the benchmark's catalogue (bench/search.py): the same 308 products
SHOP = GenerateParams(seed=42, clients=100, products=300, days=60)


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, list[Product]]:
    settings = load_settings(data_dir=tmp_path_factory.mktemp("shop"), pii_key="f" * 32)
    generate(settings, SHOP)
    return ground_truth_products(settings.ground_truth_path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A data directory of its own: a fresh index."""
    return load_settings(data_dir=tmp_path / "data", pii_key="f" * 32)
