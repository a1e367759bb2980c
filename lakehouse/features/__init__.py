"""The feature store: the feature tables dbt builds (``models/features``) and the gate
publishes, exported for Feast and served by it (``feature_repo/``).

* :func:`export`: the published feature tables as Parquet under ``<data_dir>/features``;
* :func:`apply`, :func:`materialize`: Feast's apply and materialize-incremental on the
  repository, with the settings;
* :func:`historical_features`: the only way a training set is built (point in time).

A consumer of the published marts: it reads them through the warehouse port only.
"""

from __future__ import annotations

from lakehouse.features.export import export, parquet_path
from lakehouse.features.store import (
    FEATURE_REPO_DIR,
    apply,
    feature_store,
    historical_features,
    materialize,
    online_features,
)

__all__ = [
    "FEATURE_REPO_DIR",
    "apply",
    "export",
    "feature_store",
    "historical_features",
    "materialize",
    "online_features",
    "parquet_path",
]
