"""A worker process with a SparkSession that reaches S3 through S3A, for the tests of the Glue
job's commit on S3 (`test_glue_commit_on_s3.py`).

Why a separate process: Spark reads ``spark.jars`` once, when its JVM starts, and the test
session's shared SparkSession (root conftest) has no S3 connector. So the S3 tests keep one
spawned worker (``concurrent.futures`` with one process) whose JVM starts with the hadoop-aws
jars; the functions below run there, on the unmodified Glue script, and return plain data.
"""
from __future__ import annotations

from typing import Any

from sales_assets_tests.glue_scripts.conftest import load_script

_SESSION: dict[str, Any] = {}


def start(jars: str, endpoint: str, access_key: str, secret_key: str) -> None:
    """The worker's SparkSession: the root conftest's settings, plus S3A on moto's endpoint, with
    ``s3://`` mapped to S3AFileSystem as EMRFS maps it on Glue (the job's lake root unchanged)."""
    from pyspark.sql import SparkSession

    s3a = {
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.access.key": access_key,
        "fs.s3a.secret.key": secret_key,
        "fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        # Spark's task outputs are renamed once, not twice (a rename is a copy on S3); Glue's
        # own committer renames nothing. What the job's commit then finds staged is the same.
        "mapreduce.fileoutputcommitter.algorithm.version": "2",
        # Few, short retries: a broken endpoint should fail the test, not stall it.
        "fs.s3a.attempts.maximum": "2",
        "fs.s3a.retry.limit": "2",
    }
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("sales_assets_tests_s3a")
        .config("spark.jars", jars)
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "1g")
    )
    for name, value in s3a.items():
        builder = builder.config(f"spark.hadoop.{name}", value)
    _SESSION["spark"] = builder.getOrCreate()
    _SESSION["spark"].sparkContext.setLogLevel("ERROR")


def stop() -> None:
    spark = _SESSION.pop("spark", None)
    if spark is not None:
        spark.stop()


def _spark():
    return _SESSION["spark"]


def curate(lake_root: str, days: list[str], lease: tuple[str, str] | None = None) -> dict:
    """``run`` of the Glue script on ``days``, given ``lease`` = (key prefix, run id) as the job's
    ``--lease_key_prefix``/``--lease_run_id``; ``{"summary"}``, or ``{"error": (class, message)}``
    when the job refused a day because its lease was lost (LeaseLostError)."""
    script = load_script()
    lease = script.DayLease(*lease) if lease else None
    try:
        return {"summary": script.run(_spark(), lake_root, days, log=lambda message: None, lease=lease)}
    except script.LeaseLostError as error:
        return {"error": (type(error).__name__, str(error))}


def commit_table_day(lake_root: str, table: str, day: str, source_files: list[str], run_id: str,
                     kill_after: int | None = None, drop_order_id: str | None = None) -> dict:
    """``write_day`` of the Glue script for one table-day: the rows of ``source_files`` (a curated
    day's parquet, less the order ``drop_order_id``) staged by Spark and committed under
    ``run_id``, stopped like a kill right after step ``kill_after`` of the commit.

    ``{"killed": bool, "steps": [...]}``: the steps of the commit done before the stop (all of
    them when it finished first, ``killed`` False).
    """
    from pyspark.sql import functions as F

    script, steps = load_script(), []

    def stop_after(name: str) -> None:
        steps.append(name)
        if len(steps) == kill_after:
            raise script.CommitInterrupted(name)

    frame = _spark().read.parquet(*source_files)
    if drop_order_id is not None:
        frame = frame.filter(F.col("order_id") != drop_order_id)
    try:
        script.write_day(_spark(), script.Lake(lake_root), table, frame, day, run_id=run_id, on_step=stop_after)
    except script.CommitInterrupted:
        return {"killed": True, "steps": steps}
    return {"killed": False, "steps": steps}
