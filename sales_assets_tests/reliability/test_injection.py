"""Guards fault 20 (injection): a partition key, date parameter or identifier carrying ``../``,
quotes or ``; DROP`` must be refused by the code that would build a lake path or SQL text from
it, before anything is built, written or sent — at every entry point: lake keys, the landing
day prefix, the Dagster partition key, the Lambda event, the Glue job arguments, the loader's
curated locations and the warehouse statement allow-list."""
from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from sales_assets.ingest import landing
from sales_assets.ingest.assets import raw_sales_orders
from sales_assets.ingest.lambda_handler import LambdaConfigurationError, parse_event
from sales_assets.ingest.store import LocalObjectStore
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.source import SalesSourceResource
from sales_assets.warehouse import loader, transpile
from sales_assets_tests.glue_scripts.conftest import load_script

HOSTILE = [
    "../2026-11-20",
    "2026-11-20/../../etc",
    "2026-11-20'; DROP TABLE fact_sales; --",
    '2026-11-20" OR "1"="1',
    "2026-11-20 ",
    "20261120",
    "2026-11-20T00:00:00",
    "",
]


@pytest.mark.parametrize("key", ["../outside", "raw/../../etc/passwd", "/etc/passwd", "raw/sales_orders/../../x"])
def test_lake_keys_cannot_leave_the_lake(tmp_path, key):
    store = LocalObjectStore(tmp_path / "lake")
    for operation in (lambda: store.write_bytes(key, b"x"), lambda: store.read_bytes(key),
                      lambda: store.create_exclusive(key, b"x"), lambda: store.delete_key(key)):
        with pytest.raises(ValueError, match="stay inside the lake"):
            operation()
    assert not any(tmp_path.rglob("x")) and not (tmp_path / "outside").exists()


@pytest.mark.parametrize("value", HOSTILE)
def test_landing_paths_take_calendar_dates_only(value):
    for build in (landing.day_prefix, landing.manifest_key, landing.lease_key,
                  lambda day: landing.run_prefix(day, "r")):
        if value in ("20261120",):
            # fromisoformat accepts the basic form, but the key is rebuilt from the parsed date.
            assert "order_date=2026-11-20/" in build(value)
            continue
        with pytest.raises((ValueError, TypeError)):
            build(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_the_lambda_event_date_is_refused(value):
    with pytest.raises(LambdaConfigurationError, match="YYYY-MM-DD"):
        parse_event({"date": value})


@pytest.mark.parametrize("value", HOSTILE)
def test_the_glue_job_refuses_a_bad_order_date(value, tmp_path):
    curate = load_script()
    with pytest.raises(SystemExit, match="expected YYYY-MM-DD"):
        curate.parse_args(["curate_sales_orders.py", "--lake_root", str(tmp_path), "--order_date", value])


@pytest.mark.parametrize("value", HOSTILE)
def test_the_loader_builds_locations_from_allow_listed_tables_and_real_dates(value):
    with pytest.raises(TypeError):
        loader.curated_day_location("/lake", "order_lines", value)
    for table in ("../order_lines", "order_lines'; DROP TABLE fact_sales; --", "order_lines/../x"):
        with pytest.raises(ValueError, match="unknown curated table"):
            loader.curated_day_location("/lake", table, dt.date(2026, 11, 20))


@pytest.mark.parametrize("name", ["../sql/load_fact_sales", "fact'; DROP TABLE x; --", "x.sql", "Upper", ""])
def test_warehouse_statements_come_from_the_allow_list_only(name):
    with pytest.raises(KeyError, match="no warehouse statement"):
        transpile.redshift_sql(name)


@pytest.mark.parametrize("key", ["../2026-11-20", "2026-11-20'; DROP TABLE fact_sales; --", "2026-11-20/../x"])
def test_a_hostile_partition_key_is_refused_before_the_source_or_lake_is_touched(tmp_path, key):
    lake_root = tmp_path / "lake"
    # Port 9 on 127.0.0.1: any request would fail loudly, but none must be made.
    source = SalesSourceResource(base_url="http://127.0.0.1:9", token="t")
    with pytest.raises(Exception, match="(?i)partition"):
        dg.materialize([raw_sales_orders], partition_key=key,
                       resources={"source": source, "lake": LocalLakeResource(root=str(lake_root))})
    assert not lake_root.exists() or not any(lake_root.rglob("*"))
