"""curated/*: the Glue PySpark job, launched through Dagster Pipes, and its checks.

Checks, evaluated in the same step right after the job: reconciliation with the raw
manifest (blocking), the quarantine rate under ``SALES_QUARANTINE_RATE_MAX`` (warn) and
the day's order volume near the trailing average of the previous days (warn). Curated days
are read through their commit records (``LakeResource.curated_files``): a day the job did not
commit fails the reconciliation check with the reason, it is never counted as zero rows, and
so does a day whose tables were committed by different job runs (``curated_manifest.require_one_run``).

One job per day at a time: the job's commit deletes every file of a day folder its record does
not list, so two concurrent jobs of one day would delete each other's staging folders. The asset
holds each day's ``CuratedDayLease`` (``curated/_leases/order_date=D.json``: under no table's
folder, so no reader or the job's cleanup ever lists it) while the job runs, renewed by a
heartbeat; a run refused by another run's lease on any of its days launches nothing and is
retried just after that lease would expire (``retry_after_lease``), so a crashed run's days are
taken over and a live run's refuse the second one with its message after the retries. The job
itself is given the lease (``--lease_key_prefix``/``--lease_run_id``) and checks it before each
table-day's commit record, so a Glue job still running after this process died commits nothing
once another run has taken its day over.
"""

import datetime as dt
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import dagster as dg
import pyarrow.compute as pc

from sales_assets.catalog.assets import CATALOG_SALES_ORDERS
from sales_assets.ingest.assets import retry_after_lease
from sales_assets.ingest.landing import read_manifest
from sales_assets.ingest.lease import DEFAULT_LEASE_TTL_SECONDS, Lease, LeaseHeldError, LeaseLostError, hold
from sales_assets.partitions import daily_partitions, partition_days
from sales_assets.resources.etl import EtlResource
from sales_assets.resources.lake import LakeResource
from sales_assets.settings import load_settings
from sales_assets.transform import curated_manifest

CURATE_SCRIPT = "curate_sales_orders.py"
CURATED_TABLES = ("order_lines", "quarantine", "dim_customer", "dim_product")
CURATED_ORDER_LINES = dg.AssetKey(["curated", "order_lines"])
CURATED_KEYS = {name: dg.AssetKey(["curated", name]) for name in CURATED_TABLES}
RECONCILIATION_CHECK = "reconciles_with_raw"
QUARANTINE_RATE_CHECK = "quarantine_rate_under_threshold"
VOLUME_CHECK = "order_volume_near_trailing_average"
# Fewer previous days than this and an average says too little to warn on.
MIN_VOLUME_HISTORY_DAYS = 3

_DESCRIPTIONS = {
    "order_lines": "Typed, deduplicated order lines (one row per line, money as DECIMAL(18,2)) in parquet.",
    "quarantine": "Order lines rejected by validation, each with a reason code and the raw record.",
    "dim_customer": "Latest customer attributes seen in the day's curated lines.",
    "dim_product": "Latest product attributes seen in the day's curated lines.",
}


CURATED_LEASE_FOLDER = f"{curated_manifest.CURATED_FOLDER}/_leases"


def curated_lease_key(day: dt.date) -> str:
    """The key of a day's transform lease; beside the table folders, never inside one."""
    return f"{CURATED_LEASE_FOLDER}/{curated_manifest.PARTITION_KEY}={day.isoformat()}.json"


class CuratedDayLease(Lease):
    """The lease on one curated day, held while a transform job of that day runs."""

    def __init__(self, lake, day: dt.date, run_id: str, owner: str = "",
                 ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS, clock: Callable[[], float] = time.time) -> None:
        super().__init__(lake, curated_lease_key(day), f"curated order_date={day.isoformat()}", run_id,
                         owner=owner, ttl_seconds=ttl_seconds, clock=clock, activity="transformed")
        self.day = day


def _still_held(lease: Lease) -> bool:
    """Whether ``lease`` is still this run's and unexpired (renewals refused, or failing past its expiry: not)."""
    try:
        lease.ensure_held()
    except LeaseLostError:
        return False
    return True


def summary_row_count(lake: LakeResource, table: str, day: dt.date) -> int:
    """Rows the day's commit record lists, 0 when the day has no record (a summary printed after
    a failed run); loads and checks must not use this, they fail on a missing record."""
    try:
        return lake.curated_row_count(table, day)
    except curated_manifest.CuratedRecordMissingError:
        return 0


def committed_row_count(lake: LakeResource, table: str, day: dt.date, problems: list[str]) -> int | None:
    """Rows the day's commit record lists, or None with the reason appended to ``problems``."""
    try:
        return lake.curated_row_count(table, day)
    except (curated_manifest.CuratedRecordMissingError, curated_manifest.CuratedFileMissingError,
            curated_manifest.CuratedRecordError) as error:
        problems.append(str(error))
        return None


def committed_run_problems(lake: LakeResource, day: dt.date) -> list[str]:
    """Why the committed tables of ``day`` are not one transform run's output (empty when they
    are; a table without a record is reported elsewhere and is skipped here)."""
    runs = {}
    try:
        for table in CURATED_TABLES:
            try:
                keys = lake.curated_files(table, day)
            except curated_manifest.CuratedRecordMissingError:
                continue
            runs[table] = curated_manifest.record_run_id(
                [key.rsplit("/", 1)[1] for key in keys], lake.uri(curated_manifest.record_key(table, day))
            )
        curated_manifest.require_one_run(day, runs)
    except (curated_manifest.CuratedFileMissingError, curated_manifest.CuratedRecordError) as error:
        return [str(error)]
    return []


def metadata_value(result: dg.MaterializeResult, name: str):
    value = (result.metadata or {}).get(name)
    return getattr(value, "value", value)


def reconcile(day: str, manifest: dict | None, figures: dict | None, curated_rows: int, quarantine_rows: int) -> list[str]:
    """Why a day's curated output does not account for its raw lines (empty when it does)."""
    if manifest is None:
        return [f"{day}: no committed raw manifest"]
    if figures is None:
        return [f"{day}: the Glue job reported no figures for the day"]
    problems = []
    if figures["raw_lines"] != manifest["line_count"]:
        problems.append(f"{day}: job read {figures['raw_lines']} raw lines, manifest commits {manifest['line_count']}")
    accounted = figures["curated_lines"] + figures["quarantine_lines"] + figures["superseded_lines"]
    if accounted != figures["raw_lines"]:
        problems.append(f"{day}: curated + quarantine + superseded = {accounted} != raw {figures['raw_lines']}")
    if curated_rows != figures["curated_lines"]:
        problems.append(f"{day}: {curated_rows} curated rows in the lake, job reported {figures['curated_lines']}")
    if quarantine_rows != figures["quarantine_lines"]:
        problems.append(f"{day}: {quarantine_rows} quarantine rows in the lake, job reported {figures['quarantine_lines']}")
    return problems


def summarize(problems: list[str], shown: int = 5) -> str | None:
    """A check description: the first ``shown`` problems and how many more (a year-long range may list hundreds)."""
    if not problems:
        return None
    more = len(problems) - shown
    return "; ".join(problems[:shown]) + (f"; and {more} more day(s), see metadata" if more > 0 else "")


def quarantine_rates(figures_by_day: dict, max_rate: float) -> tuple[list[str], dict]:
    """(problems, compared) for days whose quarantined share of raw lines exceeds ``max_rate``."""
    problems, compared = [], {}
    for day, figures in sorted(figures_by_day.items()):
        raw, quarantined = figures["raw_lines"], figures["quarantine_lines"]
        rate = quarantined / raw if raw else 0.0
        compared[day] = {
            "raw_lines": raw, "quarantine_lines": quarantined, "rate": round(rate, 6), "max_rate": max_rate
        }
        if rate > max_rate:
            problems.append(f"{day}: {quarantined} of {raw} lines quarantined ({rate:.2%} > {max_rate:.2%})")
    return problems, compared


def volume_deviation(orders: int, history: list[int], max_deviation: float) -> tuple[str | None, dict]:
    """(problem or None, compared) for one day's ``orders`` against the average of ``history``.

    The deviation is relative to the average, ``(orders - average) / average``; with fewer
    than MIN_VOLUME_HISTORY_DAYS previous days there is no verdict (passes, says so).
    """
    compared: dict = {"orders": orders, "history_days": len(history), "max_deviation": max_deviation}
    if len(history) < MIN_VOLUME_HISTORY_DAYS:
        compared["note"] = f"fewer than {MIN_VOLUME_HISTORY_DAYS} previous days landed; no verdict"
        return None, compared
    average = sum(history) / len(history)
    compared["trailing_average"] = round(average, 3)
    if average == 0:
        deviation = 0.0 if orders == 0 else float("inf")
    else:
        deviation = (orders - average) / average
    compared["deviation"] = round(deviation, 6) if deviation != float("inf") else "inf"
    if abs(deviation) > max_deviation:
        return (
            f"{orders} orders vs a trailing average of {average:.1f} over {len(history)} day(s) "
            f"(deviation {compared['deviation']}, allowed ±{max_deviation})"
        ), compared
    return None, compared


def previous_order_counts(lake: LakeResource, day: dt.date, lookback_days: int) -> list[int]:
    """Orders of each of the ``lookback_days`` days before ``day`` that has a committed raw manifest."""
    counts = []
    for offset in range(1, lookback_days + 1):
        manifest = read_manifest(lake, day - dt.timedelta(days=offset))
        if manifest is not None:
            counts.append(int(manifest["record_count"]))
    return counts


def _raw_lines(lake: LakeResource, days: list[dt.date]) -> int | None:
    """Raw lines the job will read, from the committed manifests; None when a day has none."""
    manifests = [read_manifest(lake, day) for day in days]
    if any(manifest is None for manifest in manifests):
        return None
    return sum(int(manifest["line_count"]) for manifest in manifests)


@dg.multi_asset(
    name="curated_sales",
    specs=[
        dg.AssetSpec(
            key,
            deps=[CATALOG_SALES_ORDERS],
            description=_DESCRIPTIONS[name],
            group_name="curated",
            kinds={"spark", "parquet"},
            metadata={"aws/integration": "glue_job"},  # Step Functions export: one Glue job run
        )
        for name, key in CURATED_KEYS.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(
            RECONCILIATION_CHECK,
            asset=CURATED_ORDER_LINES,
            blocking=True,
            description="raw lines = curated + quarantine + superseded, per day, against the raw manifest.",
        ),
        dg.AssetCheckSpec(
            QUARANTINE_RATE_CHECK,
            asset=CURATED_KEYS["quarantine"],
            description="Per day, quarantined lines / raw lines <= SALES_QUARANTINE_RATE_MAX (warns).",
        ),
        dg.AssetCheckSpec(
            VOLUME_CHECK,
            asset=CURATED_ORDER_LINES,
            description=(
                "Per day, the raw manifest's order count is within SALES_VOLUME_DEVIATION_MAX of the "
                "average of the previous SALES_VOLUME_LOOKBACK_DAYS days' manifests (warns)."
            ),
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
)
def curated_sales(context: dg.AssetExecutionContext, etl: EtlResource, lake: LakeResource) -> Iterator:
    """Runs glue_scripts/curate_sales_orders.py for the run's days (one Spark job for a whole range)."""
    days = partition_days(context)
    arguments = {"lake_root": lake.root_uri(), "order_date": days[0].isoformat()}
    if len(days) > 1:
        arguments["order_date_end"] = days[-1].isoformat()
    owner = f"dagster run {context.run_id}"
    # The job checks each day's lease right before each commit record, so a job that outlives
    # this process (killed while Glue runs on) cannot commit over the run that took the day over.
    arguments["lease_key_prefix"] = CURATED_LEASE_FOLDER
    arguments["lease_run_id"] = context.run_id
    try:
        with hold(CuratedDayLease(lake, day, context.run_id, owner=owner) for day in days) as leases:
            results = list(etl.run_script(context, CURATE_SCRIPT, arguments,
                                          expected_lines=_raw_lines(lake, days)).get_results())
            lost = [lease for lease in leases if not _still_held(lease)]
    except LeaseHeldError as exc:
        context.log.warning(f"{exc} Retrying in {retry_after_lease(exc).seconds_to_wait} s.")
        raise retry_after_lease(exc) from exc
    if lost:
        # The job has committed already; another run may have run the same day meanwhile, and
        # its commit may have deleted this run's files or the reverse: say so, do not report success.
        raise LeaseLostError(
            f"{lost[0].subject}: run {context.run_id} lost its lease {lost[0].key} while the job ran (another "
            f"run may have transformed the day meanwhile); re-run the transform for the day.")
    yield from results

    order_lines = next(r for r in results if r.asset_key == CURATED_ORDER_LINES)
    figures_by_day = metadata_value(order_lines, "figures_by_day") or {}
    problems: list[str] = []
    compared = {}
    manifests = {day: read_manifest(lake, day) for day in days}
    for day in days:
        key = day.isoformat()
        # A missing record after a successful job is a failed check naming it, not a crash.
        record_problems: list[str] = []
        curated_rows = committed_row_count(lake, "order_lines", day, record_problems)
        quarantine_rows = committed_row_count(lake, "quarantine", day, record_problems)
        manifest = manifests[day]
        # The four tables of a day must be one run's: a kill between two tables' commits leaves
        # a mix the loader would refuse; the check fails first, naming the day.
        record_problems += [p for p in committed_run_problems(lake, day) if p not in record_problems]
        if record_problems:
            problems += record_problems
        else:
            problems += reconcile(key, manifest, figures_by_day.get(key), curated_rows, quarantine_rows)
        compared[key] = {
            "manifest_lines": manifest["line_count"] if manifest else None,
            **(figures_by_day.get(key) or {}),
            "curated_rows_in_lake": curated_rows,
            "quarantine_rows_in_lake": quarantine_rows,
        }
    yield dg.AssetCheckResult(
        asset_key=CURATED_ORDER_LINES,
        check_name=RECONCILIATION_CHECK,
        passed=not problems,
        metadata={"problems": problems, "by_day": compared},
        description="; ".join(problems) or None,
    )

    # Thresholds are read when the step runs, so a changed variable applies to the next run.
    settings = load_settings()
    rate_problems, rates = quarantine_rates(
        {d.isoformat(): figures_by_day[d.isoformat()] for d in days if d.isoformat() in figures_by_day},
        settings.quarantine_rate_max,
    )
    yield dg.AssetCheckResult(
        asset_key=CURATED_KEYS["quarantine"],
        check_name=QUARANTINE_RATE_CHECK,
        passed=not rate_problems,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"problems": rate_problems, "by_day": rates, "max_rate": settings.quarantine_rate_max},
        description=summarize(rate_problems),
    )

    volume_problems, volumes = [], {}
    for day in days:
        manifest = manifests[day]
        orders = int(manifest["record_count"]) if manifest else 0
        history = previous_order_counts(lake, day, settings.volume_lookback_days)
        problem, volumes[day.isoformat()] = volume_deviation(orders, history, settings.volume_deviation_max)
        if problem:
            volume_problems.append(f"{day.isoformat()}: {problem}")
    yield dg.AssetCheckResult(
        asset_key=CURATED_ORDER_LINES,
        check_name=VOLUME_CHECK,
        passed=not volume_problems,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "problems": volume_problems,
            "by_day": volumes,
            "lookback_days": settings.volume_lookback_days,
            "max_deviation": settings.volume_deviation_max,
        },
        description=summarize(volume_problems),
    )


def curated_day_figures(lake: LakeResource, day: dt.date) -> tuple[int, Decimal]:
    """(lines, sum of net) of a day's committed curated order lines (exactly the files its record
    lists); CuratedRecordMissingError when the day was never curated."""
    table = lake.read_curated("order_lines", day)
    if table.num_rows == 0:
        return 0, Decimal("0.00")
    total = pc.sum(table.column("net")).as_py()
    return table.num_rows, Decimal(total).quantize(Decimal("0.01"))
