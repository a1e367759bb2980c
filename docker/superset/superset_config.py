"""Superset's configuration in the compose deployment: every secret from the environment.

Metadata lives in SQLite on the `superset-data` volume (one web node); the cache and the
results backend in Redis. The Trino database and the dashboards are imported from the
repository's `superset/` bundle, with the credentials given at import time.
"""

import os
import sys
from urllib.parse import quote

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = "sqlite:////app/superset_home/superset.db"

_REDIS = f"redis://:{quote(os.environ['REDIS_PASSWORD'], safe='')}@redis:6379"


def _cache(db: int, prefix: str) -> dict[str, object]:
    return {
        "CACHE_TYPE": "RedisCache",
        "CACHE_DEFAULT_TIMEOUT": 300,
        "CACHE_KEY_PREFIX": prefix,
        "CACHE_REDIS_URL": f"{_REDIS}/{db}",
    }


# Feast's online store uses Redis database 0; Superset keeps to 1-3
CACHE_CONFIG = _cache(1, "superset_")
DATA_CACHE_CONFIG = _cache(2, "superset_data_")
FILTER_STATE_CACHE_CONFIG = _cache(3, "superset_filter_")
EXPLORE_FORM_DATA_CACHE_CONFIG = _cache(3, "superset_explore_")
RATELIMIT_STORAGE_URI = f"{_REDIS}/3"

FEATURE_FLAGS = {
    # row-level security (the region roles) also in SQL Lab, as on `lakehouse superset up`
    "RLS_IN_SQLLAB": True,
}

# SQL a user writes needs the whole database, or one that runs it as the user (the Trino
# database impersonates, and Trino's rules filter): ../../superset/lakehouse_security.py
sys.path.insert(0, "/app/lakehouse_superset")
from lakehouse_security import LakehouseSecurityManager  # noqa: E402

CUSTOM_SECURITY_MANAGER = LakehouseSecurityManager
