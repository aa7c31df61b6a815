"""Power BI files for the Redshift endpoint: the `.pbids` connection file and Power Query M.

The endpoint is per user, so these are generated (`sales-pipeline powerbi --host ...`); the
model description and DAX measures are static files in `powerbi/`. Callers may rely on:
- `render_pbids(host, port, database, mode)` is a valid Power BI data source file (JSON)
  for the `amazon-redshift` protocol in `Import` or `DirectQuery` mode.
- `render_queries(host, port, database, mode)` is Power Query M: one shared `Source` and one
  query per star view of schema `reporting` (sales, customers, products, calendar), typed for
  Import; DirectQuery leaves typing to the source.
- `write_powerbi_files(folder, host, port, database)` writes `sales_redshift.pbids` and
  `queries_import.pq`, `queries_directquery.pq`; returns their paths.
- `configured_endpoint(settings)` is the (host, port) of the configured Redshift:
  SALES_AWS_REDSHIFT_HOST, else the endpoint AWS reports for SALES_AWS_REDSHIFT_WORKGROUP
  (redshift-serverless GetWorkgroup) or SALES_AWS_REDSHIFT_CLUSTER_IDENTIFIER (redshift
  DescribeClusters); `EndpointError` with a one-line message when none is set or the lookup fails.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

from sales_assets.reporting.views import STAR_VIEWS

MODES = ("Import", "DirectQuery")
HOST_PATTERN = re.compile(r"^[A-Za-z0-9.\-]{1,253}$")
DATABASE_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,126}$")
# Power Query types for Import mode; money stays fixed decimal (Currency.Type), never float.
COLUMN_TYPES = {
    "sales": {
        "sale_date": "type date", "order_timestamp": "type datetime", "line_number": "Int64.Type",
        "quantity": "Int64.Type", "unit_price": "Currency.Type", "gross": "Currency.Type",
        "discount_amount": "Currency.Type", "net": "Currency.Type", "tax_amount": "Currency.Type",
        "total": "Currency.Type", "is_revenue": "type logical",
    },
    "customers": {},
    "products": {},
    "calendar": {
        "date_key": "type date", "year": "Int64.Type", "quarter": "Int64.Type", "month": "Int64.Type",
        "day_of_month": "Int64.Type", "iso_year": "Int64.Type", "iso_week": "Int64.Type",
        "day_of_week": "Int64.Type", "is_weekend": "type logical",
    },
}


def _validate(host: str, port: int, database: str, mode: str = "Import") -> None:
    if not HOST_PATTERN.match(host or ""):
        raise ValueError(f"not a host name: {host!r}")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"not a port: {port!r}")
    if not DATABASE_PATTERN.match(database or ""):
        raise ValueError(f"not a database name: {database!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")


def render_pbids(host: str, port: int = 5439, database: str = "dev", mode: str = "DirectQuery") -> str:
    _validate(host, port, database, mode)
    document = {
        "version": "0.1",
        "connections": [
            {
                "details": {"protocol": "amazon-redshift", "address": {"server": f"{host}:{port}", "database": database}},
                "options": {},
                "mode": mode,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def render_queries(host: str, port: int = 5439, database: str = "dev", mode: str = "Import") -> str:
    _validate(host, port, database, mode)
    server = json.dumps(f"{host}:{port}")  # an M text literal has JSON's quoting for these characters
    lines = [
        f"// Power Query M for the sales star, {mode} mode. Paste each query into Power BI Desktop",
        "// (Transform data > New source > Blank query > Advanced editor) or use sales_redshift.pbids.",
        f"// Storage mode: set every table to {mode} in the model view.",
        "",
        "// Query: Source",
        f"let Source = AmazonRedshift.Database({server}, {json.dumps(database)}) in Source",
    ]
    for view in STAR_VIEWS:
        lines += ["", f"// Query: {view}", "let", f'    Reporting = Source{{[Name="reporting"]}}[Data],',
                  f'    {view.capitalize()} = Reporting{{[Name="{view}"]}}[Data]']
        types = COLUMN_TYPES.get(view) or {}
        if mode == "Import" and types:
            pairs = ", ".join(f'{{"{column}", {kind}}}' for column, kind in types.items())
            lines[-1] += ","
            lines.append(f"    Typed = Table.TransformColumnTypes({view.capitalize()}, {{{pairs}}})")
            lines += ["in", "    Typed"]
        else:
            lines += ["in", f"    {view.capitalize()}"]
    return "\n".join(lines) + "\n"


def write_powerbi_files(folder: Path, host: str, port: int = 5439, database: str = "dev") -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "sales_redshift.pbids": render_pbids(host, port, database, "DirectQuery"),
        "queries_import.pq": render_queries(host, port, database, "Import"),
        "queries_directquery.pq": render_queries(host, port, database, "DirectQuery"),
    }
    written = []
    for name, text in files.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


class EndpointError(ValueError):
    """No Redshift endpoint is configured, or AWS could not report it; one line, no secret."""


def configured_endpoint(settings: Any, redshift_client: Optional[Any] = None,
                        serverless_client: Optional[Any] = None) -> tuple[str, int]:
    """(host, port) of the Redshift the settings name; see the module docstring."""
    if settings.aws_redshift_host:
        return settings.aws_redshift_host, settings.aws_redshift_port
    region = settings.aws_region or "us-east-1"
    if settings.aws_redshift_workgroup:
        name = settings.aws_redshift_workgroup
        try:
            if serverless_client is None:
                import boto3

                serverless_client = boto3.client("redshift-serverless", region_name=region)
            endpoint = serverless_client.get_workgroup(workgroupName=name)["workgroup"]["endpoint"]
            return endpoint["address"], int(endpoint.get("port") or settings.aws_redshift_port)
        except Exception as error:  # botocore errors, a workgroup still being created (no endpoint)
            raise EndpointError(f"could not read the endpoint of Redshift Serverless workgroup {name!r} in {region}: "
                                f"{type(error).__name__}: {error}; pass --host") from None
    if settings.aws_redshift_cluster_identifier:
        name = settings.aws_redshift_cluster_identifier
        try:
            if redshift_client is None:
                import boto3

                redshift_client = boto3.client("redshift", region_name=region)
            (cluster,) = redshift_client.describe_clusters(ClusterIdentifier=name)["Clusters"]
            return cluster["Endpoint"]["Address"], int(cluster["Endpoint"].get("Port") or settings.aws_redshift_port)
        except Exception as error:
            raise EndpointError(f"could not read the endpoint of Redshift cluster {name!r} in {region}: "
                                f"{type(error).__name__}: {error}; pass --host") from None
    raise EndpointError(
        "no Redshift endpoint: pass --host, or set SALES_AWS_REDSHIFT_HOST (or SALES_AWS_REDSHIFT_WORKGROUP / "
        "SALES_AWS_REDSHIFT_CLUSTER_IDENTIFIER with SALES_AWS_REGION to look it up)"
    )
