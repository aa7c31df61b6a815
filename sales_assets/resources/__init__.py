"""One module per outside system; :func:`build_resources` picks the set for an environment."""

from __future__ import annotations

import dagster as dg

from sales_assets.settings import Settings


def build_resources(settings: Settings) -> dict[str, object]:
    """The resource set for ``settings.env``: the one place the environment is branched on."""
    from dagster_aws.s3 import S3Resource

    from sales_assets.resources.alerts import LocalAlertsResource, SnsAlertsResource
    from sales_assets.resources.catalog import GlueCatalogResource, LocalCatalogResource
    from sales_assets.resources.etl import GlueEtlResource, LocalSparkEtlResource
    from sales_assets.resources.lake import LocalLakeResource, S3LakeResource
    from sales_assets.resources.metrics import CloudWatchMetricsResource, LogMetricsResource
    from sales_assets.resources.source import SalesSourceResource
    from sales_assets.resources.warehouse import DuckDBWarehouseResource

    # Secrets go in as EnvVar so the UI's resource view shows the variable's name, not its value.
    source = SalesSourceResource(
        base_url=settings.source_url,
        token=dg.EnvVar("SALES_SOURCE_TOKEN") if settings.source_token else None,
        demo_orders_per_day=settings.demo_orders_per_day,
    )
    # The webhook URL embeds its credential: an EnvVar, like the other secrets.
    local_alerts = LocalAlertsResource(
        path=settings.alerts_path,
        webhook_url=dg.EnvVar("SALES_ALERT_WEBHOOK_URL") if settings.alert_webhook_url else None,
        ui_base_url=settings.ui_base_url,
    )
    if settings.env == "local":
        return {
            "alerts": local_alerts,
            "metrics": LogMetricsResource(namespace=settings.metrics_namespace),
            "source": source,
            "lake": LocalLakeResource(root=settings.lake_root),
            "catalog": LocalCatalogResource(path=settings.catalog_path),
            "etl": LocalSparkEtlResource(),
            "warehouse": DuckDBWarehouseResource(path=settings.warehouse_path),
        }
    return {
        # Without a topic, alerts still land in the alerts file rather than nowhere.
        "alerts": SnsAlertsResource(
            topic_arn=settings.aws_sns_topic_arn, region_name=settings.aws_region, ui_base_url=settings.ui_base_url
        )
        if settings.aws_sns_topic_arn
        else local_alerts,
        "metrics": CloudWatchMetricsResource(namespace=settings.metrics_namespace, region_name=settings.aws_region),
        "source": source,
        "lake": S3LakeResource.from_uri(settings.lake_root, S3Resource(region_name=settings.aws_region)),
        "catalog": GlueCatalogResource(region_name=settings.aws_region, crawler_name=settings.aws_glue_crawler),
        "etl": GlueEtlResource(
            job_name=settings.aws_glue_job,
            pipes_bucket=settings.aws_pipes_bucket or settings.lake_root[len("s3://") :].split("/", 1)[0],
            region_name=settings.aws_region,
        ),
        "warehouse": _redshift_warehouse(settings),
    }


def _redshift_warehouse(settings: Settings) -> object:
    """The aws warehouse: a redshift_connector connection, or the Data API
    (SALES_AWS_REDSHIFT_ACCESS=data_api) when there is no network path to the cluster."""
    from sales_assets.resources.warehouse import (
        RedshiftDataApiResource,
        RedshiftDataApiWarehouseResource,
        RedshiftWarehouseResource,
    )

    region = settings.aws_region or "us-east-1"
    if settings.aws_redshift_access == "data_api":
        return RedshiftDataApiWarehouseResource(
            data_api=RedshiftDataApiResource(
                database=settings.aws_redshift_database,
                workgroup=settings.aws_redshift_workgroup,
                cluster_identifier=settings.aws_redshift_cluster_identifier,
                db_user=settings.aws_redshift_user,
                secret_arn=settings.aws_redshift_secret_arn,
                region=region,
            ),
            iam_role_arn=settings.aws_redshift_iam_role_arn or "",
        )
    return RedshiftWarehouseResource(
        host=settings.aws_redshift_host,
        port=settings.aws_redshift_port,
        database=settings.aws_redshift_database,
        user=settings.aws_redshift_user,
        password=dg.EnvVar("SALES_AWS_REDSHIFT_PASSWORD") if settings.aws_redshift_password else None,
        secret_arn=settings.aws_redshift_secret_arn,
        workgroup=settings.aws_redshift_workgroup,
        cluster_identifier=settings.aws_redshift_cluster_identifier,
        iam_role_arn=settings.aws_redshift_iam_role_arn or "",
        region=region,
    )
