"""catalog/sales_orders as Dagster runs it: schema drift end to end and the blocking check.

Risk guarded: drift in the source (a new field, numbers sent as strings, a line without
product_id, a required column gone from a whole day) either lost from the catalog, not
versioned, or passed silently to the transform; the `aws` crawler mode leaving a partition
pointed anywhere but the committed run folder.
"""
from __future__ import annotations

import dagster as dg

from sales_assets.catalog.assets import CATALOG_SALES_ORDERS, REQUIRED_COLUMNS_CHECK, catalog_sales_orders
from sales_assets.ingest.assets import raw_sales_orders
from sales_assets.resources.catalog import LocalCatalogResource
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.source import SalesSourceResource
from sales_assets.source.demo_data import DemoDataConfig
from sales_assets.source.demo_server import DemoSourceServer

from .fake_lake import order, write_partition

DAY1 = "2026-11-18"
DAY2 = "2026-11-19"
DAY3 = "2026-11-20"
DB, TABLE = "sales_raw", "sales_orders"


def check_result(result):
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == REQUIRED_COLUMNS_CHECK]
    return evaluation


def materialization(result):
    [event] = result.asset_materializations_for_node("catalog__sales_orders")
    return event.metadata


def catalog_only(lake_root, catalog, day):
    return dg.materialize(
        [catalog_sales_orders],
        partition_key=day,
        resources={"lake": LocalLakeResource(root=str(lake_root)), "catalog": catalog},
        raise_on_error=False,
    )


def test_schema_drift_end_to_end(lake_root, tmp_path):
    catalog = LocalCatalogResource(path=str(tmp_path / "catalog.sqlite"))
    clean = DemoDataConfig(orders_per_day=30, invalid_line_rate=0, resend_rate=0, type_drift_rate=0,
                           extra_field_rate=0)
    # Day 1: raw + catalog from the demo source, contract-clean data.
    with DemoSourceServer(config=clean) as server:
        result = dg.materialize(
            [raw_sales_orders, catalog_sales_orders],
            partition_key=DAY1,
            resources={
                "source": SalesSourceResource(base_url=server.url, token=server.token),
                "lake": LocalLakeResource(root=str(lake_root)),
                "catalog": catalog,
            },
        )
    assert result.success and check_result(result).passed
    first = materialization(result)
    assert first["table_version"].value == "1"
    schema = {c.name: c.type for c in first["dagster/column_schema"].schema.columns}
    table = catalog.get_table(DB, TABLE)
    # dagster/column_schema is the cataloged schema, column for column.
    assert schema == {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert "unit_price:decimal(18,2)" in schema["lines"]
    assert "promo_code" not in schema

    # Day 2: a new field, quantity as a string on some lines, product_id dropped on one line.
    drifted = [order("O-1", promo_code="VIP"), order("O-2"), order("O-3")]
    drifted[1]["lines"][0]["quantity"] = "2"
    del drifted[2]["lines"][1]["product_id"]
    for record in drifted:
        record["order_timestamp"] = f"{DAY2}T10:00:00Z"
    write_partition(lake_root, DAY2, [drifted], run_id="20261120T000000Z-aaaaaa")
    result = catalog_only(lake_root, catalog, DAY2)
    assert result.success
    meta = materialization(result)
    diff = meta["schema_diff"].value[DAY2]
    assert diff["added"] == ["promo_code"]
    assert [w["name"] for w in diff["widened"]] == ["lines"]
    assert "quantity:string" in diff["widened"][0]["to"]
    assert meta["table_version"].value == "2"
    assert [v["VersionId"] for v in catalog.get_table_versions(DB, TABLE)] == ["1", "2"]
    assert "promo_code" in {c.name for c in meta["dagster/column_schema"].schema.columns}
    # One line without product_id and string quantities are the ETL's to quarantine/coerce.
    assert check_result(result).passed

    # Day 3: product_id gone from every line of the day; the table keeps it (never deleted)
    # but the blocking check sees the partition's own data and fails.
    gone = [order("O-7"), order("O-8")]
    for record in gone:
        record["order_timestamp"] = f"{DAY3}T10:00:00Z"
        for line in record["lines"]:
            del line["product_id"]
    write_partition(lake_root, DAY3, [gone], run_id="20261121T000000Z-bbbbbb")
    result = catalog_only(lake_root, catalog, DAY3)
    evaluation = check_result(result)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    problems = evaluation.metadata["problems"].value
    assert list(problems) == [DAY3]
    assert problems[DAY3] == ["lines[].product_id: missing (absent or null in every record of the partition)"]
    found = evaluation.metadata["found_by_day"].value[DAY3]
    assert found["types"]["lines[].product_id"] is None
    assert found["types"]["lines[].quantity"] == "bigint"
    assert "lines[].product_id" in evaluation.metadata["required"].value
    # The table still describes product_id: columns are never deleted.
    columns = catalog.get_table(DB, TABLE)["StorageDescriptor"]["Columns"]
    assert "product_id:string" in next(c["Type"] for c in columns if c["Name"] == "lines")


def test_blocking_check_stops_the_downstream_asset(lake_root, tmp_path):
    catalog = LocalCatalogResource(path=str(tmp_path / "catalog.sqlite"))
    records = [order("O-1")]
    del records[0]["customer"]
    records[0]["order_timestamp"] = f"{DAY3}T10:00:00Z"
    write_partition(lake_root, DAY3, [records])
    ran = []

    @dg.asset(deps=[CATALOG_SALES_ORDERS], partitions_def=catalog_sales_orders.partitions_def)
    def downstream():
        ran.append(True)

    result = dg.materialize(
        [catalog_sales_orders, downstream],
        partition_key=DAY3,
        resources={"lake": LocalLakeResource(root=str(lake_root)), "catalog": catalog},
        raise_on_error=False,
    )
    assert not result.success
    assert not ran
    assert "customer: missing" in check_result(result).metadata["problems"].value[DAY3][0]


class CrawlingCatalog(LocalCatalogResource):
    """The local catalog with a fake Glue crawler that merges a column and moves the partition."""

    crawler_name: str | None = "sales-raw"

    def configured_crawler(self):
        return self.crawler_name

    def start_crawler_and_wait(self, name, **kwargs):
        table = self.get_table(DB, TABLE)
        table["StorageDescriptor"]["Columns"] = table["StorageDescriptor"]["Columns"] + [
            {"Name": "from_glue", "Type": "string"}]
        self.update_table(DB, table, expected_version=table["VersionId"])
        for partition in self.get_partitions(DB, TABLE):
            # What an S3-target crawler does: point the partition at the day folder.
            sd = dict(partition["StorageDescriptor"], Location="s3://elsewhere/")
            self.upsert_partition(DB, TABLE, partition["Values"], sd, partition["Parameters"])
        return {"Status": "SUCCEEDED"}


def test_aws_crawler_mode_runs_the_crawler_and_keeps_the_committed_location(lake_root, tmp_path):
    catalog = CrawlingCatalog(path=str(tmp_path / "catalog.sqlite"))
    records = [order("O-1")]
    records[0]["order_timestamp"] = f"{DAY1}T10:00:00Z"
    write_partition(lake_root, DAY1, [records], run_id="20261119T000000Z-cccccc")
    result = catalog_only(lake_root, catalog, DAY1)
    assert result.success and check_result(result).passed
    meta = materialization(result)
    # Created from this crawler's inference (version 1), then merged by the Glue crawler (2).
    assert meta["table_version"].value == "2"
    assert meta["schema_diff"].value[DAY1]["added"] == ["from_glue"]
    partition = catalog.get_partition(DB, TABLE, [DAY1])
    assert partition["StorageDescriptor"]["Location"].endswith(
        f"order_date={DAY1}/run_id=20261119T000000Z-cccccc/")
    assert partition["StorageDescriptor"]["Columns"][-1] == {"Name": "from_glue", "Type": "string"}


def test_range_run_writes_every_partition_with_the_final_columns(lake_root, tmp_path):
    catalog = LocalCatalogResource(path=str(tmp_path / "catalog.sqlite"))
    for n, day in enumerate([DAY1, DAY2]):
        record = order(f"O-{n}", **({"late_field": 1} if n else {}))
        write_partition(lake_root, day, [[record]], run_id=f"2026112{n}T000000Z-dddddd")
    result = dg.materialize(
        [catalog_sales_orders],
        tags={"dagster/asset_partition_range_start": DAY1, "dagster/asset_partition_range_end": DAY2},
        resources={"lake": LocalLakeResource(root=str(lake_root)), "catalog": catalog},
    )
    assert result.success
    events = result.asset_materializations_for_node("catalog__sales_orders")
    assert sorted(e.partition for e in events) == [DAY1, DAY2]
    assert sorted(events[0].metadata["schema_diff"].value) == [DAY1, DAY2]
    table_columns = catalog.get_table(DB, TABLE)["StorageDescriptor"]["Columns"]
    for day in (DAY1, DAY2):
        assert catalog.get_partition(DB, TABLE, [day])["StorageDescriptor"]["Columns"] == table_columns


def test_number_mode_is_an_enum_checked_before_the_run_starts(lake_root, tmp_path):
    catalog = LocalCatalogResource(path=str(tmp_path / "catalog.sqlite"))
    write_partition(lake_root, DAY1, [[order("O-1")]], run_id="20261120T000000Z-eeeeee")
    resources = {"lake": LocalLakeResource(root=str(lake_root)), "catalog": catalog}

    def run(mode):
        return dg.materialize([catalog_sales_orders], partition_key=DAY1, resources=resources,
                              run_config={"ops": {"catalog__sales_orders": {"config": {"number_mode": mode}}}})

    try:
        run("float")
    except dg.DagsterInvalidConfigError as error:
        assert "number_mode" in str(error) and "float" in str(error)
    else:
        raise AssertionError("an unknown number_mode was accepted")
    assert catalog.get_table(DB, TABLE) is None  # nothing was crawled
    assert run("double").success
    columns = {c["Name"]: c["Type"] for c in catalog.get_table(DB, TABLE)["StorageDescriptor"]["Columns"]}
    assert "unit_price:double" in columns["lines"]
