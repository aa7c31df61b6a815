"""The exported stack created in moto: its lake bucket, and its roles under moto's IAM enforcement.

Risk guarded: a template whose policies read well and pass the linter (test_iam_policies) but
do not do what they say once deployed and evaluated — an ingest Lambda that can overwrite
curated/, a Redshift COPY role that can read the raw pages, a Glue job or crawler that can
rewrite the raw pages it is supposed to only read (as AWSGlueServiceRole, the managed policy the
Glue roles once carried, allowed for any key containing ``aws-glue-``), a bucket whose default
encryption CloudFormation did not take.

``template.yaml`` exactly as ``export-stepfunctions`` writes it is created as a CloudFormation
stack in moto; each role is assumed through STS and its requests are evaluated by moto's IAM
enforcement (``moto.core.enable_iam_authentication``), against the keys the pipeline writes.

What moto (5.2) enforces, hence what this file proves and what it does not:

- Object requests (PutObject, GetObject, DeleteObject) signed with a role's STS credentials are
  allowed or denied by the Action and Resource of the role's inline and attached policies, the
  resource being the object's ARN: proved here, per role and prefix.
- Default encryption: moto's CloudFormation applies ``BucketEncryption`` and stamps new objects
  with it: proved here (GetBucketEncryption, and HeadObject of what the ingest role wrote).
- Public access block: moto's CloudFormation ignores ``PublicAccessBlockConfiguration`` (its
  ``FakeBucket.create_from_cloudformation_json`` reads only BucketEncryption and Tags) and moto
  enforces no public access block at all, so it stays proved on the template only
  (``test_iam_policies.py::test_lake_bucket_is_private_and_encrypted``).
- Not enforced by moto, so not claimed here: listing (moto lets every role list every prefix,
  whatever its ListBucket ``s3:prefix`` condition says; the conditions are checked on the
  template), trust policies (their principals are AWS services, which no test identity can be;
  the roles are assumed with enforcement off and the trust policies are checked on the
  template), bucket policies (the stack has none) and KMS key policies.

A second stack is created with the optional ``PipesBucket`` parameter set, as for a Dagster
deployment that runs the stack's Glue job (GlueEtlResource): its job role reads the Pipes
context where the resource's own context injector writes it, and nothing else of that bucket.

Moto gaps the fixture works around: its CloudFormation stores inline policies as dicts its
own evaluator cannot read (written back here as JSON, the document otherwise unchanged), and
it keeps a list item that resolved to ``AWS::NoValue`` as ``None`` where CloudFormation drops
it (dropped here, exactly those). It also drops a role's ``ManagedPolicyArns``; the template
attaches none (test_iam_policies checks it), and the fixture refuses a role that has one rather
than test it without its managed policies.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import warnings
from collections.abc import Callable, Iterator

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import enable_iam_authentication

from sales_assets.definitions import defs
from sales_assets.deploy import export
from sales_assets.ingest import landing
from sales_assets.resources.etl import GlueEtlResource
from sales_assets.transform import curated_manifest
from sales_assets.transform.assets import curated_lease_key
from sales_assets_tests.deploy.test_iam_policies import ACCOUNT, ARTIFACTS, PIPES, REGION

DAY = dt.date(2026, 11, 20)
RUN = "0123456789abcdef0123456789abcdef"
# Keys the pipeline writes: a landed page, the raw manifest and lease; a curated part file, its
# record and the transform's lease.
RAW_PAGE = landing.run_prefix(DAY, RUN) + "page-00001.jsonl"
RAW_KEYS = (RAW_PAGE, landing.manifest_key(DAY), landing.lease_key(DAY))
CURATED_PART = curated_manifest.day_prefix("order_lines", DAY) + f"part-00000-{RUN}.parquet"
CURATED_KEYS = (CURATED_PART, curated_manifest.record_key("order_lines", DAY), curated_lease_key(DAY))
ROLES = ("IngestRole", "GlueJobRole", "CrawlerRole", "RedshiftCopyRole")
PARAMETERS = {
    "ArtifactBucket": ARTIFACTS, "SourceUrl": "https://sales.example.com",
    "SourceTokenSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:sales-token-AbCdEf",
    "RedshiftWorkgroup": "sales-wg",
}


class Stack:
    """The created stack: its lake bucket's name, an admin S3 client, an S3 client per role
    (signed with the role's STS credentials) and each role's policy documents as moto holds them."""

    def __init__(self, bucket: str, admin, roles: dict, documents: dict[str, list[dict]]):
        self.bucket, self.admin, self._roles, self.documents = bucket, admin, roles, documents

    def as_role(self, logical_id: str):
        return self._roles[logical_id]


@pytest.fixture(scope="module")
def stacks(tmp_path_factory) -> Iterator[dict[str, Stack]]:
    """``"sales"``: the stack with the required parameters only; ``"sales-pipes"``: the same
    template with ``PipesBucket`` set (the bucket exists, as a Dagster deployment's would)."""
    exported = export.export(defs, tmp_path_factory.mktemp("export"))
    body = exported.template_path.read_text()
    resources = yaml.safe_load(body)["Resources"]
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": REGION}.items():
            env.setenv(name, value)
        with mock_aws():
            s3 = boto3.client("s3", region_name=REGION)
            for bucket in (ARTIFACTS, PIPES):
                s3.create_bucket(Bucket=bucket)
            variants = (("sales", PARAMETERS), ("sales-pipes", {**PARAMETERS, "PipesBucket": PIPES}))
            yield {name: _create_stack(name, body, resources, s3, parameters) for name, parameters in variants}


@pytest.fixture(scope="module")
def stack(stacks) -> Stack:
    return stacks["sales"]


def _create_stack(name: str, body: str, resources: dict, s3, parameters: dict[str, str]) -> Stack:
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    with warnings.catch_warnings():  # moto has no CloudFormation for Glue and alarms: skipped
        warnings.filterwarnings("ignore", "Tried to parse AWS::", UserWarning)
        cloudformation.create_stack(
            StackName=name, TemplateBody=body, Capabilities=["CAPABILITY_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
        [created] = cloudformation.describe_stacks(StackName=name)["Stacks"]
        assert created["StackStatus"] == "CREATE_COMPLETE", created
        physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                    for r in cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]}
    iam = boto3.client("iam", region_name=REGION)
    documents = {role: _carry_the_templates_policies(iam, physical[role], resources[role]) for role in ROLES}
    # Assumed before enforcement is on: the trust policies admit AWS services only.
    sts = boto3.client("sts", region_name=REGION)
    roles = {}
    for role in ROLES:
        arn = iam.get_role(RoleName=physical[role])["Role"]["Arn"]
        credentials = sts.assume_role(RoleArn=arn, RoleSessionName=f"test-{role}")["Credentials"]
        roles[role] = boto3.client("s3", region_name=REGION, aws_access_key_id=credentials["AccessKeyId"],
                                   aws_secret_access_key=credentials["SecretAccessKey"],
                                   aws_session_token=credentials["SessionToken"])
    bucket = physical["LakeBucket"]
    for key in RAW_KEYS + CURATED_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=b"seeded by the test")
    return Stack(bucket, s3, roles, documents)


def _carry_the_templates_policies(iam, role_name: str, resource: dict) -> list[dict]:
    """Make the moto role carry exactly what the template gives it (see the module docstring);
    its policy documents."""
    assert not resource["Properties"].get("ManagedPolicyArns"), f"{role_name}: moto would not attach it"
    documents = []
    for policy in resource["Properties"]["Policies"]:
        stored = iam.get_role_policy(RoleName=role_name, PolicyName=policy["PolicyName"])["PolicyDocument"]
        # What moto's CloudFormation resolved, rendered by its GetRolePolicy as a Python repr.
        document = stored if isinstance(stored, dict) else ast.literal_eval(stored)
        written = policy["PolicyDocument"]["Statement"]
        assert document["Statement"] and len(document["Statement"]) == len(written)
        # Only a statement the template wrote as Fn::If may have resolved to AWS::NoValue (None).
        assert all(s is not None or "Fn::If" in w for s, w in zip(document["Statement"], written))
        document["Statement"] = [s for s in document["Statement"] if s is not None]
        iam.put_role_policy(RoleName=role_name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(document))
        documents.append(document)
    return documents


def _allowed(call: Callable[[], object]) -> bool:
    """Whether moto's IAM enforcement lets the call through; any other error fails the test."""
    with enable_iam_authentication():
        try:
            call()
        except ClientError as error:
            if error.response["Error"]["Code"] != "AccessDenied":
                raise
            return False
    return True


def _put(stack: Stack, role: str, key: str) -> bool:
    return _allowed(lambda: stack.as_role(role).put_object(Bucket=stack.bucket, Key=key, Body=_body(role)))


def _body(role: str) -> bytes:
    return f"written by {role}".encode()


def _content(stack: Stack, key: str) -> bytes:
    return stack.admin.get_object(Bucket=stack.bucket, Key=key)["Body"].read()


def _get(stack: Stack, role: str, key: str) -> bool:
    return _allowed(lambda: stack.as_role(role).get_object(Bucket=stack.bucket, Key=key)["Body"].read())


def _delete(stack: Stack, role: str, key: str) -> bool:
    return _allowed(lambda: stack.as_role(role).delete_object(Bucket=stack.bucket, Key=key))


def test_the_stacks_lake_bucket_encrypts_what_the_ingest_role_writes(stack):
    [rule] = stack.admin.get_bucket_encryption(Bucket=stack.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    key = landing.run_prefix(DAY, "encrypted") + "page-00001.jsonl"
    assert _put(stack, "IngestRole", key)
    assert stack.admin.head_object(Bucket=stack.bucket, Key=key)["ServerSideEncryption"] == "aws:kms"


def test_the_ingest_role_writes_raw_but_not_curated(stack):
    for key in RAW_KEYS:
        assert _get(stack, "IngestRole", key) and _put(stack, "IngestRole", key), key
    own = landing.run_prefix(DAY, "ingest-own") + "page-00001.jsonl"  # a run folder it cleans up
    assert _put(stack, "IngestRole", own) and _delete(stack, "IngestRole", own)
    for key in CURATED_KEYS:
        assert not _put(stack, "IngestRole", key), key
        assert not _get(stack, "IngestRole", key), key
        assert not _delete(stack, "IngestRole", key), key
    assert all(_content(stack, key) != _body("IngestRole") for key in CURATED_KEYS)


def test_the_copy_role_reads_curated_but_not_raw(stack):
    for key in CURATED_KEYS[:2]:  # the part file and the record COPY's manifest is built from
        assert _get(stack, "RedshiftCopyRole", key), key
        assert not _put(stack, "RedshiftCopyRole", key), key
        assert not _delete(stack, "RedshiftCopyRole", key), key
    for key in RAW_KEYS:
        assert not _get(stack, "RedshiftCopyRole", key), key


def test_the_glue_job_role_reads_raw_and_writes_curated_only(stack):
    for key in RAW_KEYS:
        assert _get(stack, "GlueJobRole", key), key
        assert not _put(stack, "GlueJobRole", key), key
        assert not _delete(stack, "GlueJobRole", key), key
    for key in CURATED_KEYS:  # its files, records and its own day lease
        assert _put(stack, "GlueJobRole", key) and _get(stack, "GlueJobRole", key), key
    own = curated_lease_key(DAY + dt.timedelta(days=1))  # a lease it takes and releases
    assert _put(stack, "GlueJobRole", own) and _delete(stack, "GlueJobRole", own)
    assert all(_content(stack, key) != _body("GlueJobRole") for key in RAW_KEYS)


def test_the_crawler_role_reads_raw_only(stack):
    assert _get(stack, "CrawlerRole", RAW_PAGE)
    assert not _put(stack, "CrawlerRole", RAW_PAGE) and not _delete(stack, "CrawlerRole", RAW_PAGE)
    for key in CURATED_KEYS:
        assert not _get(stack, "CrawlerRole", key), key


def test_no_raw_key_is_writable_by_the_glue_roles(stack):
    # A key with an "aws-glue-" segment: AWSGlueServiceRole allowed writing and deleting
    # arn:aws:s3:::*/*aws-glue-*/*, in any bucket and under any prefix.
    key = landing.run_prefix(DAY, "aws-glue-temporary") + "page-00001.jsonl"
    stack.admin.put_object(Bucket=stack.bucket, Key=key, Body=b"seeded by the test")
    for role in ("GlueJobRole", "CrawlerRole"):
        assert not _put(stack, role, key), role
        assert not _delete(stack, role, key), role
    assert _content(stack, key) == b"seeded by the test"
    for role in ("GlueJobRole", "CrawlerRole"):  # nor any key of raw/, whatever its name
        for key in RAW_KEYS:
            assert not _put(stack, role, key) and not _delete(stack, role, key), (role, key)


def _pipes_context():
    """Writes a Pipes context the way a Dagster run does (GlueEtlResource's own injector, its
    default key prefix) and returns the {bucket, key} params the job is handed, while it exists."""
    resource = GlueEtlResource(job_name="sales-curate", pipes_bucket=PIPES, region_name=REGION)
    return resource.context_injector().inject_context({"asset_keys": ["curated/order_lines"], "run_id": RUN})


def _get_from(stack: Stack, role: str, bucket: str, key: str) -> bool:
    return _allowed(lambda: stack.as_role(role).get_object(Bucket=bucket, Key=key)["Body"].read())


def test_with_a_pipes_bucket_the_glue_job_role_reads_the_pipes_context_and_nothing_else_there(stacks):
    stack = stacks["sales-pipes"]
    others = ("context.json", "secrets/context.json", "dagster-pipesX/context.json", "other/dagster-pipes/context.json")
    for key in others:
        stack.admin.put_object(Bucket=PIPES, Key=key, Body=b"seeded by the test")
    with _pipes_context() as params:
        assert params["bucket"] == PIPES
        assert _get_from(stack, "GlueJobRole", PIPES, params["key"])
        # Read only: the job's Pipes messages go to stdout (CloudWatch Logs), never to this bucket.
        assert not _allowed(lambda: stack.as_role("GlueJobRole").put_object(Bucket=PIPES, Key=params["key"], Body=b"x"))
        assert not _allowed(lambda: stack.as_role("GlueJobRole").delete_object(Bucket=PIPES, Key=params["key"]))
        for role in ("IngestRole", "CrawlerRole", "RedshiftCopyRole"):  # the job role alone
            assert not _get_from(stack, role, PIPES, params["key"]), role
    for key in others:
        assert not _get_from(stack, "GlueJobRole", PIPES, key), key
    # The parameter adds to the role; its lake grants are those of the stack without it.
    assert _get(stack, "GlueJobRole", RAW_PAGE) and not _put(stack, "GlueJobRole", RAW_PAGE)


def test_without_a_pipes_bucket_the_glue_job_role_has_no_statement_on_any_pipes_bucket(stacks):
    stack, with_pipes = stacks["sales"], stacks["sales-pipes"]
    [document] = stack.documents["GlueJobRole"]
    [document_with_pipes] = with_pipes.documents["GlueJobRole"]
    assert len(document["Statement"]) == len(document_with_pipes["Statement"]) - 1
    assert PIPES not in json.dumps(document) and PIPES in json.dumps(document_with_pipes)
    assert "dagster-pipes" not in json.dumps(document)
    with _pipes_context() as params:
        assert not _get_from(stack, "GlueJobRole", PIPES, params["key"])
        assert _get_from(with_pipes, "GlueJobRole", PIPES, params["key"])  # the same object, the other stack
