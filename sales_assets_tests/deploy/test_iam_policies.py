"""IAM and bucket configuration of the exported CloudFormation template.

Risk guarded: a stack that deploys but grants too much or too little — a policy parliament
flags (unknown actions, resource ARNs that do not fit the action, malformed conditions), a
role reaching outside its lake prefixes (the Lambda writing curated/, Glue writing raw/, the
Redshift COPY role reading raw/), a Step Functions role whose actions drift from what the
state machine's states actually call, a ``Resource: "*"`` on an action that could be scoped,
a lake bucket that is public or unencrypted, and a role carrying an AWS managed policy (whose
grants none of these checks would see: AWSGlueServiceRole lets a Glue role write any lake key
containing ``aws-glue-``) or Glue roles reaching past their one catalog table and log groups;
and a role that reads keys which may be missing without the unconditioned ListBucket that makes
real S3 answer 404 rather than 403 for them (a free lease or an uncommitted day would read as
access denied).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re

import parliament
import pytest

from sales_assets.definitions import defs
from sales_assets.deploy import asl, template
from sales_assets.ingest import landing
from sales_assets.resources.etl import PIPES_KEY_PREFIX, GlueEtlResource
from sales_assets.transform import curated_manifest
from sales_assets.transform.assets import curated_lease_key

ACCOUNT, REGION = "123456789012", "us-east-1"
LAKE, ARTIFACTS, PIPES = "sales-lake", "sales-artifacts", "sales-pipes"
# Sample values for every Ref / ${...} the template uses (parameters, pseudo parameters, resources).
REFS = {
    "AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::StackName": "sales",
    "LakeBucket": LAKE, "ArtifactBucket": ARTIFACTS,
    "SourceTokenSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:sales-token-AbCdEf",
    "AlertTopic": f"arn:aws:sns:{REGION}:{ACCOUNT}:sales-alerts",
    "StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:sales-sales-pipeline",
    "SalesRawCrawler": "sales-raw-sales-orders", "CurateJob": "sales-curate",
    "RedshiftWorkgroup": "sales-wg", "RedshiftDatabase": "dev", "MetricsNamespace": "SalesPipeline",
    "PipesBucket": PIPES,
    # IAM policy variables are not CloudFormation's: Fn::Sub leaves ${aws:...} alone only when
    # written ${!aws:...}; the template writes them outside Fn::Sub, so they never reach here.
}
ARNS = {  # Fn::GetAtt [X, Arn] by resource type
    "AWS::IAM::Role": lambda name: f"arn:aws:iam::{ACCOUNT}:role/sales-{name}",
    "AWS::Lambda::Function": lambda name: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sales-{name}",
    "AWS::KMS::Key": lambda name: f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}
# Step Functions' optimized integrations -> the IAM actions AWS documents for them
# ("IAM policies for calling ..." in the Step Functions developer guide); .sync adds the polling
# and stop calls. aws-sdk:<service>:<action> integrations map mechanically (see _actions_of).
OPTIMIZED = {
    "lambda:invoke": {"lambda:InvokeFunction"},
    "sns:publish": {"sns:Publish"},
    "glue:startJobRun.sync": {"glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"},
}
# Calls the states make implicitly: the Data API gets temporary database credentials for the
# workgroup it was given (WorkgroupName) with the caller's identity.
IMPLIED = {"redshift-data:BatchExecuteStatement": {"redshift-serverless:GetCredentials"}}
OBJECT_WRITE = {"s3:PutObject", "s3:DeleteObject"}
BUCKET_LEVEL = {"s3:ListBucket", "s3:GetBucketLocation"}  # checked apart from object access
# Job arguments that would need more than GlueJobRole holds (a temp dir or Spark event logs in
# S3, metrics, the catalog, custom log groups): switching one on means widening the role.
GLUE_ARGUMENTS_BEYOND_THE_ROLE = (
    "--TempDir", "--enable-metrics", "--enable-observability-metrics", "--enable-spark-ui",
    "--spark-event-logs-path", "--enable-glue-datacatalog", "--custom-logGroup-prefix",
    "--enable-continuous-cloudwatch-log", "--continuous-log-logGroup", "--job-bookmark-option",
)


# The template's conditions for the sample stack: PipesBucket is given, so the checks below see
# every statement a role can hold; test_glue_job_reads_no_pipes_bucket_without_the_parameter
# resolves the other branch.
CONDITIONS = {template.PIPES_BUCKET_CONDITION: True}
_NO_VALUE = object()  # Ref AWS::NoValue: CloudFormation drops the list item or property


@pytest.fixture(scope="module")
def definition() -> dict:
    return asl.build_state_machine(asl.pipeline_steps(defs))


@pytest.fixture(scope="module")
def stack(definition) -> dict:
    return template.build_template(definition)


def resolve(value, resources: dict, conditions: dict | None = None):
    """The value with every CloudFormation intrinsic replaced by a sample (``Fn::If`` by the
    branch ``conditions`` picks, default CONDITIONS); unknown names fail."""
    conditions = CONDITIONS if conditions is None else conditions
    if isinstance(value, list):
        return [v for v in (resolve(item, resources, conditions) for item in value) if v is not _NO_VALUE]
    if not isinstance(value, dict):
        return value
    if value == {"Ref": "AWS::NoValue"}:
        return _NO_VALUE
    if set(value) == {"Fn::If"}:
        name, true_value, false_value = value["Fn::If"]
        return resolve(true_value if conditions[name] else false_value, resources, conditions)
    if set(value) == {"Ref"}:
        return REFS[value["Ref"]]
    if set(value) == {"Fn::Sub"}:
        return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: REFS[m.group(1)], value["Fn::Sub"])
    if set(value) == {"Fn::GetAtt"}:
        name, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn", value
        return ARNS[resources[name]["Type"]](name)
    assert not any(k.startswith("Fn::") for k in value), value
    resolved = {k: resolve(v, resources, conditions) for k, v in value.items()}
    return {k: v for k, v in resolved.items() if v is not _NO_VALUE}


def policies(stack: dict, key_policies: bool = False, conditions: dict | None = None) -> dict[str, dict]:
    """``Role/policy`` -> resolved permissions policy, for every role; with ``key_policies`` also
    ``Key/KeyPolicy`` for every KMS key (a resource policy: its admin statement is ``kms:*``)."""
    resources = stack["Resources"]
    out = {}
    for name, resource in resources.items():
        assert resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy"), (
            f"{name}: extend this test to the new policy resource type")
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                out[f"{name}/{policy['PolicyName']}"] = resolve(policy["PolicyDocument"], resources, conditions)
        if key_policies and resource["Type"] == "AWS::KMS::Key":
            out[f"{name}/KeyPolicy"] = resolve(resource["Properties"]["KeyPolicy"], resources)
    return out


def statements(document: dict) -> list[dict]:
    return [{**s, "Action": _list(s["Action"]), "Resource": _list(s["Resource"])} for s in document["Statement"]]


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


def role_statements(stack: dict, role: str, conditions: dict | None = None) -> list[dict]:
    [document] = [d for key, d in policies(stack, conditions=conditions).items() if key.startswith(role + "/")]
    return statements(document)


def grants(stack: dict, role: str, conditions: dict | None = None) -> dict[str, set[str]]:
    """action -> resources the role's Allow statements name."""
    out: dict[str, set[str]] = {}
    for s in role_statements(stack, role, conditions):
        assert s["Effect"] == "Allow"
        for action in s["Action"]:
            out.setdefault(action, set()).update(s["Resource"])
    return out


def _privilege(action: str) -> dict:
    prefix, name = action.split(":")
    service = next(s for s in parliament.iam_definition if s["prefix"] == prefix)
    return next(p for p in service["privileges"] if p["privilege"] == name)


def test_parliament_finds_nothing_in_any_policy(stack):
    found = policies(stack, key_policies=True)
    assert {k.split("/")[0] for k in found} == {
        "IngestRole", "CrawlerRole", "GlueJobRole", "RedshiftCopyRole", "StateMachineRole", "ScheduleRole", "AlertKey"}
    for key, document in found.items():
        findings = parliament.analyze_policy_string(json.dumps(document)).findings
        if key.endswith("/KeyPolicy"):
            # In a key policy "Resource": "*" means the key itself (AWS requires it so); every
            # other finding still counts.
            findings = [f for f in findings if f.issue != "RESOURCE_STAR"]
        assert not findings, f"{key}: " + "; ".join(f"{f.issue} {f.detail} {f.location}" for f in findings)


def test_parliament_does_flag_a_bad_policy():
    # The linter runs and fails here: an unknown action and a resource that fits no action.
    bad = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObjekt", "s3:PutObject"], "Resource": f"arn:aws:s3:::{LAKE}"}]}
    assert parliament.analyze_policy_string(json.dumps(bad)).findings


def test_no_wildcard_action_and_star_resources_only_where_the_action_has_no_resource_type(stack):
    for key, document in policies(stack).items():
        for s in statements(document):
            assert all("*" not in a for a in s["Action"]), key
            if "*" in s["Resource"]:
                for action in s["Action"]:
                    types = [t["resource_type"] for t in _privilege(action)["resource_types"]]
                    assert types == [""], f"{key}: {action} can be scoped to {types}, not *"
                    assert s.get("Condition"), f"{key}: {action} on * without a condition"


def test_alarms_can_publish_to_the_encrypted_alert_topic(stack):
    # alias/aws/sns would encrypt the topic with a key CloudWatch may not use: alarms never arrive.
    resources = stack["Resources"]
    assert resources["AlertTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "AlertKey"}
    key_policy = resolve(resources["AlertKey"]["Properties"]["KeyPolicy"], resources)
    cloudwatch = [s for s in statements(key_policy) if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch and {"kms:Decrypt", "kms:GenerateDataKey"} <= set(cloudwatch[0]["Action"])
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": "AlertTopic"}]
               for a in resources.values() if a["Type"] == "AWS::CloudWatch::Alarm")


def test_lake_bucket_is_private_and_encrypted(stack):
    bucket = stack["Resources"]["LakeBucket"]["Properties"]
    block = bucket["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
                     "RestrictPublicBuckets": True}
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("aws:kms", "AES256")
    assert "AccessControl" not in bucket  # no canned ACL (public-read and the like)
    assert bucket["LifecycleConfiguration"]["Rules"]


def _lake(prefix: str) -> str:
    return f"arn:aws:s3:::{LAKE}/{prefix}*"


# A ListBucket grant without an s3:prefix condition: any key name of the bucket (see
# test_roles_reading_keys_that_may_be_missing_list_the_lake_without_a_prefix_condition).
ANY_KEY = "<any key, unconditioned>"


def _listing(stack: dict, role: str) -> set[str]:
    """The s3:prefix patterns the role may list the lake with, or {ANY_KEY}; ListBucket on
    another bucket, or under any other condition, fails the test."""
    prefixes: set[str] = set()
    for s in role_statements(stack, role):
        if "s3:ListBucket" in s["Action"]:
            assert s["Action"] == ["s3:ListBucket"] and s["Resource"] == [f"arn:aws:s3:::{LAKE}"], (role, s)
            if "Condition" not in s:
                prefixes.add(ANY_KEY)
                continue
            assert s["Condition"].keys() == {"StringLike"} and s["Condition"]["StringLike"].keys() == {"s3:prefix"}
            prefixes |= set(s["Condition"]["StringLike"]["s3:prefix"])
    return prefixes


def _s3(grants_: dict[str, set[str]]) -> dict[str, set[str]]:
    """Object-level S3 grants (bucket-level ones are checked by _listing and _bucket_level)."""
    return {a: r for a, r in grants_.items() if a.startswith("s3:") and a not in BUCKET_LEVEL}


def _bucket_level(grants_: dict[str, set[str]]) -> dict[str, set[str]]:
    return {a: r for a, r in grants_.items() if a in BUCKET_LEVEL - {"s3:ListBucket"}}


def test_ingest_lambda_writes_raw_only(stack):
    s3 = _s3(grants(stack, "IngestRole"))
    assert s3 and all(r == {_lake("raw/")} for r in s3.values())
    assert OBJECT_WRITE & s3.keys()
    assert _listing(stack, "IngestRole") == {ANY_KEY}


def test_glue_job_reads_raw_and_writes_curated_only(stack):
    s3 = _s3(grants(stack, "GlueJobRole"))
    for action in OBJECT_WRITE:
        assert s3[action] == {_lake("curated/")}, action
    assert s3["s3:GetObject"] == {_lake("raw/"), _lake("curated/"),
                                  f"arn:aws:s3:::{ARTIFACTS}/artifacts/glue/*",  # its own script
                                  f"arn:aws:s3:::{PIPES}/{PIPES_KEY_PREFIX}*"}  # Dagster's Pipes context
    assert _listing(stack, "GlueJobRole") == {ANY_KEY}
    # The script the role may read is the one the job runs.
    location = resolve(stack["Resources"]["CurateJob"]["Properties"]["Command"]["ScriptLocation"],
                       stack["Resources"])
    assert location.startswith(f"s3://{ARTIFACTS}/artifacts/glue/")


def test_glue_job_reads_only_the_pipes_context_prefix_and_only_when_given_a_pipes_bucket(stack):
    pipes = f"arn:aws:s3:::{PIPES}/"
    with_bucket = [s for s in role_statements(stack, "GlueJobRole") if any(r.startswith(pipes) for r in s["Resource"])]
    assert with_bucket == [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [pipes + PIPES_KEY_PREFIX + "*"]}]
    # The prefix is the one GlueEtlResource's context injector writes under, by default.
    assert GlueEtlResource.model_fields["pipes_key_prefix"].default == PIPES_KEY_PREFIX
    assert PIPES_KEY_PREFIX.endswith("/") and "*" not in PIPES_KEY_PREFIX
    # The statement exists exactly when the PipesBucket parameter is not empty.
    assert stack["Parameters"]["PipesBucket"]["Default"] == ""
    assert stack["Conditions"][template.PIPES_BUCKET_CONDITION] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PipesBucket"}, ""]}]}
    without = role_statements(stack, "GlueJobRole", {template.PIPES_BUCKET_CONDITION: False})
    assert len(without) == len(role_statements(stack, "GlueJobRole")) - 1
    assert not [s for s in without if any("PipesBucket" in r or r.startswith(pipes) for r in s["Resource"])]
    assert _s3(grants(stack, "GlueJobRole", {template.PIPES_BUCKET_CONDITION: False}))["s3:GetObject"] == {
        _lake("raw/"), _lake("curated/"), f"arn:aws:s3:::{ARTIFACTS}/artifacts/glue/*"}


def test_pipes_bucket_parameter_takes_a_bucket_name_only(stack):
    # The name lands in the grant's ARN: "*" or "a/b" would widen it past one bucket's prefix.
    pattern = re.compile(stack["Parameters"]["PipesBucket"]["AllowedPattern"])
    for accepted in ("", "sales-pipes", "my.pipes.bucket", "abc"):
        assert pattern.fullmatch(accepted), accepted
    for rejected in ("*", "sales-*", "a/b", "bucket/dagster-pipes", "UPPER", "ab", "-lead"):
        assert not pattern.fullmatch(rejected), rejected


# Roles whose code GETs or HEADs lake keys that may legitimately be missing. S3 answers such a
# request with 403 AccessDenied instead of 404 unless the caller holds s3:ListBucket on the
# bucket (GetObject / HeadObject API reference, "Permissions"), and a GET or HEAD carries no
# s3:prefix, so a prefix-scoped ListBucket never applies to it: "absent" would read as "denied".
# moto answers 404 whatever the grant, so this holds on the template only.
READS_KEYS_THAT_MAY_BE_MISSING = {
    "IngestRole": "the day's raw _lease.json (absent unless a run holds the day) and _manifest.json "
                  "(absent until the day's first commit)",
    "GlueJobRole": "its day leases curated/_leases/order_date=D.json, each table-day's _manifest.json "
                   "(absent before its first commit), the raw manifests it reads the day by, and the "
                   "HEAD behind every S3A/EMRFS exists()",
}
# Roles that read only keys they have just listed or that are known to exist: listing stays
# scoped to their prefixes.
READS_ONLY_KEYS_THAT_EXIST = {
    "CrawlerRole": "the Glue crawler reads the objects it lists in its table's partition folders",
    "RedshiftCopyRole": "COPY reads the commit records of a day whose Glue run has just succeeded (one per "
                        "table) and the files they list; a missing one fails the batch either way",
}


def _reads_the_lake(stack: dict, role: str) -> bool:
    return any(r.startswith(f"arn:aws:s3:::{LAKE}/") for r in grants(stack, role).get("s3:GetObject", ()))


def test_roles_reading_keys_that_may_be_missing_list_the_lake_without_a_prefix_condition(stack):
    roles = [name for name, r in stack["Resources"].items() if r["Type"] == "AWS::IAM::Role"]
    readers = {role for role in roles if _reads_the_lake(stack, role)}
    # Every role reading the lake is classified here, so a new one gets the rule's decision too.
    assert readers == READS_KEYS_THAT_MAY_BE_MISSING.keys() | READS_ONLY_KEYS_THAT_EXIST.keys()
    for role in READS_KEYS_THAT_MAY_BE_MISSING:
        assert _listing(stack, role) == {ANY_KEY}, role
    for role in READS_ONLY_KEYS_THAT_EXIST:
        listed = _listing(stack, role)
        assert listed and ANY_KEY not in listed, role
        read = {r.removeprefix(f"arn:aws:s3:::{LAKE}/") for r in _s3(grants(stack, role))["s3:GetObject"]}
        assert listed <= read, role  # it lists no prefix it may not read
    # The keys named above are the pipeline's own and fall under each role's object reads.
    day = dt.date(2026, 11, 20)
    may_be_missing = {
        "IngestRole": (landing.lease_key(day), landing.manifest_key(day)),
        "GlueJobRole": (curated_lease_key(day), curated_manifest.record_key("order_lines", day),
                        landing.manifest_key(day)),
    }
    for role, keys in may_be_missing.items():
        patterns = grants(stack, role)["s3:GetObject"]
        for key in keys:
            assert any(fnmatch.fnmatchcase(f"arn:aws:s3:::{LAKE}/{key}", p) for p in patterns), (role, key)
    # ListBucket on no other bucket (the artifact and Pipes buckets are read by exact prefix only),
    # and not at all for a role that reads no lake key; _listing fails on any other resource.
    for role in roles:
        listing = _listing(stack, role)
        assert bool(listing) == (role in readers), role


def test_crawler_reads_raw_only(stack):
    assert _s3(grants(stack, "CrawlerRole")) == {"s3:GetObject": {_lake("raw/")}}
    assert _listing(stack, "CrawlerRole") == {"raw/*"}


def test_no_role_carries_a_managed_policy(stack):
    # Every grant must be an inline statement, where parliament and these tests read it.
    for name, resource in stack["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            assert not resource["Properties"].get("ManagedPolicyArns"), name
            assert "PermissionsBoundary" not in resource["Properties"], name


def test_glue_roles_touch_no_other_bucket_and_log_only_to_their_glue_groups(stack):
    logs = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"
    for role, groups in (("GlueJobRole", ("/aws-glue/jobs/error", "/aws-glue/jobs/output")),
                         ("CrawlerRole", ("/aws-glue/crawlers",))):
        granted = grants(stack, role)
        assert _bucket_level(granted) == {"s3:GetBucketLocation": {f"arn:aws:s3:::{LAKE}"}}, role
        log_actions = {a for a in granted if a.startswith("logs:")}
        assert log_actions == {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}, role
        expected = {logs + g for g in groups} | {logs + g + ":*" for g in groups}
        assert all(granted[a] == expected for a in log_actions), role
        assert {a.split(":")[0] for a in granted} <= {"s3", "logs", "glue"}, role


def test_crawler_changes_only_its_catalog_target(stack):
    crawler = stack["Resources"]["SalesRawCrawler"]["Properties"]
    [target] = crawler["Targets"]["CatalogTargets"]
    [table] = target["Tables"]
    database = target["DatabaseName"]
    glue = {a: r for a, r in grants(stack, "CrawlerRole").items() if a.startswith("glue:")}
    prefix = f"arn:aws:glue:{REGION}:{ACCOUNT}:"
    assert all(r == {prefix + "catalog", prefix + f"database/{database}", prefix + f"table/{database}/{table}"}
               for r in glue.values()), glue
    # What its SchemaChangePolicy UPDATE_IN_DATABASE and partition InheritFromTable write.
    assert crawler["SchemaChangePolicy"] == {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"}
    assert {"glue:GetTable", "glue:UpdateTable", "glue:BatchCreatePartition", "glue:BatchUpdatePartition",
            "glue:GetPartitions"} <= glue.keys()
    # DeleteBehavior LOG deletes nothing; a catalog target's table exists before the crawl.
    assert not [a for a in glue if a.startswith(("glue:Delete", "glue:BatchDelete"))]
    assert not {"glue:CreateTable", "glue:CreateDatabase", "glue:UpdateDatabase"} & glue.keys()
    assert all(parliament.expand_action(a) for a in glue)


def test_glue_job_role_has_no_catalog_access_and_its_arguments_need_none_beyond_it(stack):
    assert not [a for a in grants(stack, "GlueJobRole") if a.startswith("glue:")]
    job = stack["Resources"]["CurateJob"]["Properties"]
    assert not set(GLUE_ARGUMENTS_BEYOND_THE_ROLE) & job.get("DefaultArguments", {}).keys()
    assert "Connections" not in job and "SecurityConfiguration" not in job


def test_redshift_copy_role_reads_curated_only(stack):
    assert grants(stack, "RedshiftCopyRole").keys() == {"s3:GetObject", "s3:ListBucket"}
    assert _s3(grants(stack, "RedshiftCopyRole")) == {"s3:GetObject": {_lake("curated/")}}
    assert _listing(stack, "RedshiftCopyRole") == {"curated/*"}


def _task_resources(machine: dict):
    for state in machine["States"].values():
        if state["Type"] == "Task":
            yield state["Resource"]
        for branch in state.get("Branches", []):
            yield from _task_resources(branch)
        if "ItemProcessor" in state:
            yield from _task_resources(state["ItemProcessor"])


def _actions_of(resource: str) -> set[str]:
    """The IAM actions one Task resource needs (see OPTIMIZED / IMPLIED)."""
    integration = resource.split(":::", 1)[1]
    if integration.startswith("aws-sdk:"):
        _, service, call = integration.split(":")
        # The SDK service id is the IAM prefix without dashes (redshiftdata -> redshift-data).
        [prefix] = [s["prefix"] for s in parliament.iam_definition if s["prefix"].replace("-", "") == service]
        action = f"{prefix}:{call[0].upper()}{call[1:]}"
        assert parliament.expand_action(action), action
        return {action} | IMPLIED.get(action, set())
    return OPTIMIZED[integration]


def test_step_functions_role_has_exactly_the_actions_its_states_call(stack, definition):
    needed = set().union(*(_actions_of(r) for r in _task_resources(definition)))
    if stack["Resources"]["AlertTopic"]["Properties"].get("KmsMasterKeyId"):
        needed |= {"kms:Decrypt", "kms:GenerateDataKey"}  # publishing to an SSE-KMS topic
    assert {"cloudwatch:PutMetricData", "redshift-data:DescribeStatement", "glue:StartCrawler"} <= needed
    assert set(grants(stack, "StateMachineRole")) == needed


def test_step_functions_role_is_scoped_to_the_stacks_resources(stack):
    granted = grants(stack, "StateMachineRole")
    assert granted["lambda:InvokeFunction"] == {ARNS["AWS::Lambda::Function"]("IngestFunction")}
    assert granted["sns:Publish"] == {REFS["AlertTopic"]}
    assert granted["kms:GenerateDataKey"] == {ARNS["AWS::KMS::Key"]("AlertKey")}
    crawler = f"arn:aws:glue:{REGION}:{ACCOUNT}:crawler/{REFS['SalesRawCrawler']}"
    assert granted["glue:StartCrawler"] == granted["glue:GetCrawler"] == {crawler}
    assert granted["glue:StartJobRun"] == {f"arn:aws:glue:{REGION}:{ACCOUNT}:job/{REFS['CurateJob']}"}
    put = next(s for s in role_statements(stack, "StateMachineRole") if "cloudwatch:PutMetricData" in s["Action"])
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": REFS["MetricsNamespace"]}}


def test_schedule_role_only_starts_this_state_machine(stack):
    assert grants(stack, "ScheduleRole") == {"states:StartExecution": {REFS["StateMachine"]}}


def test_only_the_expected_services_assume_each_role(stack):
    expected = {"IngestRole": "lambda", "CrawlerRole": "glue", "GlueJobRole": "glue", "RedshiftCopyRole": "redshift",
                "StateMachineRole": "states", "ScheduleRole": "events"}
    for role, service in expected.items():
        [trust] = stack["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": f"{service}.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
