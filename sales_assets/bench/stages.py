"""The work of each benchmark stage, run as `python -m sales_assets.bench.stages <stage> '<json>'`.

Each stage runs in its own process so that its peak RSS is its own; it prints one JSON line
(its figures, `inner_seconds` = the work without interpreter start-up) as the last line of
stdout. Stages read and write the same folders the pipeline uses in the `local` environment.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

CATALOG_DATABASE = "sales_raw"
CATALOG_TABLE = "sales_orders"
DUCKDB_SQL = Path(__file__).with_name("sql") / "duckdb_transform.sql"


def _days(params: dict) -> list[dt.date]:
    return [dt.date.fromisoformat(day) for day in params["days"]]


def _dir_figures(root: Path) -> tuple[int, int]:
    """(files, bytes) under `root`."""
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return len(files), sum(p.stat().st_size for p in files)


def ingest(params: dict) -> dict:
    """`land_day` per day, as the Lambda handler runs it: the plain object store, no Dagster import."""
    from sales_assets.ingest.landing import land_day
    from sales_assets.ingest.store import LocalObjectStore
    from sales_assets.source.client import SalesSourceClient

    lake = LocalObjectStore(params["lake_root"])
    orders = lines = size = pages = requests = 0
    with SalesSourceClient(params["url"], params["token"], page_size=params["page_size"]) as client:
        for day in _days(params):
            result = land_day(lake, client, day)
            orders, lines, size, pages = orders + result.orders, lines + result.lines, size + result.bytes, pages + result.pages
        requests = client.stats.requests
    return {"orders": orders, "rows": lines, "bytes": size, "pages": pages, "requests": requests}


def crawl(params: dict) -> dict:
    from sales_assets.catalog.crawler import crawl_partition
    from sales_assets.resources.catalog import LocalCatalogResource
    from sales_assets.resources.lake import LocalLakeResource

    lake = LocalLakeResource(root=params["lake_root"])
    catalog = LocalCatalogResource(path=params["catalog_path"])
    catalog.ensure_database(CATALOG_DATABASE)
    for day in _days(params):
        crawl_partition(lake, catalog, CATALOG_DATABASE, CATALOG_TABLE, day)
    return {"partitions": len(catalog.get_partitions(CATALOG_DATABASE, CATALOG_TABLE))}


def load(params: dict) -> dict:
    """`load_days` on a plain DuckDB session, as a step's load runs it, minus the Dagster import
    (a Dagster run pays that once per step process, whatever the day's size);
    `load_days_seconds` times the call alone."""
    from sales_assets.warehouse.loader import load_days
    from sales_assets.warehouse.session import duckdb_session

    with duckdb_session(params["warehouse_path"]) as session:
        started = time.monotonic()
        report = load_days(session, params["lake_root"], _days(params))
        seconds = time.monotonic() - started
    rows = sum(report.lines_per_day.values())
    return {"rows": rows, "load_days_seconds": round(seconds, 3),
            "load_days_rows_per_second": round(rows / seconds) if seconds else None}


def checks(params: dict) -> dict:
    """fact_sales = curated (count and Σnet) per day, unique keys, no orphans: what the checks compare."""
    from sales_assets.resources.lake import LocalLakeResource
    from sales_assets.transform.assets import curated_day_figures
    from sales_assets.warehouse.loader import duplicate_fact_keys, fact_figures, orphan_fact_rows
    from sales_assets.warehouse.session import duckdb_session

    lake = LocalLakeResource(root=params["lake_root"])
    days = _days(params)
    with duckdb_session(params["warehouse_path"], read_only=True) as session:
        facts = fact_figures(session, days)
        duplicates = duplicate_fact_keys(session, days)
        orphans = orphan_fact_rows(session, days)
    problems = []
    rows = 0
    for day in days:
        curated = curated_day_figures(lake, day)
        rows += curated[0]
        if facts[day] != curated:
            problems.append(f"{day}: fact {facts[day]} != curated {curated}")
    if duplicates:
        problems.append(f"{duplicates} duplicate keys")
    if orphans:
        problems.append(f"{orphans} orphan rows")
    return {"rows": rows, "passed": not problems, "problems": problems}


def end_to_end(params: dict) -> dict:
    """The Dagster job `daily_sales_job` over the days, in one run (the environment sets the paths)."""
    import dagster as dg

    from sales_assets.operations.demo import run_demo
    from sales_assets.settings import load_settings

    summary = run_demo(_days(params), load_settings(), instance=dg.DagsterInstance.ephemeral())
    return {
        "success": summary.success,
        "failed_checks": summary.failed_checks,
        "orders": sum(d.raw_orders for d in summary.days),
        "rows": sum(d.warehouse_lines for d in summary.days),
    }


def page_files(lake_root: str, days: list[dt.date]) -> list[str]:
    """The committed page files of the days, as their manifests list them."""
    from sales_assets.ingest.landing import read_manifest
    from sales_assets.resources.lake import LocalLakeResource

    lake = LocalLakeResource(root=lake_root)
    files = []
    for day in days:
        manifest = read_manifest(lake, day)
        files += [str(Path(lake_root) / page["key"]) for page in manifest["pages"]]
    return files


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_baseline(params: dict) -> dict:
    import duckdb

    files = page_files(params["lake_root"], _days(params))
    out_dir = params["out_dir"]
    sql = DUCKDB_SQL.read_text().format(
        files="[" + ", ".join(_sql_literal(f) for f in files) + "]", out_dir=_sql_literal(out_dir)
    )
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    rows = connection.execute(sql).fetchone()[0]
    return {"rows": int(rows), "threads": int(connection.execute("SELECT current_setting('threads')").fetchone()[0])}


def _parse_file(path: str) -> tuple[int, int, int]:
    import orjson

    data = Path(path).read_bytes()
    parsed = failed = 0
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            orjson.loads(line)
            parsed += 1
        except orjson.JSONDecodeError:
            failed += 1
    return len(data), parsed, failed


def parse_limit(params: dict) -> dict:
    """orjson over every landed byte, one worker per core: no pipeline can read the JSON faster."""
    import multiprocessing

    files = page_files(params["lake_root"], _days(params))
    workers = os.cpu_count() or 1
    with multiprocessing.Pool(workers) as pool:
        results = pool.map(_parse_file, files, chunksize=max(1, len(files) // (workers * 8)))
    return {"bytes": sum(r[0] for r in results), "records": sum(r[1] for r in results),
            "invalid": sum(r[2] for r in results), "workers": workers}


STAGES = {"ingest": ingest, "crawl": crawl, "load": load, "checks": checks, "end_to_end": end_to_end,
          "duckdb_baseline": duckdb_baseline, "parse_limit": parse_limit}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stage, params = argv[0], json.loads(argv[1])
    started = time.monotonic()
    figures: dict[str, Any] = STAGES[stage](params)
    figures["inner_seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(figures, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
