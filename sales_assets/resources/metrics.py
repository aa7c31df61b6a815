"""Pipeline metrics: one interface, a structured log line or CloudWatch.

Each materialization becomes one :class:`MaterializationMetrics`: the rows it
holds, the lines it quarantined and how long its step took, with dimensions
``Asset`` (``curated/order_lines``) and ``Stage`` (``raw``, ``catalog``,
``curated``, ``warehouse``). ``local`` writes them as one JSON log line; ``aws``
puts them to CloudWatch under a namespace for the pipeline, where the
deployment's alarms watch them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from abc import ABC, abstractmethod

import dagster as dg
from pydantic import Field

METRIC_ROWS = "Rows"
METRIC_QUARANTINED = "QuarantinedLines"
METRIC_DURATION = "DurationSeconds"
DIMENSION_ASSET = "Asset"
DIMENSION_STAGE = "Stage"
METRICS_LOGGER = "sales_assets.metrics"
# CloudWatch accepts up to 1000 metric data points per put_metric_data call.
CLOUDWATCH_BATCH = 1000


@dataclasses.dataclass(frozen=True)
class MaterializationMetrics:
    """What one materialization of one asset measured. ``timestamp`` is when it happened (UTC)."""

    asset: str
    stage: str
    rows: int | None
    quarantined: int | None
    duration_seconds: float | None
    timestamp: dt.datetime
    partition: str | None = None
    run_id: str | None = None

    def values(self) -> dict[str, tuple[float, str]]:
        """Metric name -> (value, CloudWatch unit); metrics the materialization did not measure are left out."""
        out: dict[str, tuple[float, str]] = {}
        if self.rows is not None:
            out[METRIC_ROWS] = (float(self.rows), "Count")
        if self.quarantined is not None:
            out[METRIC_QUARANTINED] = (float(self.quarantined), "Count")
        if self.duration_seconds is not None:
            out[METRIC_DURATION] = (float(self.duration_seconds), "Seconds")
        return out


class MetricsResource(dg.ConfigurableResource, ABC):
    """Records :class:`MaterializationMetrics`."""

    namespace: str = Field(default="SalesPipeline", description="CloudWatch namespace / log field of the pipeline.")

    @abstractmethod
    def put(self, metrics: list[MaterializationMetrics]) -> None: ...


class LogMetricsResource(MetricsResource):
    """One structured JSON log line per materialization, on the ``sales_assets.metrics`` logger."""

    def put(self, metrics: list[MaterializationMetrics]) -> None:
        logger = logging.getLogger(METRICS_LOGGER)
        for item in metrics:
            record = {
                "namespace": self.namespace,
                "dimensions": {DIMENSION_ASSET: item.asset, DIMENSION_STAGE: item.stage},
                "partition": item.partition,
                "run_id": item.run_id,
                "timestamp": item.timestamp.isoformat(),
                **{name: value for name, (value, _unit) in item.values().items()},
            }
            line = json.dumps(record, sort_keys=True)
            logger.info(line)
            dg.get_dagster_logger().info(f"metrics {line}")


class CloudWatchMetricsResource(MetricsResource):
    """``put_metric_data`` to CloudWatch, dimensions Asset and Stage."""

    region_name: str | None = None
    endpoint_url: str | None = Field(default=None, description="For tests against moto.")

    def put(self, metrics: list[MaterializationMetrics]) -> None:
        import boto3

        data = [
            {
                "MetricName": name,
                "Dimensions": [
                    {"Name": DIMENSION_ASSET, "Value": item.asset},
                    {"Name": DIMENSION_STAGE, "Value": item.stage},
                ],
                "Timestamp": item.timestamp,
                "Value": value,
                "Unit": unit,
            }
            for item in metrics
            for name, (value, unit) in item.values().items()
        ]
        if not data:
            return
        client = boto3.client("cloudwatch", region_name=self.region_name, endpoint_url=self.endpoint_url)
        for start in range(0, len(data), CLOUDWATCH_BATCH):
            client.put_metric_data(Namespace=self.namespace, MetricData=data[start : start + CLOUDWATCH_BATCH])
