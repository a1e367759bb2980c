"""The products the search index holds: the catalogue's current versions, one row each.

The index reads the published marts (through the warehouse port), like every consumer:
``dim_product``'s current, not deleted versions, which carry the product's SCD2
``version_number`` (a new one each time the source changes the product's row), and the
stock on hand of ``mart_stock_coverage`` for availability. Whatever the source, the rows
are cast to :data:`SCHEMA`, which :func:`lakehouse.search.index.refresh` takes.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.exceptions import SearchError
from lakehouse.search.embed import MODEL_NAME

if TYPE_CHECKING:
    import pandas as pd

    from lakehouse.settings import Settings

SCHEMA = pa.schema(
    [
        pa.field("product_id", pa.int64(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("product_name", pa.string(), nullable=False),
        pa.field("product_description", pa.string()),
        pa.field("category", pa.string(), nullable=False),
        pa.field("brand", pa.string(), nullable=False),
        pa.field("price", pa.float64()),
        pa.field("is_active", pa.bool_(), nullable=False),
        pa.field("in_stock", pa.bool_(), nullable=False),
    ]
)
PAYLOAD_FIELDS = tuple(SCHEMA.names)

_PRODUCTS_SQL = """
with stock as (
    select product_id, sum(quantity_on_hand) as quantity_on_hand
    from {stock}
    group by product_id
)
select
    p.product_id,
    p.version_number as version,
    p.product_name,
    p.product_description,
    p.category,
    p.brand,
    cast(p.price as double) as price,
    p.is_active,
    coalesce(stock.quantity_on_hand, 0) > 0 as in_stock
from {products} as p
left join stock on p.product_id = stock.product_id
where p.is_current and not p.is_deleted and p.product_id >= 0
order by p.product_id
"""


def published_products(settings: Settings) -> pa.Table:
    """The current version of every product in the published marts, with its availability
    (stock on hand in any warehouse on the last day of data)."""
    from lakehouse.warehouse import connect

    with connect(settings) as marts:
        for mart in ("dim_product", "mart_stock_coverage"):
            marts.columns(mart)  # a missing mart: the port's error, naming `lakehouse build`
        sql = _PRODUCTS_SQL.format(
            products=marts.qualified("dim_product"), stock=marts.qualified("mart_stock_coverage")
        )
        return conform(marts.query(sql))


def conform(products: pa.Table | pd.DataFrame) -> pa.Table:
    """``products`` (an Arrow table or a pandas frame) cast to :data:`SCHEMA`; refuses
    missing columns and repeated product ids with a message naming them."""
    table = products if isinstance(products, pa.Table) else pa.Table.from_pandas(products)
    missing = [name for name in SCHEMA.names if name not in table.column_names]
    if missing:
        raise SearchError(f"the products to index lack the column(s) {', '.join(missing)}")
    table = table.select(SCHEMA.names)
    try:
        table = table.cast(SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise SearchError(f"the products to index do not fit the index's schema: {exc}") from exc
    # prices are cents: decimal(38, 2) read as a double carries binary noise (22.990000000000002)
    table = table.set_column(
        table.schema.get_field_index("price"), SCHEMA.field("price"), pc.round(table["price"], 2)
    )
    ids = table["product_id"]
    if len(ids.unique()) != len(ids):
        raise SearchError("the products to index repeat a product_id (one version each)")
    return table


def document(row: dict[str, Any]) -> str:
    """The text a product is found by, BM25 and embedding alike: its name, category and
    description (which names the brand)."""
    parts = [row["product_name"], row["category"], row.get("product_description") or ""]
    return ". ".join(p.strip().rstrip(".") for p in parts if p and p.strip()) + "."


def content_hash(text: str) -> str:
    """What decides whether a product is embedded again: its text under this model."""
    return hashlib.sha256(f"{MODEL_NAME}\n{text}".encode()).hexdigest()[:32]
