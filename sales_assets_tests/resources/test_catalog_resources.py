"""The catalog resources: the local SQLite catalog and Glue (moto / stubbed) behave alike.

Risk guarded: a local catalog that diverges from Glue's shapes (so code passing locally breaks on
AWS), lost table versions or partitions, parallel writers overwriting each other's schema, and
a Glue crawler run reported as done while it is still running, failed or cancelled, and
partitions silently not written when Glue's batch call reports them in ``Errors``.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from botocore.stub import Stubber
from moto import mock_aws

from sales_assets.resources.catalog import (
    CatalogConflictError,
    CatalogResource,
    CrawlerRunError,
    CrawlerTimeoutError,
    GlueCatalogResource,
    LocalCatalogResource,
    PartitionWriteError,
)

DB = "sales_raw"


def table_input(columns, location="/lake/raw/sales_orders/"):
    return {
        "Name": "orders",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "json"},
        "StorageDescriptor": {"Columns": columns, "Location": location},
        "PartitionKeys": [{"Name": "order_date", "Type": "string"}],
    }


def sd(location):
    return {"Columns": [{"Name": "a", "Type": "bigint"}], "Location": location}


@pytest.fixture(params=["local", "glue"])
def catalog(request, tmp_path):
    if request.param == "local":
        yield LocalCatalogResource(path=str(tmp_path / "c.sqlite"))
    else:
        with mock_aws():
            yield GlueCatalogResource(region_name="us-east-1")


def test_both_are_catalog_resources():
    assert issubclass(LocalCatalogResource, CatalogResource)
    assert issubclass(GlueCatalogResource, CatalogResource)
    with pytest.raises(TypeError):
        CatalogResource()


def test_tables_are_versioned(catalog):
    catalog.ensure_database(DB)
    catalog.ensure_database(DB)  # idempotent
    assert catalog.get_table(DB, "orders") is None
    v1 = catalog.create_table(DB, table_input([{"Name": "a", "Type": "bigint"}]))
    with pytest.raises(CatalogConflictError):
        catalog.create_table(DB, table_input([{"Name": "a", "Type": "bigint"}]))
    v2 = catalog.update_table(
        DB, table_input([{"Name": "a", "Type": "double"}, {"Name": "b", "Type": "string"}]), expected_version=v1
    )
    assert int(v2) > int(v1)
    table = catalog.get_table(DB, "orders")
    assert table["VersionId"] == v2
    assert table["DatabaseName"] == DB
    assert table["StorageDescriptor"]["Columns"][1] == {"Name": "b", "Type": "string"}
    versions = catalog.get_table_versions(DB, "orders")
    assert [v["VersionId"] for v in versions] == [v1, v2]
    assert versions[0]["Table"]["StorageDescriptor"]["Columns"] == [{"Name": "a", "Type": "bigint"}]


def test_partitions_upsert_in_place(catalog):
    catalog.ensure_database(DB)
    catalog.create_table(DB, table_input([{"Name": "a", "Type": "bigint"}]))
    assert catalog.get_partition(DB, "orders", ["2026-11-20"]) is None
    catalog.upsert_partition(DB, "orders", ["2026-11-20"], sd("/lake/run_id=1/"), {"run_id": "1"})
    catalog.upsert_partition(DB, "orders", ["2026-11-19"], sd("/lake/run_id=0/"))
    catalog.upsert_partition(DB, "orders", ["2026-11-20"], sd("/lake/run_id=2/"), {"run_id": "2"})
    partition = catalog.get_partition(DB, "orders", ["2026-11-20"])
    assert partition["StorageDescriptor"]["Location"] == "/lake/run_id=2/"
    assert partition["Parameters"] == {"run_id": "2"}
    assert partition["Values"] == ["2026-11-20"]
    assert [p["Values"] for p in catalog.get_partitions(DB, "orders")] == [["2026-11-19"], ["2026-11-20"]]


def test_local_stale_version_is_a_conflict(tmp_path):
    catalog = LocalCatalogResource(path=str(tmp_path / "c.sqlite"))
    catalog.ensure_database(DB)
    v1 = catalog.create_table(DB, table_input([{"Name": "a", "Type": "bigint"}]))
    catalog.update_table(DB, table_input([{"Name": "b", "Type": "bigint"}]), expected_version=v1)
    with pytest.raises(CatalogConflictError):
        catalog.update_table(DB, table_input([{"Name": "c", "Type": "bigint"}]), expected_version=v1)
    assert len(catalog.get_table_versions(DB, "orders")) == 2


def test_local_catalog_persists_across_instances(tmp_path):
    path = str(tmp_path / "nested" / "c.sqlite")
    LocalCatalogResource(path=path).ensure_database(DB)
    LocalCatalogResource(path=path).create_table(DB, table_input([{"Name": "a", "Type": "bigint"}]))
    assert LocalCatalogResource(path=path).get_table(DB, "orders")["VersionId"] == "1"


def test_local_refuses_tables_in_unknown_databases(tmp_path):
    catalog = LocalCatalogResource(path=str(tmp_path / "c.sqlite"))
    with pytest.raises(LookupError):
        catalog.create_table("nope", table_input([]))


def partition_input(day, run):
    return {"Values": [day], "StorageDescriptor": sd(f"/lake/order_date={day}/run_id={run}/"),
            "Parameters": {"run_id": run}}


def test_upsert_partitions_creates_and_replaces(catalog):
    catalog.ensure_database(DB)
    catalog.create_table(DB, table_input([{"Name": "a", "Type": "bigint"}]))
    catalog.upsert_partitions(DB, "orders", [partition_input("2026-11-19", "1")])
    catalog.upsert_partitions(DB, "orders", [partition_input("2026-11-19", "2"), partition_input("2026-11-20", "2")])
    partitions = catalog.get_partitions(DB, "orders")
    assert [p["Values"] for p in partitions] == [["2026-11-19"], ["2026-11-20"]]
    assert [p["Parameters"]["run_id"] for p in partitions] == ["2", "2"]
    assert partitions[0]["StorageDescriptor"]["Location"].endswith("run_id=2/")


def test_glue_batches_partitions_by_100_and_updates_the_existing_ones():
    """250 days, 40 of them already cataloged: 3 create calls, the 40 come back in Errors."""
    days = [f"day-{n:03d}" for n in range(250)]
    with mock_aws():
        glue = GlueCatalogResource(region_name="us-east-1")
        glue.ensure_database(DB)
        glue.create_table(DB, table_input([{"Name": "a", "Type": "bigint"}]))
        glue.upsert_partitions(DB, "orders", [partition_input(d, "old") for d in days[100:140]])
        client = glue.get_client()
        calls = []
        client.meta.events.register(
            "before-parameter-build.glue.*", lambda model, params, **_: calls.append((model.name, dict(params))))
        glue.upsert_partitions(DB, "orders", [partition_input(d, "new") for d in days])
        partitions = glue.get_partitions(DB, "orders")
    creates = [len(p["PartitionInputList"]) for name, p in calls if name == "BatchCreatePartition"]
    updates = [len(p["Entries"]) for name, p in calls if name == "BatchUpdatePartition"]
    assert creates == [100, 100, 50]
    assert updates == [40]
    assert len(partitions) == 250
    assert {p["Parameters"]["run_id"] for p in partitions} == {"new"}
    assert {p["StorageDescriptor"]["Location"] for p in partitions if p["Values"] == ["day-120"]} == {
        "/lake/order_date=day-120/run_id=new/"}


def test_glue_batch_error_other_than_already_exists_raises(stubbed):
    resource, stub = stubbed
    stub.add_response("batch_create_partition", {"Errors": [
        {"PartitionValues": ["2026-11-20"], "ErrorDetail": {"ErrorCode": "AlreadyExistsException", "ErrorMessage": "exists"}},
        {"PartitionValues": ["2026-11-21"], "ErrorDetail": {"ErrorCode": "InternalServiceException", "ErrorMessage": "boom"}},
    ]})
    stub.add_response("batch_update_partition", {})
    with pytest.raises(PartitionWriteError, match=r"\['2026-11-21'\]: InternalServiceException boom"):
        resource.upsert_partitions(DB, "orders", [partition_input("2026-11-20", "r"), partition_input("2026-11-21", "r")])


def test_glue_batch_update_errors_raise(stubbed):
    resource, stub = stubbed
    stub.add_response("batch_create_partition", {"Errors": [
        {"PartitionValues": ["2026-11-20"], "ErrorDetail": {"ErrorCode": "AlreadyExistsException"}}]})
    stub.add_response("batch_update_partition", {"Errors": [
        {"PartitionValueList": ["2026-11-20"], "ErrorDetail": {"ErrorCode": "EntityNotFoundException",
                                                              "ErrorMessage": "deleted meanwhile"}}]})
    with pytest.raises(PartitionWriteError, match="deleted meanwhile"):
        resource.upsert_partitions(DB, "orders", [partition_input("2026-11-20", "r")])


def test_crawler_name_is_glue_only(tmp_path):
    assert LocalCatalogResource(path=str(tmp_path / "c.sqlite")).configured_crawler() is None
    assert GlueCatalogResource(region_name="us-east-1").configured_crawler() is None
    assert GlueCatalogResource(region_name="us-east-1", crawler_name="sales-raw").configured_crawler() == "sales-raw"
    with pytest.raises(NotImplementedError):
        LocalCatalogResource(path=str(tmp_path / "c.sqlite")).start_crawler_and_wait("sales-raw")


# ---------------------------------------------------------------- start_crawler_and_wait

CRAWLER = "sales-raw-crawler"
T0 = datetime(2026, 11, 21, 1, 0, tzinfo=timezone.utc)
T1 = datetime(2026, 11, 21, 2, 0, tzinfo=timezone.utc)
T2 = datetime(2026, 11, 21, 3, 0, tzinfo=timezone.utc)


def crawler(state, status=None, start=None, error=None):
    body = {"Name": CRAWLER, "State": state}
    if status:
        body["LastCrawl"] = {"Status": status, "StartTime": start, **({"ErrorMessage": error} if error else {})}
    return {"Crawler": body}


@pytest.fixture
def stubbed():
    resource = GlueCatalogResource(region_name="us-east-1")
    with Stubber(resource.get_client()) as stub:
        yield resource, stub
        stub.assert_no_pending_responses()


def run(resource, **kwargs):
    sleeps = []
    result = resource.start_crawler_and_wait(CRAWLER, poll_seconds=10, sleep=sleeps.append, **kwargs)
    return result, sleeps


def test_running_then_ready_succeeded(stubbed):
    resource, stub = stubbed
    stub.add_response("get_crawler", crawler("READY", "SUCCEEDED", T0), {"Name": CRAWLER})
    stub.add_response("start_crawler", {}, {"Name": CRAWLER})
    stub.add_response("get_crawler", crawler("RUNNING", "SUCCEEDED", T0))
    stub.add_response("get_crawler", crawler("STOPPING", "SUCCEEDED", T0))
    stub.add_response("get_crawler", crawler("READY", "SUCCEEDED", T1))
    last, sleeps = run(resource)
    assert (last["Status"], last["StartTime"]) == ("SUCCEEDED", T1)
    assert sleeps == [10, 10]


def test_stale_ready_right_after_start_is_not_taken_for_our_run(stubbed):
    resource, stub = stubbed
    stub.add_response("get_crawler", crawler("READY", "FAILED", T0, "old failure"))
    stub.add_response("start_crawler", {})
    stub.add_response("get_crawler", crawler("READY", "FAILED", T0, "old failure"))
    stub.add_response("get_crawler", crawler("READY", "SUCCEEDED", T1))
    last, sleeps = run(resource)
    assert last["StartTime"] == T1
    assert sleeps == [10]


@pytest.mark.parametrize("status", ["FAILED", "CANCELLED"])
def test_failed_or_cancelled_run_raises_with_glue_message(stubbed, status):
    resource, stub = stubbed
    stub.add_response("get_crawler", crawler("READY", "SUCCEEDED", T0))
    stub.add_response("start_crawler", {})
    stub.add_response("get_crawler", crawler("RUNNING", "SUCCEEDED", T0))
    stub.add_response("get_crawler", crawler("READY", status, T1, "Access denied to s3://lake"))
    with pytest.raises(CrawlerRunError, match=f"{status}: Access denied to s3://lake"):
        run(resource)


def test_already_running_waits_then_crawls_again(stubbed):
    resource, stub = stubbed
    stub.add_response("get_crawler", crawler("RUNNING", "SUCCEEDED", T0))
    stub.add_client_error("start_crawler", service_error_code="CrawlerRunningException")
    stub.add_response("get_crawler", crawler("RUNNING", "SUCCEEDED", T0))
    stub.add_response("get_crawler", crawler("READY", "SUCCEEDED", T1))
    stub.add_response("start_crawler", {})  # our own run, after our data was committed
    stub.add_response("get_crawler", crawler("RUNNING", "SUCCEEDED", T1))
    stub.add_response("get_crawler", crawler("READY", "SUCCEEDED", T2))
    last, sleeps = run(resource)
    assert last["StartTime"] == T2
    assert sleeps == [10, 10]


def test_already_running_twice_waits_for_the_later_run(stubbed):
    resource, stub = stubbed
    stub.add_response("get_crawler", crawler("RUNNING", "SUCCEEDED", T0))
    stub.add_client_error("start_crawler", service_error_code="CrawlerRunningException")
    stub.add_response("get_crawler", crawler("READY", "SUCCEEDED", T1))
    stub.add_client_error("start_crawler", service_error_code="CrawlerRunningException")
    stub.add_response("get_crawler", crawler("RUNNING", "SUCCEEDED", T1))
    stub.add_response("get_crawler", crawler("READY", "CANCELLED", T2, "stopped by operator"))
    with pytest.raises(CrawlerRunError, match="CANCELLED: stopped by operator"):
        run(resource)


def test_timeout(stubbed):
    resource, stub = stubbed
    stub.add_response("get_crawler", crawler("READY"))
    stub.add_response("start_crawler", {})
    for _ in range(4):
        stub.add_response("get_crawler", crawler("RUNNING"))
    with pytest.raises(CrawlerTimeoutError):
        run(resource, timeout_seconds=30)
