"""raw/sales_orders: the day's orders landed from the Sales Source API, as received."""

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator

import dagster as dg

from sales_assets.ingest.landing import (
    DEFAULT_LEASE_TTL_SECONDS,
    LeaseHeldError,
    land_day,
    read_manifest,
    verify_manifest,
)
from sales_assets.partitions import daily_partitions, partition_days
from sales_assets.resources.lake import LakeResource
from sales_assets.resources.source import SalesSourceResource
from sales_assets.source.client import LOGGER as SOURCE_CLIENT_LOGGER
from sales_assets.source.client import SourceClientError, SourcePaginationError

RAW_SALES_ORDERS = dg.AssetKey(["raw", "sales_orders"])

# A step refused by a lease is retried just after the holder's lease would expire: a crashed
# holder's day is then taken over by Dagster's own retry; a live holder (its heartbeat keeps
# the lease) refuses again, and after LEASE_RETRIES waits the step fails with its message.
LEASE_RETRIES = 3
# Past the holder's expiry, for clock skew between its host and this one.
LEASE_RETRY_MARGIN_SECONDS = 10.0


def retry_after_lease(error: LeaseHeldError) -> dg.RetryRequested:
    """The ``RetryRequested`` for a step refused by ``error``: wait until the holder's lease
    expires plus ``LEASE_RETRY_MARGIN_SECONDS``, at most ``LEASE_RETRIES`` times. Raise it
    ``from error`` so the final failure shows the holder's message."""
    left = error.seconds_left()
    wait = (DEFAULT_LEASE_TTL_SECONDS if left is None else left) + LEASE_RETRY_MARGIN_SECONDS
    return dg.RetryRequested(max_retries=LEASE_RETRIES, seconds_to_wait=round(wait, 3))


class _ToRunLog(logging.Handler):
    """Re-emits plain ``logging`` records through a step's ``context.log`` (the run's event log)."""

    def __init__(self, log: logging.Logger) -> None:
        super().__init__()
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._log.log(record.levelno, record.getMessage())
        except Exception:
            self.handleError(record)


def _captured_by_instance(instance: dg.DagsterInstance, logger_name: str) -> bool:
    return any(managed in ("root", logger_name) or logger_name.startswith(managed + ".")
               for managed in instance.managed_python_loggers)


@contextlib.contextmanager
def source_client_log_in_run(context: dg.AssetExecutionContext) -> Iterator[None]:
    """While open, the source client's log lines (one per retry) also go to the run's event log.

    The client logs with plain ``logging`` because the Lambda runs it without Dagster; Dagster
    captures only the loggers an instance lists in ``python_logs.managed_python_loggers``, so
    the step does the same for the client's logger itself, for its own duration, on any
    instance (skipped when the instance already captures that logger, so no line is doubled).
    The records still propagate to the root logger as well.
    """
    if _captured_by_instance(context.instance, SOURCE_CLIENT_LOGGER.name):
        yield
        return
    handler = _ToRunLog(context.log)
    SOURCE_CLIENT_LOGGER.addHandler(handler)
    try:
        yield
    finally:
        SOURCE_CLIENT_LOGGER.removeHandler(handler)


# The landed pages keep every field as received; these are the contract's
# top-level fields, which is what a reader of the raw layer can rely on.
RAW_COLUMN_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("order_id", "string"),
        dg.TableColumn("order_timestamp", "string", description="RFC 3339 with a UTC offset"),
        dg.TableColumn("updated_at", "string"),
        dg.TableColumn("status", "string"),
        dg.TableColumn("channel", "string"),
        dg.TableColumn("store_id", "string"),
        dg.TableColumn("currency", "string"),
        dg.TableColumn("customer", "struct"),
        dg.TableColumn("lines", "array<struct>"),
    ]
)


@dg.asset(
    key=RAW_SALES_ORDERS,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="raw",
    kinds={"s3", "json"},
    metadata={"aws/integration": "lambda"},  # Step Functions export: invoke the ingest Lambda
    # Transient source failures (429/5xx past the client's own retries) are
    # rescheduled by Dagster rather than slept through inside the step.
    retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
)
def raw_sales_orders(
    context: dg.AssetExecutionContext, source: SalesSourceResource, lake: LakeResource
) -> dg.MaterializeResult:
    """JSON Lines pages of the day's orders from the Sales Source API, one order per line, fields as
    received, committed by a `_manifest.json` written last (the Lambda's job in the AWS design).
    One writer per day: a run refused by another run's lease on the day is retried just after
    that lease would expire (so a crashed writer's day is taken over), and fails with a message
    naming the holder if the holder is still alive after ``LEASE_RETRIES`` waits."""
    results = []
    with source_client_log_in_run(context), source.get_client() as client:
        for day in partition_days(context):
            try:
                # The same function the Lambda handler runs: lease, pages, manifest, cleanup.
                result = land_day(lake, client, day, owner=f"dagster run {context.run_id}")
            except LeaseHeldError as exc:
                context.log.warning(f"{exc} Retrying in {retry_after_lease(exc).seconds_to_wait} s.")
                raise retry_after_lease(exc) from exc
            except (SourceClientError, SourcePaginationError) as exc:
                # Configuration or a looping source: retrying the step in 30 s cannot help.
                # (These messages never hold the token.)
                raise dg.Failure(description=str(exc), allow_retries=False) from None
            results.append(result)
            context.log.info(
                f"landed {day}: {result.orders} orders, {result.lines} lines in {result.pages} pages, "
                f"{result.bytes} bytes, {result.retries} retries, {result.wall_seconds:.1f} s (run {result.run_id})"
            )
    per_day = {
        r.order_date.isoformat(): {"run_id": r.run_id, "records": r.orders, "lines": r.lines, "pages": r.pages,
                                   "bytes": r.bytes, "retries": r.retries}
        for r in results
    }
    manifest_uris = [lake.uri(r.manifest_key) for r in results]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(r.orders for r in results),
            "dagster/column_schema": RAW_COLUMN_SCHEMA,
            "pages": sum(r.pages for r in results),
            "orders": sum(r.orders for r in results),
            "line_count": sum(r.lines for r in results),
            "bytes": sum(r.bytes for r in results),
            "requests": sum(r.requests for r in results),
            "retries": sum(r.retries for r in results),
            "retry_wait_seconds": round(sum(r.wait_seconds for r in results), 3),
            "wall_seconds": round(sum(r.wall_seconds for r in results), 3),
            # display-safe: no user:password, no query string, never the token
            "source_url": dg.MetadataValue.url(results[0].source_url) if results else "",
            "manifest_key": ", ".join(r.manifest_key for r in results),
            "by_day": per_day,
            "manifests": manifest_uris,
        }
    )


@dg.asset_check(asset=RAW_SALES_ORDERS, blocking=True, partitions_def=daily_partitions)
def raw_manifest_matches_pages(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    """Every page the manifest commits exists with the sha256 and counts it records."""
    problems: dict[str, list[str]] = {}
    for key in context.partition_keys:
        manifest = read_manifest(lake, dt.date.fromisoformat(key))
        found = ["no committed manifest"] if manifest is None else verify_manifest(lake, manifest)
        if found:
            problems[key] = found
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": problems})
