"""Guards the `aws` ETL path offline: GlueEtlResource.run_script must start the Glue job with the
right JobName and job arguments plus Pipes' bootstrap arguments, put the Pipes context in S3
where the job can read it, and read the job's Pipes messages back from CloudWatch Logs so that
Dagster receives the four curated materializations. Nothing of this runs in the `local` setup,
so a broken argument name, context location or log group would only show on AWS.

AWS is moto's server on 127.0.0.1 (S3, Glue, CloudWatch Logs). moto's Glue does not run jobs, so
(in the spirit of dagster-aws's `pipes_tests/fake_glue.py`) `LocalGlueClient.start_job_run`
fetches the job's script from S3 and runs it as a local subprocess with Glue's calling
convention, then writes its stdout to `<LogGroupName>/output`, stream = run id, where
PipesCloudWatchMessageReader looks.

Also guarded: a run must leave the exported stack's CurateJob as it is. StartJobRun's Arguments
replace the job's DefaultArguments of the same name, so a run passing ``--additional-python-modules``
would drop dagster-pipes (the job could not speak Pipes) or boto3 (no day lease); and the Pipes
context must land under the key prefix the stack's ``PipesBucket`` grant covers."""

import base64
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import urlparse

import boto3
import dagster as dg
import pytest
from moto.server import ThreadedMotoServer

from sales_assets.definitions import defs
from sales_assets.deploy import asl, template
from sales_assets.resources.etl import DAGSTER_PIPES_REQUIREMENT, GLUE_SCRIPTS_DIR, PIPES_KEY_PREFIX, GlueEtlResource
from sales_assets_tests.deploy.test_iam_policies import resolve
from sales_assets_tests.glue_scripts.conftest import DAY_1, DAY_2, build_demo_lake

REGION = "us-east-1"
JOB_NAME = "curate_sales_orders"
SCRIPT = "curate_sales_orders.py"
SCRIPTS_BUCKET = "glue-scripts"
PIPES_BUCKET = "pipes-bucket"
GLUE_LOG_GROUP = "/aws-glue/jobs"  # Glue's default; stdout lands in "<group>/output"
ASSET_KEYS = ["curated/order_lines", "curated/quarantine", "curated/dim_customer", "curated/dim_product"]
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION,
}


def decode_pipes_param(value: str) -> dict:
    return json.loads(zlib.decompress(base64.b64decode(value)))


class LocalGlueClient:
    """moto's Glue API, except that start_job_run really runs the job's script, locally.

    Like Glue: the job's DefaultArguments are merged under the run's Arguments, and the script
    gets --JOB_NAME/--JOB_ID/--JOB_RUN_ID first; the run finishes before start_job_run returns.
    ``started`` records each call with what the Pipes context key held at that moment.
    """

    def __init__(self, glue, s3, logs, endpoint_url: str):
        self._glue, self._s3, self._logs = glue, s3, logs
        self._endpoint_url = endpoint_url
        self.meta = glue.meta  # PipesGlueClient reads meta.region_name for the run URL
        self.exceptions = glue.exceptions
        self.started: list[dict] = []
        self._runs: dict[str, dict] = {}

    def start_job_run(self, JobName: str, Arguments: dict | None = None, **kwargs) -> dict:
        arguments = dict(Arguments or {})
        job = self._glue.get_job(JobName=JobName)["Job"]
        context_param = decode_pipes_param(arguments["--dagster-pipes-context"])
        context_body = self._s3.get_object(Bucket=context_param["bucket"], Key=context_param["key"])["Body"].read()
        self.started.append({"JobName": JobName, "Arguments": arguments, "context": json.loads(context_body)})

        run_id = self._glue.start_job_run(JobName=JobName, Arguments=arguments)["JobRunId"]
        location = urlparse(job["Command"]["ScriptLocation"])
        script_body = self._s3.get_object(Bucket=location.netloc, Key=location.path.lstrip("/"))["Body"].read()
        work_dir = Path(os.environ["GLUE_FAKE_WORK_DIR"])
        script_path = work_dir / f"{run_id}-{Path(location.path).name}"
        script_path.write_bytes(script_body)

        merged = {**(job.get("DefaultArguments") or {}), **arguments}
        argv = [sys.executable, str(script_path), "--JOB_NAME", JobName, "--JOB_ID", f"j_{run_id}",
                "--JOB_RUN_ID", run_id]
        for name, value in merged.items():
            argv += [name, value]
        env = dict(os.environ, **FAKE_CREDENTIALS, AWS_ENDPOINT_URL=self._endpoint_url,
                   PYSPARK_PYTHON=sys.executable)
        completed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)

        stream = f"{GLUE_LOG_GROUP}/output"
        try:
            self._logs.create_log_group(logGroupName=stream)
        except self._logs.exceptions.ResourceAlreadyExistsException:
            pass
        self._logs.create_log_stream(logGroupName=stream, logStreamName=run_id)
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in completed.stdout.splitlines() if line.strip()]
        if events:
            self._logs.put_log_events(logGroupName=stream, logStreamName=run_id, logEvents=events)
        self._runs[run_id] = {
            "state": "SUCCEEDED" if completed.returncode == 0 else "FAILED",
            "error": completed.stderr[-3000:],
        }
        return {"JobRunId": run_id}

    def get_job_run(self, JobName: str, RunId: str, **kwargs) -> dict:
        run = self._runs.get(RunId, {"state": "RUNNING", "error": ""})
        job_run = {"Id": RunId, "JobName": JobName, "JobRunState": run["state"], "LogGroupName": GLUE_LOG_GROUP}
        if run["state"] == "FAILED":
            job_run["ErrorMessage"] = run["error"]
        return {"JobRun": job_run}

    def batch_stop_job_run(self, JobName: str, JobRunIds: list[str]) -> dict:
        return {"SuccessfulSubmissions": [], "Errors": []}


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint, monkeypatch, tmp_path):
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GLUE_FAKE_WORK_DIR", str(tmp_path))

    def client(service):
        return boto3.client(service, region_name=REGION, endpoint_url=moto_endpoint)

    s3, glue, logs = client("s3"), client("glue"), client("logs")
    for bucket in (SCRIPTS_BUCKET, PIPES_BUCKET):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=SCRIPTS_BUCKET, Key=f"scripts/{SCRIPT}", Body=(GLUE_SCRIPTS_DIR / SCRIPT).read_bytes())
    glue.create_job(
        Name=JOB_NAME, Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{SCRIPTS_BUCKET}/scripts/{SCRIPT}",
                 "PythonVersion": "3"},
        DefaultArguments={"--job-bookmark-option": "job-bookmark-disable",
                          "--enable-continuous-cloudwatch-log": "true", "--job-language": "python"},
        GlueVersion="5.0",
    )
    fake_glue = LocalGlueClient(glue, s3, logs, moto_endpoint)
    real_boto_client = GlueEtlResource._boto_client

    def boto_client(self, service):
        # Only Glue is faked; S3 and CloudWatch Logs are moto's, exactly as the resource builds them.
        return fake_glue if service == "glue" else real_boto_client(self, service)

    monkeypatch.setattr(GlueEtlResource, "_boto_client", boto_client)
    resource = GlueEtlResource(
        job_name=JOB_NAME, pipes_bucket=PIPES_BUCKET, region_name=REGION, endpoint_url=moto_endpoint
    )
    return resource, fake_glue


def test_glue_job_run_reports_the_four_curated_materializations(aws, tmp_path):
    resource, fake_glue = aws
    lake_root = tmp_path / "lake"
    manifests = build_demo_lake(lake_root)
    arguments = {"lake_root": str(lake_root), "order_date": DAY_1, "order_date_end": DAY_2}

    @dg.multi_asset(specs=[dg.AssetSpec(dg.AssetKey.from_user_string(key)) for key in ASSET_KEYS])
    def curated(context: dg.AssetExecutionContext, etl: GlueEtlResource):
        yield from etl.run_script(context, SCRIPT, arguments).get_results()

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([curated], resources={"etl": resource}, instance=instance, raise_on_error=False)
    assert result.success, [e.event_specific_data for e in result.all_events if e.is_failure]

    # The job was started once, by name, with our arguments and Pipes' bootstrap arguments.
    (started,) = fake_glue.started
    assert started["JobName"] == JOB_NAME
    job_arguments = started["Arguments"]
    assert {k: job_arguments[k] for k in ("--lake_root", "--order_date", "--order_date_end")} == {
        "--lake_root": str(lake_root), "--order_date": DAY_1, "--order_date_end": DAY_2,
    }
    context_param = decode_pipes_param(job_arguments["--dagster-pipes-context"])
    assert context_param["bucket"] == PIPES_BUCKET
    assert context_param["key"].startswith(PIPES_KEY_PREFIX)  # what the stack's PipesBucket grant covers
    assert "--additional-python-modules" not in job_arguments  # the job's own modules stay
    assert sorted(started["context"]["asset_keys"]) == sorted(ASSET_KEYS)
    assert decode_pipes_param(job_arguments["--dagster-pipes-messages"]) == {"stdio": "stdout"}

    # Dagster received all four materializations with the job's figures, through CloudWatch.
    materialized = {
        m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("curated")
    }
    assert sorted(materialized) == sorted(ASSET_KEYS)
    figures = materialized["curated/order_lines"]["figures_by_day"].data
    for day in (DAY_1, DAY_2):
        figure = figures[day]
        assert figure["raw_lines"] == manifests[day]["line_count"]
        assert figure["raw_lines"] == figure["curated_lines"] + figure["quarantine_lines"] + figure["superseded_lines"]
    assert figures[DAY_1]["net"] == "147.06"
    assert materialized["curated/order_lines"]["dagster/row_count"].value == 12
    assert materialized["curated/quarantine"]["dagster/row_count"].value == 33
    # PipesGlueClient's own metadata (job name, run id, console URL) rides along.
    assert materialized["curated/order_lines"]["AWS Glue Job Name"].value == JOB_NAME

    # The script's Pipes logs reached Dagster's event log too.
    messages = [record.user_message for record in instance.all_logs(result.run_id)]
    assert any("wrote order_lines" in message for message in messages)


class RecordingGlueClient:
    """Records start_job_run with the arguments Glue would run the job with (its DefaultArguments
    overlaid by the run's Arguments) and ends the run at once: nothing is executed."""

    def __init__(self, glue, s3):
        self._glue, self._s3 = glue, s3
        self.meta, self.exceptions = glue.meta, glue.exceptions
        self.started: list[dict] = []

    def start_job_run(self, JobName: str, Arguments: dict | None = None, **kwargs) -> dict:
        job = self._glue.get_job(JobName=JobName)["Job"]
        context_param = decode_pipes_param(Arguments["--dagster-pipes-context"])
        self._s3.head_object(Bucket=context_param["bucket"], Key=context_param["key"])  # there while the run is
        self.started.append({"Arguments": dict(Arguments), "context_key": context_param["key"],
                             "effective": {**job["DefaultArguments"], **Arguments}})
        return {"JobRunId": f"jr_{len(self.started)}"}

    def get_job_run(self, JobName: str, RunId: str, **kwargs) -> dict:
        # No LogGroupName: PipesGlueClient reads no messages (and says so in a warning).
        return {"JobRun": {"Id": RunId, "JobName": JobName, "JobRunState": "SUCCEEDED"}}


@pytest.fixture
def stack_job(moto_endpoint, monkeypatch):
    """The exported stack's CurateJob in moto Glue (its DefaultArguments as the template has them),
    and a GlueEtlResource pointed at it whose Glue client records the runs."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    stack = template.build_template(asl.build_state_machine(asl.pipeline_steps(defs)))
    job = resolve(stack["Resources"]["CurateJob"]["Properties"], stack["Resources"])
    glue = boto3.client("glue", region_name=REGION, endpoint_url=moto_endpoint)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket="stack-pipes")
    glue.create_job(Name="stack-curate", Role=job["Role"], Command=job["Command"], GlueVersion=job["GlueVersion"],
                    DefaultArguments=job["DefaultArguments"])
    recording = RecordingGlueClient(glue, s3)
    real_boto_client = GlueEtlResource._boto_client
    monkeypatch.setattr(GlueEtlResource, "_boto_client",
                        lambda self, service: recording if service == "glue" else real_boto_client(self, service))
    resource = GlueEtlResource(job_name="stack-curate", pipes_bucket="stack-pipes", region_name=REGION,
                               endpoint_url=moto_endpoint)
    return resource, recording, job["DefaultArguments"]


def _run(resource: GlueEtlResource, arguments: dict[str, str]) -> dg.ExecuteInProcessResult:
    @dg.asset(key=dg.AssetKey.from_user_string("curated/order_lines"))
    def curated(context: dg.AssetExecutionContext, etl: GlueEtlResource) -> dg.MaterializeResult:
        etl.run_script(context, SCRIPT, arguments)  # the recorded job run reports nothing back
        return dg.MaterializeResult()

    return dg.materialize([curated], resources={"etl": resource}, raise_on_error=False)


def test_a_run_keeps_the_stack_jobs_python_modules(stack_job):
    resource, recording, default_arguments = stack_job
    # What the curated asset passes (transform/assets.py), lease arguments included.
    arguments = {"lake_root": "s3://lake", "order_date": DAY_1, "order_date_end": DAY_2,
                 "lease_key_prefix": "curated/_leases/", "lease_run_id": "r1"}
    result = _run(resource, arguments)
    assert result.success, [e.event_specific_data for e in result.all_events if e.is_failure]
    (started,) = recording.started
    assert "--additional-python-modules" not in started["Arguments"]
    assert "--extra-py-files" not in started["Arguments"]
    modules = started["effective"]["--additional-python-modules"].split(",")
    assert DAGSTER_PIPES_REQUIREMENT in modules and any(m.startswith("boto3>=") for m in modules)
    assert modules == default_arguments["--additional-python-modules"].split(",")
    assert started["effective"]["--extra-py-files"] == default_arguments["--extra-py-files"]
    assert started["context_key"].startswith(PIPES_KEY_PREFIX) and started["context_key"].endswith("/context.json")


def test_the_job_gets_the_dagster_pipes_of_this_dagster():
    # Pipes' protocol is the launching Dagster's: the pin follows the installed dagster-pipes,
    # which setup.py pins in lock-step with dagster.
    assert DAGSTER_PIPES_REQUIREMENT == f"dagster-pipes=={dg.__version__}"
    assert DAGSTER_PIPES_REQUIREMENT in template.GLUE_ADDITIONAL_PYTHON_MODULES.split(",")


@pytest.mark.parametrize("name", ["additional-python-modules", "extra-py-files"])
def test_a_run_refuses_to_replace_the_jobs_modules_or_lease_zip(stack_job, name):
    resource, recording, _ = stack_job
    result = _run(resource, {"lake_root": "s3://lake", "order_date": DAY_1, name: "boto3>=1.36.0"})
    assert not result.success and not recording.started
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert f"--{name}" in str(failure.event_specific_data.error)
