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

# How much of a committed day the project's crawler infers from (``crawler.scan_partition``),
# chosen to do what a Glue crawler does. Sources:
# - https://repost.aws/knowledge-center/glue-crawler-detect-schema: for a JSON file the crawler
#   reads the first 1 MB to infer the schema; when that holds no valid record it reads on, in
#   1 MB steps, up to 10 MB.
# - Glue ``S3Target.SampleSize`` (API reference): "the number of files in each leaf folder to be
#   crawled when crawling sample files in a dataset. If not set, all the files are crawled";
#   1 to 249. A day's run folder is one leaf folder and each landed page one file.
# Glue leaves SampleSize unset; here it defaults to 16 pages, spread over the day, because a
# landed page (1000 orders, about 0.8 MB) fits in Glue's first MB, so "every file" would be every
# byte: 97 s of pure-Python inference for a 1M-order day, against a 90 s budget for the whole
# day. The trade-off (a field that appears only in pages or lines outside the sample is not
# cataloged by that crawl, exactly as with Glue) is stated in the crawler's docstring and README.
SAMPLE_BYTES_PER_PAGE = 1_000_000
MAX_SAMPLE_BYTES_PER_PAGE = 10_000_000
SAMPLE_PAGES = 16

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
