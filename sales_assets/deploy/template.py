"""The CloudFormation template that deploys the exported pipeline (pure: a dict, no AWS calls).

What a caller may rely on: ``build_template(definition)`` embeds the ASL with
``DefinitionSubstitutions`` for every ``${name}`` it uses; the stack holds the lake bucket
(public access blocked, SSE, lifecycle rule), the ingest Lambda (zip from
``sales-pipeline package-lambda`` uploaded to the artifacts prefix), the Glue job (script and
the day-lease zip in S3, ``deploy.upload_glue_artifacts``; it takes the day leases itself),
the crawler + JSON Lines classifier (from ``catalog.crawler_config``), the Glue database, one
least-privilege role per component, the EventBridge daily rule, the SNS topic (encrypted with a
customer managed key CloudWatch may use) and CloudWatch alarms on ``ExecutionsFailed``,
``ExecutionsTimedOut`` and the pipeline's metrics (``NoRowsAlarm``: no rows loaded in 26 hours).
The job also runs under Dagster (``GlueEtlResource``, output ``CurateJobName``): it carries
dagster-pipes, and the optional ``PipesBucket`` parameter lets its role read the Pipes context
objects there. Deterministic for the same input.
"""

from __future__ import annotations

from collections.abc import Mapping

from sales_assets.catalog import crawler_config
from sales_assets.deploy import asl
from sales_assets.ingest import lambda_handler, packaging
from sales_assets.operations.sensors import stage_of
from sales_assets.resources import metrics
from sales_assets.resources.etl import DAGSTER_PIPES_REQUIREMENT, PIPES_KEY_PREFIX
from sales_assets.settings import DEFAULT_METRICS_NAMESPACE

GLUE_SCRIPT_KEY = "artifacts/glue/curate_sales_orders.py"
# Beside the script, so the role's read of the script's prefix covers it (--extra-py-files).
GLUE_LEASE_ZIP_KEY = f"artifacts/glue/{packaging.GLUE_LEASE_ZIP_NAME}"
# The day lease's conditional writes (IfNoneMatch, IfMatch on PutObject; IfMatch on DeleteObject,
# which S3 took for general purpose buckets in September 2025) need a newer boto3 than Glue
# bundles: at least the release this project is tested with; the script checks before taking a
# lease. dagster-pipes: Glue bundles none, and a Dagster run (GlueEtlResource) talks Pipes to the job.
GLUE_BOTO3_REQUIREMENT = "boto3>=1.44.8"
GLUE_ADDITIONAL_PYTHON_MODULES = ",".join((GLUE_BOTO3_REQUIREMENT, DAGSTER_PIPES_REQUIREMENT))
LAMBDA_ZIP_KEY = f"artifacts/lambda/{packaging.ZIP_NAME}"
RAW_PREFIX = "raw/"
CURATED_PREFIX = "curated/"
RAW_DATABASE = "sales_raw"
RAW_TABLE = "sales_orders"
# What the crawler does to its catalog target with the settings in catalog.crawler_config:
# read the table and its partitions, merge new columns into the table (UPDATE_IN_DATABASE,
# MergeNewColumns) and add or update partitions (InheritFromTable). The table exists before
# the crawler runs (catalog targets require it) and DeleteBehavior is LOG, so no
# CreateTable, DeleteTable or DeletePartition.
CRAWLER_CATALOG_ACTIONS = [
    "glue:GetDatabase", "glue:GetTable", "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition",
    "glue:UpdateTable", "glue:CreatePartition", "glue:BatchCreatePartition", "glue:UpdatePartition",
    "glue:BatchUpdatePartition",
]
# Glue 5.0 jobs write to these two groups by default (no --custom-logGroup-prefix); crawlers
# write to /aws-glue/crawlers.
GLUE_JOB_LOG_GROUPS = ("/aws-glue/jobs/error", "/aws-glue/jobs/output")
CRAWLER_LOG_GROUPS = ("/aws-glue/crawlers",)
PIPELINE_NAMESPACE = DEFAULT_METRICS_NAMESPACE
# Set when Dagster (GlueEtlResource) runs the stack's job: the bucket its Pipes context goes to.
PIPES_BUCKET_CONDITION = "HasPipesBucket"
PIPES_BUCKET_PATTERN = r"^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# What a publisher to an SSE-KMS topic needs on its key.
SNS_KMS_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey"]


def _sub(text: str) -> dict:
    return {"Fn::Sub": text}


def _arn(resource: str) -> dict:
    return {"Fn::GetAtt": [resource, "Arn"]}


def _role(service: str, statements: list[dict]) -> dict:
    # Inline statements only, no ManagedPolicyArns: every permission a role holds is in the
    # template, where the linter and the tests see it. (AWSGlueServiceRole, the usual Glue
    # role policy, allows s3:PutObject/DeleteObject on arn:aws:s3:::*/*aws-glue-*/*: any lake
    # key with an "aws-glue-" segment, raw/ included.)
    return {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        },
        "Policies": [{"PolicyName": "least-privilege", "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}],
    }}


def _objects(prefix: str, bucket: str = "LakeBucket") -> dict:
    return _sub("arn:${AWS::Partition}:s3:::${" + bucket + "}/" + prefix + "*")


def _list(bucket_arn: dict, *prefixes: str) -> dict:
    # ListBucket has no object resource; the s3:prefix condition keeps listing inside the role's prefixes.
    return {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [p + "*" for p in prefixes]}}}


def _list_any_key(bucket_arn: dict) -> dict:
    # For a role that GETs or HEADs lake keys which may legitimately be missing (day leases,
    # commit records, raw manifests; S3A/EMRFS exists() is a HEAD). S3 answers a GET or HEAD
    # of a missing key with 403 AccessDenied, not 404, unless the caller holds s3:ListBucket
    # on the bucket (GetObject/HeadObject API reference, "Permissions"), and such a request
    # carries no s3:prefix, so a prefix-scoped grant never matches it: "absent" would read as
    # "denied". Unconditioned, it reveals key names only, of a bucket whose prefixes the role
    # already reads; object access stays limited to its prefixes.
    return {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn}


def _glue_logs(*log_groups: str) -> dict:
    # A Glue job or crawler writes its run's logs to CloudWatch Logs with its role's
    # credentials, creating the group and its streams on first use (the logs statement of
    # AWSGlueServiceRole, there on every /aws-glue/* group); here only the groups it writes.
    groups = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
    return {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [_sub(groups + g) for group in log_groups for g in (group, group + ":*")]}


def _bucket_location(bucket_arn: dict) -> dict:
    # The bucket-level S3 read that the Glue guide's service policy ("Create an IAM policy for
    # the AWS Glue service", = AWSGlueServiceRole) gives every crawler and job, on all buckets;
    # bucket metadata only, and here this bucket only.
    return {"Effect": "Allow", "Action": "s3:GetBucketLocation", "Resource": bucket_arn}


def _pipes_context_read() -> dict:
    # Only the context objects GlueEtlResource's injector writes (PIPES_KEY_PREFIX); the
    # job's Pipes messages go to stdout, i.e. /aws-glue/jobs/output, which the role already
    # writes. No statement at all without the parameter.
    read = {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": _objects(PIPES_KEY_PREFIX, "PipesBucket")}
    return {"Fn::If": [PIPES_BUCKET_CONDITION, read, {"Ref": "AWS::NoValue"}]}


def build_template(definition: Mapping) -> dict:
    """The template's dict (render it with ``render``)."""
    used = asl.placeholders(definition)
    logs = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    bucket_arn = _sub("arn:${AWS::Partition}:s3:::${LakeBucket}")
    crawler = crawler_config.cloudformation_resources(
        name=_sub("${AWS::StackName}-raw-sales-orders"), role_arn=_arn("CrawlerRole"),
        database=RAW_DATABASE, table=RAW_TABLE, classifier_name=crawler_config.CLASSIFIER_NAME,
    )
    glue = "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:"
    # A table-level Data Catalog call is authorized on the catalog, the database and the table.
    raw_table_arns = [_sub(glue + "catalog"), _sub(glue + f"database/{RAW_DATABASE}"),
                      _sub(glue + f"table/{RAW_DATABASE}/{RAW_TABLE}")]
    crawler["SalesRawCrawler"]["DependsOn"] = ["SalesRawJsonClassifier", "RawDatabase"]
    substitutions = {
        "IngestFunctionArn": _arn("IngestFunction"),
        "CrawlerName": {"Ref": "SalesRawCrawler"},
        "GlueJobName": {"Ref": "CurateJob"},
        "RedshiftWorkgroup": {"Ref": "RedshiftWorkgroup"},
        "RedshiftDatabase": {"Ref": "RedshiftDatabase"},
        "RedshiftCopyRoleArn": _arn("RedshiftCopyRole"),
        "AlertTopicArn": {"Ref": "AlertTopic"},
        "LakeRoot": _sub("s3://${LakeBucket}"),
        "LakeBucket": {"Ref": "LakeBucket"},
        "MetricsNamespace": {"Ref": "MetricsNamespace"},
    }
    missing = used - substitutions.keys()
    if missing:
        raise asl.GraphError(f"the state machine uses ${{...}} names the template does not define: {sorted(missing)}")
    resources: dict = {
        "LakeBucket": {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
                },
                "BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]},
                "VersioningConfiguration": {"Status": "Enabled"},
                "LifecycleConfiguration": {"Rules": [
                    {"Id": "raw-to-infrequent-access", "Status": "Enabled", "Prefix": RAW_PREFIX,
                     "Transitions": [{"StorageClass": "STANDARD_IA", "TransitionInDays": 30}]},
                    {"Id": "expire-old-versions", "Status": "Enabled",
                     "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
                ]},
            },
        },
        # A customer managed key, not alias/aws/sns: the AWS managed key's policy cannot admit
        # cloudwatch.amazonaws.com, so alarms could not publish to the topic at all.
        "AlertKey": {"Type": "AWS::KMS::Key", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                     "Properties": {
            "Description": "Encrypts the sales pipeline's alert topic", "EnableKeyRotation": True,
            "KeyPolicy": {"Version": "2012-10-17", "Statement": [
                {"Sid": "AccountAdministersTheKey", "Effect": "Allow",
                 "Principal": {"AWS": _sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")},
                 "Action": "kms:*", "Resource": "*"},
                {"Sid": "CloudWatchAlarmsPublish", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
                 "Action": SNS_KMS_ACTIONS, "Resource": "*"},
            ]},
        }},
        "AlertTopic": {"Type": "AWS::SNS::Topic", "Properties": {"KmsMasterKeyId": {"Ref": "AlertKey"}}},
        "RawDatabase": {"Type": "AWS::Glue::Database", "Properties": {
            "CatalogId": {"Ref": "AWS::AccountId"}, "DatabaseInput": {"Name": RAW_DATABASE}}},
        "IngestRole": _role("lambda.amazonaws.com", [
            {"Effect": "Allow", "Action": logs, "Resource": _sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:*")},
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"], "Resource": _objects(RAW_PREFIX)},
            # Reads the day's _lease.json and _manifest.json, either of which may be absent.
            _list_any_key(bucket_arn),
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": "SourceTokenSecretArn"}},
        ]),
        "IngestFunction": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "python3.11", "Handler": lambda_handler.HANDLER, "Timeout": 900, "MemorySize": 512,
            "Role": _arn("IngestRole"),
            "Code": {"S3Bucket": {"Ref": "ArtifactBucket"}, "S3Key": LAMBDA_ZIP_KEY},
            "Environment": {"Variables": {
                "SALES_SOURCE_URL": {"Ref": "SourceUrl"}, "SALES_LAKE_ROOT": _sub("s3://${LakeBucket}"),
                lambda_handler.TOKEN_SECRET_ENV_VAR: {"Ref": "SourceTokenSecretArn"}, "SALES_PIPELINE_ENV": "aws",
            }},
        }},
        "CrawlerRole": _role("glue.amazonaws.com", [
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": _objects(RAW_PREFIX)},
            # Prefix-scoped: the crawler reads only objects it has just listed in its table's
            # partition folders, never a key by a name that may not exist.
            _list(bucket_arn, RAW_PREFIX),
            _bucket_location(bucket_arn),
            # Its one catalog target, sales_raw.sales_orders (crawler_config): nothing else in the catalog.
            {"Effect": "Allow", "Action": CRAWLER_CATALOG_ACTIONS, "Resource": raw_table_arns},
            _glue_logs(*CRAWLER_LOG_GROUPS),
        ]),
        **crawler,
        "GlueJobRole": _role("glue.amazonaws.com", [
            # The script and its lease zip live in the artifact bucket (ScriptLocation,
            # --extra-py-files), not in the lake. curated/* below covers the day leases
            # (curated/_leases/), which the job creates, renews and deletes itself.
            {"Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [_objects(RAW_PREFIX), _objects(GLUE_SCRIPT_KEY.rsplit("/", 1)[0] + "/", "ArtifactBucket")]},
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"], "Resource": _objects(CURATED_PREFIX)},
            # Reads day leases (curated/_leases/), commit records and raw manifests that may be
            # absent, and Spark's S3 connector tests paths with HEAD.
            _list_any_key(bucket_arn),
            _bucket_location(bucket_arn),
            _glue_logs(*GLUE_JOB_LOG_GROUPS),
            _pipes_context_read(),
            # Nothing else, by what the job's DefaultArguments leave off: no Data Catalog (the
            # script reads raw/ with its own schemas), no --TempDir, no --enable-metrics
            # (cloudwatch:PutMetricData), no --enable-spark-ui (event logs to S3), no job
            # bookmarks, no Connections (EC2 network interfaces). The lake's SSE-KMS uses the
            # AWS managed aws/s3 key, whose key policy admits the account's principals through S3.
        ]),
        "CurateJob": {"Type": "AWS::Glue::Job", "Properties": {
            "Role": _arn("GlueJobRole"), "GlueVersion": "5.0", "WorkerType": "G.1X", "NumberOfWorkers": 2,
            "Command": {"Name": "glueetl", "PythonVersion": "3",
                        "ScriptLocation": _sub("s3://${ArtifactBucket}/" + GLUE_SCRIPT_KEY)},
            "ExecutionProperty": {"MaxConcurrentRuns": asl.BACKFILL_MAX_CONCURRENCY},
            "DefaultArguments": {
                "--lake_root": _sub("s3://${LakeBucket}"),
                "--extra-py-files": _sub("s3://${ArtifactBucket}/" + GLUE_LEASE_ZIP_KEY),
                "--additional-python-modules": GLUE_ADDITIONAL_PYTHON_MODULES,
            },
            "Timeout": 60,
        }},
        "RedshiftCopyRole": _role("redshift.amazonaws.com", [
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": _objects(CURATED_PREFIX)},
            # Prefix-scoped: COPY reads the commit records of a day whose Glue run has just
            # succeeded (it writes one per table) and the files they list; should one be gone,
            # the batch fails either way (403 instead of 404) and loads nothing.
            _list(bucket_arn, CURATED_PREFIX),
        ]),
        "StateMachineRole": _role("states.amazonaws.com", [
            {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": _arn("IngestFunction")},
            {"Effect": "Allow", "Action": ["glue:StartCrawler", "glue:GetCrawler"],
             "Resource": _sub("arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:crawler/${SalesRawCrawler}")},
            {"Effect": "Allow", "Action": ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"],
             "Resource": _sub("arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:job/${CurateJob}")},
            {"Effect": "Allow", "Action": ["redshift-data:BatchExecuteStatement"],
             "Resource": _sub("arn:${AWS::Partition}:redshift-serverless:${AWS::Region}:${AWS::AccountId}:workgroup/*")},
            {"Effect": "Allow", "Action": ["redshift-serverless:GetCredentials"],
             "Resource": _sub("arn:${AWS::Partition}:redshift-serverless:${AWS::Region}:${AWS::AccountId}:workgroup/*")},
            # DescribeStatement has no resource type; the condition keeps it to this role's own statements.
            {"Effect": "Allow", "Action": ["redshift-data:DescribeStatement"], "Resource": "*",
             "Condition": {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}},
            {"Effect": "Allow", "Action": "sns:Publish", "Resource": {"Ref": "AlertTopic"}},
            # Publishing to a topic encrypted with a customer managed key needs the key too.
            {"Effect": "Allow", "Action": SNS_KMS_ACTIONS, "Resource": _arn("AlertKey")},
            # PutMetricData has no resource type; the namespace condition confines it to the pipeline's.
            {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
             "Condition": {"StringEquals": {"cloudwatch:namespace": {"Ref": "MetricsNamespace"}}}},
        ]),
        "StateMachine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
            "StateMachineName": _sub("${AWS::StackName}-sales-pipeline"),
            "RoleArn": _arn("StateMachineRole"),
            "Definition": definition,
            "DefinitionSubstitutions": {k: v for k, v in sorted(substitutions.items()) if k in used},
        }},
        "ScheduleRole": _role("events.amazonaws.com", [
            {"Effect": "Allow", "Action": "states:StartExecution", "Resource": {"Ref": "StateMachine"}},
        ]),
        # No input: the state machine computes yesterday (UTC) from its own start time.
        "DailySchedule": {"Type": "AWS::Events::Rule", "Properties": {
            "ScheduleExpression": {"Fn::Sub": "cron(0 ${ScheduleHourUtc} * * ? *)"}, "State": "ENABLED",
            "Targets": [{"Id": "sales-pipeline", "Arn": {"Ref": "StateMachine"}, "RoleArn": _arn("ScheduleRole")}],
        }},
        "ExecutionsFailedAlarm": _alarm("AWS/States", "ExecutionsFailed",
                                        [{"Name": "StateMachineArn", "Value": {"Ref": "StateMachine"}}], 1,
                                        "GreaterThanOrEqualToThreshold"),
        # A poll loop that never settles ends in the execution timeout, which ExecutionsFailed
        # does not count and no Catch sees.
        "ExecutionsTimedOutAlarm": _alarm("AWS/States", "ExecutionsTimedOut",
                                          [{"Name": "StateMachineArn", "Value": {"Ref": "StateMachine"}}], 1,
                                          "GreaterThanOrEqualToThreshold"),
        "QuarantinedLinesAlarm": _alarm({"Ref": "MetricsNamespace"}, metrics.METRIC_QUARANTINED,
                                        _metric_dimensions("curated/quarantine"),
                                        {"Ref": "QuarantinedLinesThreshold"}, "GreaterThanThreshold"),
        "NoRowsAlarm": _no_rows_alarm(),
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Sales pipeline exported from the Dagster code location (sales-pipeline export-stepfunctions).",
        "Parameters": {
            "ArtifactBucket": {"Type": "String", "Description": (
                f"Bucket holding {LAMBDA_ZIP_KEY}, {GLUE_SCRIPT_KEY} and {GLUE_LEASE_ZIP_KEY}.")},
            "SourceUrl": {"Type": "String", "Description": "Base URL of the Sales Source API."},
            "SourceTokenSecretArn": {"Type": "String", "Description": "Secrets Manager secret with the source token."},
            "RedshiftWorkgroup": {"Type": "String", "Description": "Redshift Serverless workgroup."},
            "RedshiftDatabase": {"Type": "String", "Default": "dev"},
            "ScheduleHourUtc": {"Type": "Number", "Default": 2, "MinValue": 0, "MaxValue": 23},
            "QuarantinedLinesThreshold": {"Type": "Number", "Default": 100},
            "MetricsNamespace": {"Type": "String", "Default": PIPELINE_NAMESPACE,
                                 "Description": "CloudWatch namespace of the pipeline's metrics (MetricsResource.namespace)."},
            # A bucket name or nothing: "*" or a path would widen the grant past one bucket's prefix.
            "PipesBucket": {"Type": "String", "Default": "", "AllowedPattern": PIPES_BUCKET_PATTERN,
                            "Description": (
                "Optional: the bucket of Dagster's Pipes context (SALES_AWS_PIPES_BUCKET) when Dagster runs "
                f"CurateJob; its role may then read {PIPES_KEY_PREFIX}* there. Empty: no access.")},
        },
        "Conditions": {PIPES_BUCKET_CONDITION: {"Fn::Not": [{"Fn::Equals": [{"Ref": "PipesBucket"}, ""]}]}},
        "Resources": resources,
        "Outputs": {
            "StateMachineArn": {"Value": {"Ref": "StateMachine"}},
            "LakeBucketName": {"Value": {"Ref": "LakeBucket"}},
            "AlertTopicArn": {"Value": {"Ref": "AlertTopic"}},
            # COPY names this role: associate it with the Redshift Serverless namespace (README).
            "RedshiftCopyRoleArn": {"Value": _arn("RedshiftCopyRole")},
            # Dagster's SALES_AWS_GLUE_JOB, to run the stack's job from Dagster.
            "CurateJobName": {"Value": {"Ref": "CurateJob"}},
        },
    }


def _metric_dimensions(asset: str) -> list[dict]:
    # The alarm must name the exact dimension set MetricsResource puts (Asset and Stage).
    return [{"Name": metrics.DIMENSION_ASSET, "Value": asset}, {"Name": metrics.DIMENSION_STAGE, "Value": stage_of(asset)}]


# "No rows loaded": every hour of the last 26 without a Rows datapoint >= 1. The state machine
# puts the day's loaded fact rows after each load (and Dagster its row count), so a missed or
# failed load and a load of zero rows both fire it. 26 hourly periods, not one daily period: a
# rolling 24 h window would be briefly empty whenever a load finishes later than the day before.
NO_ROWS_WINDOW_HOURS = 26


def _no_rows_alarm() -> dict:
    alarm = _alarm({"Ref": "MetricsNamespace"}, metrics.METRIC_ROWS, _metric_dimensions(asl.FACT_ASSET), 1,
                   "LessThanThreshold")
    alarm["Properties"].update({
        "AlarmDescription": f"No rows loaded into {asl.FACT_ASSET} in the last {NO_ROWS_WINDOW_HOURS} hours.",
        "Period": 3600, "EvaluationPeriods": NO_ROWS_WINDOW_HOURS, "DatapointsToAlarm": NO_ROWS_WINDOW_HOURS,
        "TreatMissingData": "breaching",
    })
    return alarm


def _alarm(namespace, metric: str, dimensions: list, threshold, comparison: str) -> dict:
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "Namespace": namespace, "MetricName": metric, "Dimensions": dimensions,
        "Statistic": "Sum", "Period": 86400, "EvaluationPeriods": 1, "Threshold": threshold,
        "ComparisonOperator": comparison, "TreatMissingData": "notBreaching",
        "AlarmActions": [{"Ref": "AlertTopic"}],
    }}


def render(template: Mapping) -> str:
    """YAML text, keys in insertion order, stable across runs."""
    import yaml

    class _NoAliases(yaml.SafeDumper):
        # CloudFormation rejects YAML anchors/aliases; shared dicts are written out in full.
        def ignore_aliases(self, data):
            return True

    return yaml.dump(dict(template), Dumper=_NoAliases, sort_keys=False, width=120, default_flow_style=False)
