"""The exported Glue crawler configuration is valid for the Glue API and means what we rely on.

Risk guarded: deployment templates carrying a crawler that Glue rejects, or one that deletes
columns/partitions, re-infers each partition's schema, or crawls uncommitted run folders.
"""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters
from moto import mock_aws

from sales_assets.catalog.crawler_config import (
    CLASSIFIER_NAME,
    cloudformation_resources,
    create_classifier_request,
    create_crawler_request,
)

ROLE = "arn:aws:iam::123456789012:role/glue-crawler"


def input_shape(operation):
    client = boto3.client("glue", region_name="us-east-1")
    return client.meta.service_model.operation_model(operation).input_shape


def test_requests_validate_against_the_glue_api_model():
    validate_parameters(create_classifier_request(), input_shape("CreateClassifier"))
    validate_parameters(create_crawler_request("sales-raw", ROLE), input_shape("CreateCrawler"))
    with pytest.raises(ParamValidationError):  # the validator is not vacuous
        validate_parameters({"JsonClassifier": {"Name": "x"}}, input_shape("CreateClassifier"))


def test_policy_never_deletes_and_merges_new_columns():
    request = create_crawler_request("sales-raw", ROLE)
    assert request["SchemaChangePolicy"] == {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"}
    configuration = json.loads(request["Configuration"])
    assert configuration["CrawlerOutput"]["Tables"]["AddOrUpdateBehavior"] == "MergeNewColumns"
    assert configuration["CrawlerOutput"]["Partitions"]["AddOrUpdateBehavior"] == "InheritFromTable"
    assert configuration["Grouping"]["TableGroupingPolicy"] == "CombineCompatibleSchemas"
    # Catalog target: the crawler reads the registered (committed) partition locations only.
    assert request["Targets"] == {"CatalogTargets": [{"DatabaseName": "sales_raw", "Tables": ["sales_orders"]}]}
    assert request["Classifiers"] == [CLASSIFIER_NAME]
    assert create_classifier_request()["JsonClassifier"]["JsonPath"] == "$"


def test_crawler_is_created_in_glue_under_moto():
    with mock_aws():
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_database(DatabaseInput={"Name": "sales_raw"})
        glue.create_crawler(**create_crawler_request("sales-raw", ROLE))
        crawler = glue.get_crawler(Name="sales-raw")["Crawler"]
    assert crawler["Role"] == ROLE
    assert crawler["SchemaChangePolicy"]["DeleteBehavior"] == "LOG"
    assert json.loads(crawler["Configuration"])["CrawlerOutput"]["Tables"]["AddOrUpdateBehavior"] == "MergeNewColumns"
    assert crawler["Targets"]["CatalogTargets"][0]["Tables"] == ["sales_orders"]


def test_cloudformation_resources_mirror_the_api_requests():
    resources = cloudformation_resources("sales-raw", {"Fn::GetAtt": ["CrawlerRole", "Arn"]})
    classifier = resources["SalesRawJsonClassifier"]
    crawler = resources["SalesRawCrawler"]
    assert classifier == {"Type": "AWS::Glue::Classifier", "Properties": create_classifier_request()}
    assert crawler["Type"] == "AWS::Glue::Crawler"
    assert crawler["DependsOn"] == ["SalesRawJsonClassifier"]
    assert crawler["Properties"]["Role"] == {"Fn::GetAtt": ["CrawlerRole", "Arn"]}
    expected = {**create_crawler_request("sales-raw", ROLE), "Role": crawler["Properties"]["Role"]}
    assert crawler["Properties"] == expected
    json.dumps(resources)  # a template must serialize
