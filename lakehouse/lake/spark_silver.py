"""Silver applied by Spark (delta-spark): the same result as ``lakehouse.lake.silver``.

For tables that outgrow one machine. The semantics are silver's, step for step: the bronze
rows above the silver table's ``bronze`` app transaction are reduced to the last change
per key in source order ``(_commit_pos, _event_pos)``, an unchanged-TOAST placeholder
takes the key's previous value, then one Delta MERGE deletes, updates (only with a newer
source position) and inserts, committing the new ``bronze`` position with the data (a
column added in the source is added to silver just before, by ALTER TABLE). The two
engines keep the same bookkeeping, so they can take turns on a table. The MERGE is SQL:
delta-spark's Python package is not needed, only its jars.

The bookkeeping (the applied position, the positions pending, the schema) is read with
delta-rs, from the log and the offsets column; the rows are read, reduced and merged by
Spark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from lakehouse.contracts import Contract
from lakehouse.lake import delta
from lakehouse.lake.silver import (
    APP_ID,
    UNAVAILABLE,
    ApplyResult,
    fold,
    read_pending,
    silver_schema,
)
from lakehouse.lake.spark_session import spark_path

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

# Session settings that make Delta record an app transaction with a MERGE (as the writer
# options ``txnAppId``/``txnVersion`` do with an append).
_TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
_TXN_VERSION = "spark.databricks.delta.write.txnVersion"


def apply(
    spark: SparkSession,
    contract: Contract,
    bronze_uri: str,
    silver_uri: str,
    storage_options: dict[str, str],
) -> ApplyResult:
    """Apply the bronze changes not yet in silver, as ``silver.apply`` does."""
    from pyspark.sql import functions as F

    fold(contract, silver_uri, storage_options)  # the tail a delta-rs apply left: merged first
    found = read_pending(contract, bronze_uri, silver_uri, storage_options, ["_offset"])
    if isinstance(found, ApplyResult):
        return found
    bronze, silver, applied, pending = found.bronze, found.silver, found.applied, found.changes
    version = pc.max(pending.column("_offset")).as_py()
    log = (
        spark.read.format("delta")
        .option("versionAsOf", bronze.version())  # the snapshot delta-rs read
        .load(spark_path(bronze_uri))
    )
    names = silver_schema(contract, _names(log.columns)).names
    changes = log.where(F.col("_offset") > applied).select(*names, "_op")
    latest = latest_per_key(changes, contract.primary_key)

    if silver is None or _count(silver) == 0:
        rows = latest.where(F.col("_op") != "d").select(*names)
        (
            rows.write.format("delta")
            .mode("append")
            .option("mergeSchema", "true")  # columns added in the source
            .option("txnAppId", APP_ID)
            .option("txnVersion", version)
            .save(spark_path(silver_uri))
        )
        written = _count(delta.open_table(silver_uri, storage_options))
        return ApplyResult(contract.table, pending.num_rows, written, 0, written)

    existing = [f.name for f in silver.schema().fields]
    _add_columns(spark, silver_uri, latest, [c for c in names if c not in existing])
    latest.createOrReplaceTempView("_lakehouse_changes")
    spark.conf.set(_TXN_APP_ID, APP_ID)
    spark.conf.set(_TXN_VERSION, str(version))
    try:
        metrics = spark.sql(_merge_sql(contract, silver_uri, latest, names, set(existing))).first()
    finally:
        spark.conf.unset(_TXN_APP_ID)
        spark.conf.unset(_TXN_VERSION)
        spark.catalog.dropTempView("_lakehouse_changes")
    assert metrics is not None
    return ApplyResult(
        contract.table,
        pending.num_rows,
        metrics["num_inserted_rows"] + metrics["num_updated_rows"],
        metrics["num_deleted_rows"],
        _count(delta.open_table(silver_uri, storage_options)),
    )


def latest_per_key(changes: DataFrame, primary_key: tuple[str, ...]) -> DataFrame:
    """The last change of every key in source order, an unchanged-TOAST placeholder
    replaced by the key's last earlier value that is not one (the key's first change
    keeps it: the merge resolves it against the silver row), as ``silver`` does."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    order = Window.partitionBy(*primary_key).orderBy("_commit_pos", "_event_pos", "_offset")
    upto = order.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    first = F.row_number().over(order) == 1
    columns: list[Column | str] = []
    for field in changes.schema.fields:
        name = field.name
        if isinstance(field.dataType, StringType) and not name.startswith("_"):
            real = ~F.coalesce(F.col(name) == UNAVAILABLE, F.lit(False)) | first
            # a struct, so that a real null counts as a value
            kept = F.when(real, F.struct(F.col(name).alias("v")))
            columns.append(F.last(kept, ignorenulls=True).over(upto)["v"].alias(name))
        else:
            columns.append(name)
    is_last = F.lead(F.lit(1)).over(order).isNull()
    return changes.select(*columns, is_last.alias("_is_last")).where("_is_last").drop("_is_last")


def _merge_sql(
    contract: Contract, silver_uri: str, latest: DataFrame, names: list[str], existing: set[str]
) -> str:
    """Deletes delete, other changes upsert, only over an older silver row; a placeholder
    keeps the silver value of a column silver has (an added one has no older value)."""
    from pyspark.sql.types import StringType

    strings = {f.name for f in latest.schema.fields if isinstance(f.dataType, StringType)}

    def value(c: str) -> str:
        if c in strings and not c.startswith("_") and c in existing:
            return f"CASE WHEN s.{_q(c)} = '{UNAVAILABLE}' THEN t.{_q(c)} ELSE s.{_q(c)} END"
        return f"s.{_q(c)}"

    on = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in contract.primary_key)
    newer = (
        "(s._commit_pos > t._commit_pos OR "
        "(s._commit_pos = t._commit_pos AND s._event_pos > t._event_pos))"
    )
    updates = ", ".join(f"{_q(c)} = {value(c)}" for c in names)
    inserts = ", ".join(_q(c) for c in names)
    values = ", ".join(f"s.{_q(c)}" for c in names)
    return f"""
        MERGE INTO delta.`{spark_path(silver_uri)}` AS t
        USING _lakehouse_changes AS s
        ON {on}
        WHEN MATCHED AND s._op = 'd' AND {newer} THEN DELETE
        WHEN MATCHED AND s._op <> 'd' AND {newer} THEN UPDATE SET {updates}
        WHEN NOT MATCHED AND s._op <> 'd' THEN INSERT ({inserts}) VALUES ({values})
    """


def _add_columns(spark: SparkSession, silver_uri: str, latest: DataFrame, added: list[str]) -> None:
    """Columns added in the source, added to silver before the merge fills them."""
    if not added:
        return
    types = {f.name: f.dataType.simpleString() for f in latest.schema.fields}
    columns = ", ".join(f"{_q(c)} {types[c]}" for c in added)
    spark.sql(f"ALTER TABLE delta.`{spark_path(silver_uri)}` ADD COLUMNS ({columns})")


def _q(name: str) -> str:
    """A column name quoted for Spark SQL (an added column's name comes from the source)."""
    return "`" + name.replace("`", "``") + "`"


def _names(columns: list[str]) -> pa.Schema:
    return pa.schema([pa.field(c, pa.null()) for c in columns])


def _count(table: DeltaTable | None) -> int:
    """Rows in a Delta table, from its log's file statistics (no Spark job)."""
    if table is None:
        return 0
    actions = pa.table(table.get_add_actions(flatten=True))
    return int(pc.sum(actions.column("num_records")).as_py() or 0)
