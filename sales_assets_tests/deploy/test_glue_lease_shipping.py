"""How the Glue job gets its day lease on AWS, and what the state machine does with a refusal.

Risk guarded: a Glue job started by the exported state machine that cannot take the day lease
(the zip missing from ``--extra-py-files``, a module in it importing Dagster or the rest of
``sales_assets``, the zip not uploaded next to the script, a role that cannot read it or
cannot write ``curated/_leases/``), so every run fails or, worse, runs unleased; and a refused
job that either alerts at once for a day another run is merely transforming, retries every
other Glue failure too, waits forever, or alerts without naming the holder.
"""

from __future__ import annotations

import fnmatch
import io
import json
import subprocess
import sys
import textwrap
import zipfile

import boto3
import pytest
from moto import mock_aws

from sales_assets.definitions import defs
from sales_assets.deploy import asl, template
from sales_assets.deploy.deploy import GLUE_SCRIPT_PATH, upload_glue_artifacts
from sales_assets.ingest import packaging
from sales_assets_tests.deploy.asl_interpreter import Execution, TaskError
from sales_assets_tests.deploy.test_failure_paths import DAY, SNS, scripted
from sales_assets_tests.deploy.test_iam_policies import ARTIFACTS, LAKE, grants, resolve

HOLDER_MESSAGE = ("LeaseHeldError: the curated job took no day lease and wrote nothing: curated "
                  "order_date=2026-11-20 is being transformed by another run (dagster run r-9, run_id r-9); "
                  "its lease curated/_leases/order_date=2026-11-20.json expires at 2026-11-21T02:03:04+00:00.")
# What glue:startJobRun.sync puts in the cause of a failed run: the job run, as JSON.
REFUSED_CAUSE = json.dumps({"Id": "jr_2", "JobRunState": "FAILED", "ErrorMessage": HOLDER_MESSAGE})


def test_the_lease_zip_holds_the_lease_and_its_store_only_and_builds_reproducibly(tmp_path):
    first = packaging.build_glue_lease_zip(tmp_path / "a")
    again = packaging.build_glue_lease_zip(tmp_path / "b")
    assert first.name == packaging.GLUE_LEASE_ZIP_NAME and first.read_bytes() == again.read_bytes()
    with zipfile.ZipFile(first) as archive:
        assert archive.namelist() == ["sales_assets/__init__.py", "sales_assets/ingest/__init__.py",
                                      "sales_assets/ingest/lease.py", "sales_assets/ingest/store.py"]
        for module in packaging.GLUE_LEASE_MODULES:  # the real modules, not stand-ins
            assert archive.read(f"sales_assets/{module}") == (packaging.PACKAGE_ROOT / module).read_bytes()
        assert "import" not in archive.read("sales_assets/__init__.py").decode()


@pytest.mark.slow
def test_the_glue_script_takes_its_leases_with_nothing_but_the_zip_and_the_standard_library(tmp_path):
    # A fresh interpreter without site-packages (-S) or the environment's paths (-I): only the
    # standard library, the zip (as --extra-py-files puts it on sys.path) and the script's file.
    built = packaging.build_glue_lease_zip(tmp_path / "dist")
    lake = tmp_path / "lake"
    probe = textwrap.dedent(f'''
        import importlib.util, json, sys
        sys.path.insert(0, {str(built)!r})
        import sales_assets.ingest.lease, sales_assets.ingest.store
        spec = importlib.util.spec_from_file_location("glue_job", {str(GLUE_SCRIPT_PATH)!r})
        job = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(job)
        with job.hold_day_leases({str(lake)!r}, ["2026-11-20"], "jr_1", "glue job run jr_1") as lease:
            with open({str(lake)!r} + "/" + lease.key("2026-11-20")) as handle:
                held = json.load(handle)
        loaded = sorted(sys.modules)
        print(json.dumps({{
            "from": sales_assets.ingest.lease.__file__, "run_id": held["run_id"], "owner": held["owner"],
            "project": sorted(m for m in loaded if m.startswith("sales_assets")),
            "third_party": sorted({{m.split(".")[0] for m in loaded}} & {{"dagster", "pydantic", "pyarrow",
                                                                         "pyspark", "boto3", "requests"}}),
        }}))
    ''')
    completed = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True,
                               timeout=60, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["from"].startswith(str(built))
    assert (report["run_id"], report["owner"]) == ("jr_1", "glue job run jr_1")
    assert report["project"] == ["sales_assets", "sales_assets.ingest", "sales_assets.ingest.lease",
                                 "sales_assets.ingest.store"]
    assert report["third_party"] == []
    assert not (lake / "curated" / "_leases" / "order_date=2026-11-20.json").exists()  # released


def test_without_the_zip_the_script_fails_clearly_and_takes_nothing(tmp_path):
    probe = textwrap.dedent(f'''
        import importlib.util
        spec = importlib.util.spec_from_file_location("glue_job", {str(GLUE_SCRIPT_PATH)!r})
        job = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(job)
        with job.hold_day_leases({str(tmp_path / "lake")!r}, ["2026-11-20"], "jr_1", "glue job run jr_1"):
            pass
    ''')
    completed = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True,
                               timeout=60, cwd=tmp_path)
    assert completed.returncode != 0
    assert "--extra-py-files" in completed.stderr and "Nothing was written" in completed.stderr
    assert not (tmp_path / "lake").exists()


@pytest.fixture(scope="module")
def stack():
    return template.build_template(asl.build_state_machine(asl.pipeline_steps(defs)))


def test_the_glue_job_gets_the_zip_and_a_boto3_with_conditional_writes(stack):
    arguments = stack["Resources"]["CurateJob"]["Properties"]["DefaultArguments"]
    assert resolve(arguments["--extra-py-files"], stack["Resources"]) == (
        f"s3://{ARTIFACTS}/{template.GLUE_LEASE_ZIP_KEY}")
    assert template.GLUE_LEASE_ZIP_KEY.endswith(packaging.GLUE_LEASE_ZIP_NAME)
    assert arguments["--additional-python-modules"].startswith("boto3>=")
    # The state machine passes no lease arguments: the job takes the leases itself.
    definition = json.dumps(stack["Resources"]["StateMachine"]["Properties"]["Definition"])
    assert "--lease_key_prefix" not in definition and "--lease_run_id" not in definition


def _allowed(stack, action: str, arn: str) -> bool:
    return any(fnmatch.fnmatchcase(arn, pattern) for pattern in grants(stack, "GlueJobRole").get(action, ()))


def test_the_glue_role_reads_the_zip_and_creates_renews_and_deletes_the_day_leases(stack):
    assert _allowed(stack, "s3:GetObject", f"arn:aws:s3:::{ARTIFACTS}/{template.GLUE_LEASE_ZIP_KEY}")
    lease = f"arn:aws:s3:::{LAKE}/curated/_leases/order_date=2026-11-20.json"
    for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
        assert _allowed(stack, action, lease), action
    assert not _allowed(stack, "s3:PutObject", f"arn:aws:s3:::{LAKE}/raw/_leases/x.json")


def test_upload_puts_the_script_and_a_fresh_zip_under_the_templates_keys(tmp_path, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=ARTIFACTS)
        uploaded = upload_glue_artifacts(s3, ARTIFACTS, tmp_path / "build")
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=ARTIFACTS)["Contents"])
        assert keys == sorted([template.GLUE_SCRIPT_KEY, template.GLUE_LEASE_ZIP_KEY]) == sorted(uploaded)
        script = s3.get_object(Bucket=ARTIFACTS, Key=template.GLUE_SCRIPT_KEY)["Body"].read()
        assert script == GLUE_SCRIPT_PATH.read_bytes()
        body = s3.get_object(Bucket=ARTIFACTS, Key=template.GLUE_LEASE_ZIP_KEY)["Body"].read()
    assert body == packaging.build_glue_lease_zip(tmp_path / "again").read_bytes()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert "sales_assets/ingest/lease.py" in archive.namelist()


# --------------------------------------------------------------------------------------
# The state machine and a refused Glue run (executed by the ASL interpreter)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def machine():
    return asl.build_state_machine(asl.pipeline_steps(defs))


def glue_refused(times: int, cause: str = REFUSED_CAUSE):
    """Glue runs refused ``times`` times (States.TaskFailed with ``cause``), then succeeding."""
    others, refusals = scripted(), [times]

    def respond(name, resource, params):
        if resource.endswith("glue:startJobRun.sync") and refusals[0] > 0:
            refusals[0] -= 1
            raise TaskError("States.TaskFailed", cause)
        return others(name, resource, params)

    return respond


def glue_starts(run: Execution) -> int:
    return sum(resource.endswith("glue:startJobRun.sync") for _, resource, _ in run.calls)


def test_each_day_starts_with_no_lease_waits(machine):
    assert machine["States"]["Days"]["ItemSelector"]["lease_waits"] == {"count": 0}


def test_a_refused_glue_run_waits_for_the_holder_then_runs_the_day(machine):
    run = Execution(glue_refused(2))
    outcome, output = run.run(machine["States"]["Days"]["ItemProcessor"], {**DAY, "lease_waits": {"count": 0}})
    assert outcome == "Succeeded"
    assert glue_starts(run) == 3 and SNS not in [r for _, r, _ in run.calls]
    assert output["lease_waits"] == {"count": 2}
    assert run.waits == 2 + 4  # two lease waits, plus the crawler's and the statement's polls
    assert output["results"]["CuratedSales"]["JobRunState"] == "SUCCEEDED"


def test_a_glue_run_that_succeeds_after_lease_waits_leaves_no_stale_failure(machine):
    # The day's state after the waits is the one it started with plus its results: no $.failure
    # of the refusals travels on to the load, the metric, or the iteration's output.
    start = {**DAY, "lease_waits": {"count": 0}}
    assert start.keys() == asl.DAY_STATE.keys() - {"order_date.$"} | {"order_date"}
    run = Execution(glue_refused(2))
    outcome, output = run.run(machine["States"]["Days"]["ItemProcessor"], start)
    assert outcome == "Succeeded" and glue_starts(run) == 3
    assert "failure" not in output and output.keys() == start.keys()
    assert output["lease_waits"] == {"count": 2} and output["order_date"] == DAY["order_date"]
    assert output["results"]["CuratedSales"]["JobRunState"] == "SUCCEEDED"
    # The waits dropped nothing else: every earlier step's result is still there.
    assert set(output["results"]) >= {"RawSalesOrders", "CatalogSalesOrders", "WarehouseTables"}


def test_a_day_held_past_every_wait_alerts_with_the_holder_and_fails(machine):
    run = Execution(glue_refused(asl.LEASE_WAIT_ATTEMPTS + 5))
    outcome, output = run.run(machine["States"]["Days"]["ItemProcessor"], {**DAY, "lease_waits": {"count": 0}})
    assert outcome == ("Failed", "SalesPipelineFailed")
    assert glue_starts(run) == asl.LEASE_WAIT_ATTEMPTS + 1
    assert asl.LEASE_WAIT_ATTEMPTS * asl.LEASE_WAIT_SECONDS > 90 * 3  # well past a crashed holder's TTL
    alert = [params for _, resource, params in run.calls if resource == SNS]
    assert len(alert) == 1
    assert "dagster run r-9" in output["failure"]["Cause"] and "expires at" in output["failure"]["Cause"]
    assert "batchExecuteStatement" not in json.dumps(run.calls)  # nothing loaded


def test_any_other_glue_failure_alerts_at_once_without_waiting(machine):
    cause = json.dumps({"Id": "jr_3", "JobRunState": "FAILED", "ErrorMessage": "PageIntegrityError: sha256"})
    run = Execution(glue_refused(1, cause))
    outcome, output = run.run(machine["States"]["Days"]["ItemProcessor"], {**DAY, "lease_waits": {"count": 0}})
    assert outcome == ("Failed", "SalesPipelineFailed")
    assert glue_starts(run) == 1 and run.waits == 2  # the crawler's polls only
    assert output["failure"]["Cause"] == cause


def test_the_scripts_refusal_is_what_the_state_machine_waits_on():
    from sales_assets_tests.glue_scripts.conftest import load_script

    assert HOLDER_MESSAGE.startswith(load_script().LEASE_HELD_MARKER)
    assert fnmatch.fnmatchcase(REFUSED_CAUSE, asl.LEASE_HELD_PATTERN)
    assert not fnmatch.fnmatchcase(json.dumps({"ErrorMessage": "LeaseLostError: lost"}), asl.LEASE_HELD_PATTERN)
