"""Guards issue #10's last window: the transform asset holds each day's lease
(`curated/_leases/order_date=D.json`) while the Glue job runs, but a job that keeps running
after its Dagster process died could still commit a day after another run took it over,
deleting that run's files and replacing its record. The job is therefore given the lease
(`--lease_key_prefix`/`--lease_run_id`) and checks it, through the commit's own file API, right
before each table-day's record: absent, another run's or expired means no record written and
nothing deleted, and a clear failure naming the day. Without the arguments (the Step Functions
export) the job commits as before. The asset must pass the arguments naming its own lease."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest

import sales_assets.transform.assets as transform_assets
from sales_assets.resources.etl import EtlResource
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.transform.assets import CURATED_LEASE_FOLDER, CuratedDayLease, curated_lease_key, curated_sales
from sales_assets_tests.glue_scripts.conftest import DAY_1, DAY_2, build_demo_lake, load_script
from sales_assets_tests.reliability.test_curated_swap_window import NEW, OLD, stage_day
from sales_assets_tests.warehouse.curated_builders import write_curated_day

DAY = dt.date(2026, 11, 20)


@pytest.fixture(scope="module")
def curate():
    return load_script()


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def day_folders(lake_root: Path, day: str) -> dict[str, dict[str, bytes]]:
    return {table: snapshot(lake_root / "curated" / table / f"order_date={day}")
            for table in ("order_lines", "quarantine", "dim_customer", "dim_product")}


def take_over(lake: LocalLakeResource, day: dt.date, previous: CuratedDayLease, run_id: str) -> CuratedDayLease:
    """Another run takes the day's lease over the way a real one does: after ``previous``
    expired (its clock is moved past the expiry), by compare-and-swap."""
    later = previous.clock() + previous.ttl_seconds + 1
    return CuratedDayLease(lake, day, run_id, owner=f"dagster run {run_id}", clock=lambda: later).acquire()


def committed_old_day(lake_root: Path) -> tuple[LocalLakeResource, dict]:
    """A day committed by an earlier run (OLD), NEW staged by run "job", and the day folders' bytes."""
    lake = LocalLakeResource(root=str(lake_root))
    write_curated_day(lake_root, DAY, OLD)
    return lake, stage_day(lake_root, NEW, "job")


def test_a_lease_taken_over_between_the_moves_and_the_record_writes_and_deletes_nothing(tmp_path, curate):
    lake_root = tmp_path / "lake"
    lake, staged = committed_old_day(lake_root)
    day_folder = lake_root / "curated" / "order_lines" / f"order_date={DAY}"
    before = {name: data for name, data in snapshot(day_folder).items() if not name.startswith("_staging_")}
    held = CuratedDayLease(lake, DAY, "job").acquire()
    script_lake = curate.Lake(str(lake_root))
    steps = []

    def on_step(name):
        steps.append(name)
        if len(steps) == 1:  # the staged file is in the day folder; the record is next
            take_over(lake, DAY, held, "other")

    with pytest.raises(curate.LeaseLostError) as refused:
        curate.commit_day(curate.LocalFiles(script_lake), script_lake, "order_lines", DAY.isoformat(),
                          staged["order_lines"], "job", on_step, curate.DayLease(CURATED_LEASE_FOLDER, "job"))
    message = str(refused.value)
    assert f"order_date={DAY}" in message and "belongs to run 'other'" in message and "'job'" in message
    assert steps == ["moved:part-00000-job.snappy.parquet"]  # no "record", no "deleted:..."
    after = {name: data for name, data in snapshot(day_folder).items() if not name.startswith("_staging_")}
    # Every earlier file and the earlier record are byte for byte there; the only new file is
    # the unlisted moved one (beside this run's own staging folder), which readers never see and
    # the next commit removes.
    assert {name: data for name, data in after.items() if name in before} == before
    assert set(after) - set(before) == {"part-00000-job.snappy.parquet"}
    assert sorted(line["order_id"] for line in lake.read_curated("order_lines", DAY).to_pylist()) == ["O-1", "O-2"]


@pytest.mark.parametrize("lease_state", ["absent", "another run's", "expired"])
def test_a_lease_not_held_refuses_before_moving_anything(tmp_path, curate, lease_state):
    lake_root = tmp_path / "lake"
    lake, staged = committed_old_day(lake_root)
    now = 1_900_000_000.0
    if lease_state != "absent":
        holder = "other" if lease_state == "another run's" else "job"
        expires_at = now + 60 if lease_state == "another run's" else now - 1
        lake.write_bytes(curated_lease_key(DAY), json.dumps({"run_id": holder, "expires_at": expires_at}).encode())
    before = day_folders(lake_root, DAY.isoformat())
    script_lake = curate.Lake(str(lake_root))
    lease = curate.DayLease(CURATED_LEASE_FOLDER, "job", clock=lambda: now)
    steps = []
    with pytest.raises(curate.LeaseLostError, match=f"order_date={DAY}: lease .*_leases/order_date={DAY}.json"):
        curate.commit_day(curate.LocalFiles(script_lake), script_lake, "dim_product", DAY.isoformat(),
                          staged["dim_product"], "job", steps.append, lease)
    assert steps == [] and day_folders(lake_root, DAY.isoformat()) == before


def test_the_runs_own_live_lease_lets_the_commit_through(tmp_path, curate):
    lake_root = tmp_path / "lake"
    lake, staged = committed_old_day(lake_root)
    script_lake = curate.Lake(str(lake_root))
    with CuratedDayLease(lake, DAY, "job"):
        listed = curate.commit_day(curate.LocalFiles(script_lake), script_lake, "order_lines", DAY.isoformat(),
                                   staged["order_lines"], "job", None, curate.DayLease(CURATED_LEASE_FOLDER, "job"))
    assert listed == ["part-00000-job.snappy.parquet"]
    assert sorted(line["order_id"] for line in lake.read_curated("order_lines", DAY).to_pylist()) == ["O-1", "O-3"]


def test_the_hadoop_file_api_reads_the_lease_too(tmp_path, spark, curate):
    lake_root = tmp_path / "lake"
    lake = LocalLakeResource(root=str(lake_root))
    script_lake = curate.Lake(f"file://{lake_root}")
    files = curate.HadoopFiles(spark, script_lake)
    lease = curate.DayLease(CURATED_LEASE_FOLDER, "job")
    with pytest.raises(curate.LeaseLostError, match="is gone"):
        lease.ensure_held(files, script_lake, DAY.isoformat())
    with CuratedDayLease(lake, DAY, "job"):
        lease.ensure_held(files, script_lake, DAY.isoformat())
        assert json.loads(files.read(curated_lease_key(DAY)))["run_id"] == "job"


@pytest.mark.slow
def test_a_job_whose_day_is_taken_over_mid_run_commits_nothing_more_of_that_day(tmp_path, spark, curate, monkeypatch):
    lake_root = tmp_path / "lake"
    build_demo_lake(lake_root)
    curate.run(spark, str(lake_root), [DAY_1, DAY_2], log=lambda message: None)  # the day's current output
    before = day_folders(lake_root, DAY_2)
    lake = LocalLakeResource(root=str(lake_root))
    leases = {day: CuratedDayLease(lake, dt.date.fromisoformat(day), "job").acquire() for day in (DAY_1, DAY_2)}
    commit_day, commits = curate.commit_day, []

    def commit_then_lose_day_2(*args, **kwargs):
        listed = commit_day(*args, **kwargs)
        commits.append(args[2:4])
        if len(commits) == 1:  # the job's first commit is done; now DAY_2's lease goes to another run
            take_over(lake, dt.date.fromisoformat(DAY_2), leases[DAY_2], "other")
        return listed

    monkeypatch.setattr(curate, "commit_day", commit_then_lose_day_2)
    with pytest.raises(curate.LeaseLostError, match=f"order_date={DAY_2}: lease .* belongs to run 'other'"):
        curate.run(spark, str(lake_root), [DAY_1, DAY_2], log=lambda message: None,
                   lease=curate.DayLease(CURATED_LEASE_FOLDER, "job"))
    assert commits == [("order_lines", DAY_1)]  # committed while held; DAY_2 refused at its first table
    # DAY_2's four table folders are byte for byte the earlier run's (this job's staging is gone too).
    assert day_folders(lake_root, DAY_2) == before


def test_lease_arguments_are_optional_and_come_in_pairs(curate):
    base = ["script.py", "--lake_root", "s3://b/p", "--order_date", DAY_1]
    assert curate.parse_lease_args(base) is None  # the Step Functions export passes neither
    lease = curate.parse_lease_args(base + ["--lease_key_prefix", "curated/_leases", "--lease_run_id=r-1"])
    assert (lease.key_prefix, lease.run_id, lease.key(DAY_1)) == (
        "curated/_leases", "r-1", f"curated/_leases/order_date={DAY_1}.json")
    assert lease.key(DAY_1) == curated_lease_key(dt.date.fromisoformat(DAY_1))  # the asset's key
    with pytest.raises(SystemExit, match="--lease_run_id"):
        curate.parse_lease_args(base + ["--lease_key_prefix", "curated/_leases"])


class RecordingEtl(EtlResource):
    """Stands in for the Glue job: records its arguments and the lease it finds, then stops."""

    calls: list = []

    def run_script(self, context, script, arguments, **options):
        lake = LocalLakeResource(root=arguments["lake_root"])
        lease = load_script().parse_lease_args(["s"] + [f"--{k}={v}" for k, v in arguments.items()])
        found = json.loads(lake.read_bytes(lease.key(arguments["order_date"])))
        RecordingEtl.calls.append((dict(arguments), found["run_id"], context.run_id))
        raise dg.Failure("stub job stops here", allow_retries=False)


def test_the_asset_passes_the_job_the_lease_it_holds(tmp_path):
    RecordingEtl.calls = []
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    with dg.instance_for_test() as instance:
        dg.materialize([curated_sales], partition_key=DAY.isoformat(), instance=instance,
                       resources={"etl": RecordingEtl(), "lake": lake}, raise_on_error=False)
    ((arguments, lease_run_id, run_id),) = RecordingEtl.calls
    assert arguments["lease_key_prefix"] == transform_assets.CURATED_LEASE_FOLDER
    assert arguments["lease_run_id"] == lease_run_id == run_id
