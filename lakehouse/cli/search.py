"""`lakehouse search "<query>"` and the `lakehouse search-index` commands: product search
over the published catalogue (``lakehouse.search``). The package loads inside the commands
(Qdrant's client and the model's weights take a second)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from lakehouse.cli.console import console, progress_bar
from lakehouse.cli.options import AsJson, DataDir, settings_for

app = typer.Typer(
    help="The product search index: build or refresh it from the published catalogue.",
    no_args_is_help=True,
)

Top = Annotated[int, typer.Option("--top", min=1, max=1000, help="how many products")]
Category = Annotated[
    list[str] | None, typer.Option("--category", help="only this category (repeatable)")
]
Brand = Annotated[list[str] | None, typer.Option("--brand", help="only this brand (repeatable)")]
MinPrice = Annotated[float | None, typer.Option("--min-price", help="lowest price")]
MaxPrice = Annotated[float | None, typer.Option("--max-price", help="highest price")]
InStock = Annotated[bool, typer.Option("--in-stock", help="only products in stock")]


def search(
    query: Annotated[str, typer.Argument(help="what you are looking for, in your own words")],
    top: Top = 10,
    category: Category = None,
    brand: Brand = None,
    min_price: MinPrice = None,
    max_price: MaxPrice = None,
    in_stock: InStock = False,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Find products by what they are or are for: BM25 and sentence embeddings, fused."""
    from lakehouse.search.retrieve import Filters, searcher

    filters = Filters(
        categories=tuple(category or ()),
        brands=tuple(brand or ()),
        min_price=min_price,
        max_price=max_price,
        in_stock=in_stock,
    )
    settings = settings_for(data_dir, existing=True)
    with searcher(settings) as index:
        hits = index.search(query, top=top, filters=filters)
    if as_json:
        rows = [
            {
                "product_id": h.product_id,
                "score": round(h.score, 6),
                "product_name": h.product_name,
                "category": h.category,
                "brand": h.brand,
                "price": h.price,
                "in_stock": h.in_stock,
            }
            for h in hits
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table("#", "product", "name", "category", "brand", "price", "stock", "score")
    table.title = f"{query!r}: {len(hits)} product{'s' if len(hits) != 1 else ''}"
    for rank, h in enumerate(hits, start=1):
        price = "" if h.price is None else f"{h.price:,.2f}"
        stock = "[green]in stock[/]" if h.in_stock else "[red]out[/]"
        table.add_row(
            str(rank),
            str(h.product_id),
            h.product_name,
            h.category,
            h.brand,
            price,
            stock,
            f"{h.score:.3f}",
        )
    console.print(table)


@app.command("refresh")
def search_index_refresh(data_dir: DataDir = None) -> None:
    """Make the index hold the published catalogue's current products: embed the new and
    changed ones, rewrite changed prices and stock, drop the deleted ones. Every
    publication (`lakehouse build`, the pipeline's flows) does it too."""
    from lakehouse.search.index import refresh_published

    settings = settings_for(data_dir, existing=True)
    with progress_bar() as progress:
        report = refresh_published(settings, progress)
    console.print(report.summary())
