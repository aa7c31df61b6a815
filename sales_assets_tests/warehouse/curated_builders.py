"""Builders of curated parquet days, written with pyarrow in the exact schemas of SPEC.md and
committed like the Glue job commits them (files, then the `_manifest.json` record), through
`sales_assets.transform.curated_manifest.commit_day`.

Not a test module: imported by the warehouse, warehouse-resource, reporting and reliability tests.
"""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pyarrow as pa

from sales_assets.resources.lake import LakeResource, LocalLakeResource
from sales_assets.transform import curated_manifest

MONEY = pa.decimal128(18, 2)
RATE = pa.decimal128(12, 10)
TS = pa.timestamp("us", tz="UTC")
CENT = Decimal("0.01")

ORDER_LINES_SCHEMA = pa.schema(
    [
        ("order_id", pa.string()),
        ("line_number", pa.int32()),
        ("order_date", pa.date32()),
        ("order_timestamp", TS),
        ("updated_at", TS),
        ("customer_id", pa.string()),
        ("product_id", pa.string()),
        ("channel", pa.string()),
        ("store_id", pa.string()),
        ("status", pa.string()),
        ("currency", pa.string()),
        ("quantity", pa.int32()),
        ("unit_price", MONEY),
        ("discount", RATE),
        ("tax_rate", RATE),
        ("gross", MONEY),
        ("discount_amount", MONEY),
        ("net", MONEY),
        ("tax_amount", MONEY),
        ("total", MONEY),
        ("customer_name", pa.string()),
        ("customer_email", pa.string()),
        ("customer_segment", pa.string()),
        ("customer_country", pa.string()),
        ("customer_region", pa.string()),
        ("customer_city", pa.string()),
        ("sku", pa.string()),
        ("product_name", pa.string()),
        ("category", pa.string()),
        ("brand", pa.string()),
        ("source_page", pa.int32()),
        ("ingest_run_id", pa.string()),
    ]
)
DIM_CUSTOMER_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("customer_name", pa.string()),
        ("email", pa.string()),
        ("segment", pa.string()),
        ("country", pa.string()),
        ("region", pa.string()),
        ("city", pa.string()),
        ("updated_at", TS),
        ("order_date", pa.date32()),
    ]
)
DIM_PRODUCT_SCHEMA = pa.schema(
    [
        ("product_id", pa.string()),
        ("sku", pa.string()),
        ("product_name", pa.string()),
        ("category", pa.string()),
        ("brand", pa.string()),
        ("updated_at", TS),
        ("order_date", pa.date32()),
    ]
)


def round2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def make_line(
    order_id: str,
    line_number: int,
    day: dt.date,
    *,
    quantity: int = 1,
    unit_price: str = "10.00",
    discount: str = "0",
    tax_rate: str = "0.2",
    customer_id: str = "C1",
    product_id: str = "P1",
    customer_name: str | None = None,
    product_name: str | None = None,
    updated_at: dt.datetime | None = None,
    hour: int = 12,
) -> dict:
    """One curated order line with money computed by the spec's rules."""
    price, disc, tax = Decimal(unit_price), Decimal(discount), Decimal(tax_rate)
    gross = round2(quantity * price)
    discount_amount = round2(gross * disc)
    net = gross - discount_amount
    tax_amount = round2(net * tax)
    ordered = dt.datetime(day.year, day.month, day.day, hour, 30, tzinfo=dt.timezone.utc)
    return {
        "order_id": order_id,
        "line_number": line_number,
        "order_date": day,
        "order_timestamp": ordered,
        "updated_at": updated_at or ordered,
        "customer_id": customer_id,
        "product_id": product_id,
        "channel": "web",
        "store_id": None,
        "status": "completed",
        "currency": "USD",
        "quantity": quantity,
        "unit_price": price,
        "discount": disc,
        "tax_rate": tax,
        "gross": gross,
        "discount_amount": discount_amount,
        "net": net,
        "tax_amount": tax_amount,
        "total": net + tax_amount,
        "customer_name": customer_name or f"Customer {customer_id}",
        "customer_email": f"{customer_id.lower()}@example.com",
        "customer_segment": "consumer",
        "customer_country": "US",
        "customer_region": "West",
        "customer_city": "Portland",
        "sku": f"SKU-{product_id}",
        "product_name": product_name or f"Product {product_id}",
        "category": "tools",
        "brand": "Acme",
        "source_page": 1,
        "ingest_run_id": f"run-{day.isoformat()}",
    }


def dims_from_lines(lines: list[dict]) -> tuple[list[dict], list[dict]]:
    """The day's dim rows: latest attributes by (updated_at, order_id), as the Glue job does."""
    customers: dict[str, dict] = {}
    products: dict[str, dict] = {}
    for line in sorted(lines, key=lambda l: (l["updated_at"], l["order_id"])):
        customers[line["customer_id"]] = {
            "customer_id": line["customer_id"],
            "customer_name": line["customer_name"],
            "email": line["customer_email"],
            "segment": line["customer_segment"],
            "country": line["customer_country"],
            "region": line["customer_region"],
            "city": line["customer_city"],
            "updated_at": line["updated_at"],
            "order_date": line["order_date"],
        }
        products[line["product_id"]] = {
            "product_id": line["product_id"],
            "sku": line["sku"],
            "product_name": line["product_name"],
            "category": line["category"],
            "brand": line["brand"],
            "updated_at": line["updated_at"],
            "order_date": line["order_date"],
        }
    return list(customers.values()), list(products.values())


def day_folder(lake_root: Path, table: str, day: dt.date) -> Path:
    return Path(lake_root) / "curated" / table / f"order_date={day.isoformat()}"


def write_table(lake_root: Path, table: str, day: dt.date, rows: list[dict], schema: pa.Schema) -> Path:
    """Commit the day of `table` as one part file holding `rows` (none: a schema-only file, as
    Spark writes for an empty day); returns the file's path."""
    lake = LocalLakeResource(root=str(lake_root))
    (key,) = curated_manifest.commit_day(lake, table, day, [pa.Table.from_pylist(rows, schema=schema)])
    return Path(lake.store().root_uri()) / key


def curated_frames(
    lines: list[dict],
    *,
    customers: list[dict] | None = None,
    products: list[dict] | None = None,
    quarantine: list[dict] | None = None,
) -> dict[str, pa.Table]:
    """A curated day's four tables (table -> frame), in the order the Glue job commits them:
    dimensions derived from `lines` unless given, `quarantine` defaults to no rows; an empty
    `lines` gives schema-only frames."""
    derived_customers, derived_products = dims_from_lines(lines)
    customers = derived_customers if customers is None else customers
    products = derived_products if products is None else products
    return {
        "order_lines": pa.Table.from_pylist(lines, schema=ORDER_LINES_SCHEMA),
        "dim_customer": pa.Table.from_pylist(customers, schema=DIM_CUSTOMER_SCHEMA),
        "dim_product": pa.Table.from_pylist(products, schema=DIM_PRODUCT_SCHEMA),
        "quarantine": pa.Table.from_pylist(quarantine or [], schema=QUARANTINE_SCHEMA),
    }


def commit_curated_day(lake: LakeResource, day: dt.date, lines: list[dict], **tables) -> None:
    """Commit a whole curated day in a lake resource (folder or S3), one table after the other
    as the Glue job does; `tables` (customers, products, quarantine) as for `curated_frames`."""
    for table, frame in curated_frames(lines, **tables).items():
        curated_manifest.commit_day(lake, table, day, [frame])


def write_curated_day(lake_root: Path, day: dt.date, lines: list[dict], **tables) -> None:
    """Commit a whole curated day in a local lake folder (see `commit_curated_day`)."""
    commit_curated_day(LocalLakeResource(root=str(lake_root)), day, lines, **tables)


def expected_figures(lines: list[dict]) -> tuple[int, Decimal]:
    return len(lines), sum((line["net"] for line in lines), Decimal("0.00"))


QUARANTINE_SCHEMA = pa.schema(
    [
        ("order_date", pa.date32()),
        ("order_id", pa.string()),
        ("line_number", pa.int32()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw_record", pa.string()),
        ("source_page", pa.int32()),
        ("ingest_run_id", pa.string()),
    ]
)


def make_quarantined(order_id: str, line_number: int, day: dt.date, reason: str = "negative_quantity") -> dict:
    """One curated/quarantine row as the Glue job writes it."""
    return {
        "order_date": day,
        "order_id": order_id,
        "line_number": line_number,
        "reason": reason,
        "detail": f"{reason} on line {line_number}",
        "raw_record": '{"order_id": "%s"}' % order_id,
        "source_page": 1,
        "ingest_run_id": f"run-{day.isoformat()}",
    }


def write_quarantine_day(lake_root: Path, day: dt.date, rows: list[dict]) -> Path:
    return write_table(lake_root, "quarantine", day, rows, QUARANTINE_SCHEMA)


def put_s3_day(s3, bucket: str, prefix: str, table: str, day: dt.date, parts: dict[str, bytes],
               stale: dict[str, bytes] | None = None) -> None:
    """Commit a curated day in a (moto) S3 lake: `parts` (name -> body), then the record listing
    exactly them (`curated_manifest.record_body`); `stale` files sit beside them unlisted, as a
    crashed run leaves them."""
    folder = f"{prefix.strip('/')}/{curated_manifest.day_prefix(table, day)}".lstrip("/")
    entries = []
    for name, body in {**parts, **(stale or {})}.items():
        s3.put_object(Bucket=bucket, Key=folder + name, Body=body)
        if name in parts:
            entries.append(curated_manifest.RecordEntry(f"s3://{bucket}/{folder}{name}", len(body)))
    s3.put_object(Bucket=bucket, Key=folder + curated_manifest.RECORD_NAME, Body=curated_manifest.record_body(entries))
