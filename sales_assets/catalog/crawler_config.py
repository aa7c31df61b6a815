"""The configuration of a real Glue crawler for raw/sales_orders, for the deployment templates.

Pure functions returning dicts: boto3 request kwargs (``create_classifier`` / ``create_crawler``)
and the equivalent CloudFormation resources, so the Step Functions / CloudFormation exporter
and a one-off boto3 script configure the same crawler.

Why these settings (``crawl_with_glue_crawler`` relies on them):

- JSON classifier with JsonPath ``$``: each line of a JSON Lines page is one record (``$[*]``
  would be for a page holding one JSON array).
- Catalog target (the table ``sales_raw.sales_orders``), not an S3 path: the crawler then crawls
  the locations of the partitions the project registered, i.e. committed run folders only; an S3
  target would also read uncommitted and superseded ``run_id=`` folders and make ``run_id`` a
  partition key. Glue requires ``DeleteBehavior=LOG`` for catalog targets.
- ``SchemaChangePolicy``: ``UPDATE_IN_DATABASE`` (changes are written) and ``LOG`` (nothing is
  ever deleted), the safe policy the project's own crawler follows.
- ``Configuration``: tables ``MergeNewColumns`` (add new columns, keep the others), partitions
  ``InheritFromTable`` (every partition reads with the table's schema), and grouping
  ``CombineCompatibleSchemas`` (one table, not one per folder).
- ``RecrawlPolicy CRAWL_EVERYTHING``: re-run days replace data in place, so incremental
  "new folders only" crawls would miss them (and catalog targets require it).
"""
from __future__ import annotations

import json

CLASSIFIER_NAME = "sales-raw-json-lines"
JSON_PATH = "$"
CRAWLER_CONFIGURATION = {
    "Version": 1.0,
    "CrawlerOutput": {
        "Tables": {"AddOrUpdateBehavior": "MergeNewColumns"},
        "Partitions": {"AddOrUpdateBehavior": "InheritFromTable"},
    },
    "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"},
}
SCHEMA_CHANGE_POLICY = {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"}
RECRAWL_POLICY = {"RecrawlBehavior": "CRAWL_EVERYTHING"}


def create_classifier_request(name: str = CLASSIFIER_NAME) -> dict:
    """Keyword arguments of boto3 ``glue.create_classifier`` for the JSON Lines classifier."""
    return {"JsonClassifier": {"Name": name, "JsonPath": JSON_PATH}}


def create_crawler_request(
    name: str,
    role_arn: str,
    database: str = "sales_raw",
    table: str = "sales_orders",
    classifier_name: str = CLASSIFIER_NAME,
) -> dict:
    """Keyword arguments of boto3 ``glue.create_crawler``; no schedule (the pipeline starts it)."""
    return {
        "Name": name,
        "Role": role_arn,
        "DatabaseName": database,
        "Description": f"Merges the schema of committed raw/sales_orders partitions into {database}.{table}.",
        "Targets": {"CatalogTargets": [{"DatabaseName": database, "Tables": [table]}]},
        "Classifiers": [classifier_name],
        "SchemaChangePolicy": dict(SCHEMA_CHANGE_POLICY),
        "RecrawlPolicy": dict(RECRAWL_POLICY),
        "Configuration": json.dumps(CRAWLER_CONFIGURATION, sort_keys=True),
    }


def cloudformation_resources(
    name: str,
    role_arn: str | dict,
    database: str = "sales_raw",
    table: str = "sales_orders",
    classifier_name: str = CLASSIFIER_NAME,
    logical_prefix: str = "SalesRaw",
) -> dict:
    """``AWS::Glue::Classifier`` and ``AWS::Glue::Crawler`` resources (a template's Resources part).

    ``role_arn`` may be a string or an intrinsic such as ``{"Fn::GetAtt": [...]}``.
    """
    crawler = create_crawler_request(name, "", database, table, classifier_name)
    classifier_id = f"{logical_prefix}JsonClassifier"
    return {
        classifier_id: {
            "Type": "AWS::Glue::Classifier",
            "Properties": create_classifier_request(classifier_name),
        },
        f"{logical_prefix}Crawler": {
            "Type": "AWS::Glue::Crawler",
            "DependsOn": [classifier_id],
            "Properties": {**crawler, "Role": role_arn},
        },
    }
