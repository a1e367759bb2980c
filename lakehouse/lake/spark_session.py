"""A Spark session that reads and writes the lake's Delta tables (delta-spark).

pyspark comes from PyPI; the Delta jars come from Maven Central, downloaded once (checked
against Maven's SHA-1) into ``~/.cache/lakehouse/spark-jars/`` and passed as local jars
(``spark.jars``), so a session never resolves packages when it starts. The jar list is
the runtime closure of ``io.delta:delta-spark_4.1_2.13`` minus what pyspark already ships.
For a lake on S3 the hadoop-aws connector and the AWS SDK bundle are added and ``s3://``
is served by S3A.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.exceptions import LakehouseError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.settings import Settings

DELTA_VERSION = "4.4.0"
# Spark's own logging: errors only, to the driver's stderr. The root level stays WARN, the
# level Spark gives a session it deems interactive (else it prints a notice), and the
# appender drops what is below ERROR.
_LOG4J2 = """\
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = error
rootLogger.level = warn
rootLogger.appenderRef.console.ref = console
"""
MAVEN = "https://repo1.maven.org/maven2"
JAR_DIR = Path.home() / ".cache" / "lakehouse" / "spark-jars"


@dataclass(frozen=True)
class Jar:
    group: str
    artifact: str
    version: str

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    @property
    def url(self) -> str:
        group = self.group.replace(".", "/")
        return f"{MAVEN}/{group}/{self.artifact}/{self.version}/{self.file_name}"


# `mvn dependency:list` of delta-spark, without the artifacts pyspark 4.1 has in jars/
DELTA_JARS = (
    Jar("io.delta", "delta-spark_4.1_2.13", DELTA_VERSION),
    Jar("io.delta", "delta-storage", DELTA_VERSION),
    Jar("io.delta", "delta-kernel-api", DELTA_VERSION),
    Jar("io.delta", "delta-kernel-defaults", DELTA_VERSION),
    Jar("io.delta", "delta-kernel-unitycatalog", DELTA_VERSION),
    Jar("io.unitycatalog", "unitycatalog-client", "0.6.0"),
    Jar("io.unitycatalog", "unitycatalog-hadoop", "0.6.0"),
    Jar("com.fasterxml.jackson.datatype", "jackson-datatype-jdk8", "2.21.2"),  # pyspark's jackson
    Jar("javax.annotation", "javax.annotation-api", "1.3.2"),
)
# S3A for pyspark's hadoop-client 3.4.2, with the SDK versions hadoop-aws 3.4.2 declares
S3_JARS = (
    Jar("org.apache.hadoop", "hadoop-aws", "3.4.2"),
    Jar("software.amazon.awssdk", "bundle", "2.29.52"),
    Jar("software.amazon.s3.analyticsaccelerator", "analyticsaccelerator-s3", "1.2.1"),
)


def ensure_jars(jars: tuple[Jar, ...] = DELTA_JARS, directory: Path = JAR_DIR) -> list[Path]:
    """The local paths of ``jars``, downloading the missing ones (once; a download is
    renamed into place only when complete and its checksum matches)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for jar in jars:
        path = directory / jar.file_name
        if not path.exists():
            _download(jar, path)
        paths.append(path)
    return paths


def _download(jar: Jar, path: Path) -> None:
    try:
        with urllib.request.urlopen(jar.url + ".sha1", timeout=60) as response:
            expected = response.read().decode().split()[0].strip()
        digest = hashlib.sha1(usedforsecurity=False)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{jar.file_name}.")
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(jar.url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise LakehouseError(f"cannot download {jar.url} for Spark: {exc}") from None
    if digest.hexdigest() != expected:
        os.unlink(tmp)
        raise LakehouseError(f"{jar.url} does not match its checksum; run the command again")
    os.replace(tmp, path)


def spark_path(uri: str) -> str:
    """The path Spark opens for a lake URI: S3 goes through the S3A connector."""
    return "s3a://" + uri.removeprefix("s3://") if uri.startswith("s3://") else uri


def spark_session(settings: Settings, *, driver_memory: str = "2g") -> SparkSession:
    """The session of ``settings.spark_master`` with Delta Lake, UTC and no UI; scratch
    space and the (unused) warehouse live under the data directory."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise LakehouseError("`--engine spark` needs pyspark: install the project") from None

    on_s3 = settings.lake_root.startswith(("s3://", "s3a://"))
    jars = ensure_jars(DELTA_JARS + (S3_JARS if on_s3 else ()))
    work = settings.root / "spark"
    (work / "local").mkdir(parents=True, exist_ok=True)
    log_config = work / "log4j2.properties"
    log_config.write_text(_LOG4J2)
    java_options = f"-Dderby.system.home={work / 'derby'} -Dlog4j2.configurationFile={log_config}"
    builder = (
        SparkSession.builder.master(settings.spark_master)
        .appName("lakehouse")
        .config("spark.jars", ",".join(str(p) for p in jars))
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.local.dir", str(work / "local"))
        .config("spark.sql.warehouse.dir", str(work / "warehouse"))
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.sql.shuffle.partitions", "8")
        # the lake's tables have short logs: replay them in a few tasks, not 50
        .config("spark.databricks.delta.snapshotPartitions", "2")
        # timestamps as Parquet INT64 micros, as delta-rs writes them
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        # table features every reader of the lake (delta-rs, DuckDB, Trino) handles
        .config("spark.databricks.delta.properties.defaults.enableDeletionVectors", "false")
    )
    if on_s3:
        for key, value in _s3a_options(settings).items():
            builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: no Java, a bad master URL
        raise LakehouseError(f"cannot start Spark on {settings.spark_master}: {exc}") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _s3a_options(settings: Settings) -> dict[str, str]:
    """S3A settings for the lake's object store, from the same settings as delta-rs."""
    endpoint = settings.s3_endpoint_url
    return {
        "spark.hadoop.fs.s3a.endpoint": endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": settings.s3_region,
        "spark.hadoop.fs.s3a.access.key": settings.s3_access_key,
        "spark.hadoop.fs.s3a.secret.key": settings.s3_secret(),
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(endpoint.startswith("https")).lower(),
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        # mutual exclusion inside this JVM only: delta-spark has no LogStore that commits with
        # S3's conditional put (delta-rs does), so the Spark apply runs under the lander
        # lease and must not run from two hosts on one lake (docs/concurrency.md)
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
    }
