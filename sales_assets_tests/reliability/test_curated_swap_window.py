"""Guards fault 15's narrowest windows: the Glue script commits a curated table-day in steps
(staged files moved into the day folder under run-unique names, the `_manifest.json` record
written last, then every unlisted file and staging folder deleted). A process killed after any
one of those steps must leave readers either the previous day or the new one, whole: never an
empty day (the old two-rename swap left no folder, which the loader read as an empty day), nor
both copies. The re-run must converge and leave no stale file. Runs the script's own
`commit_day` on a local lake (no Spark: the steps are plain file operations), killing it with
a BaseException the script's cleanup does not catch, as SIGKILL would."""
from __future__ import annotations

from pathlib import Path

from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.warehouse import DuckDBWarehouseResource
from sales_assets.warehouse import loader
from sales_assets_tests.reliability.conftest import DAY, NEW, OLD, stage_day
from sales_assets_tests.warehouse.curated_builders import expected_figures, write_curated_day


def commit_all(curate, lake_root: Path, staged: dict[str, str], run_id: str, kill_after: int | None) -> bool:
    """Commit every staged table, each killed after its `kill_after`-th step; True if none was."""
    lake = curate.Lake(str(lake_root))
    killed = False
    for table, key in staged.items():
        steps = []

        def on_step(name, steps=steps):
            steps.append(name)
            if len(steps) == kill_after:
                raise curate.CommitInterrupted(name)

        try:
            curate.commit_day(curate.LocalFiles(lake), lake, table, DAY.isoformat(), key, run_id, on_step)
        except curate.CommitInterrupted:
            killed = True
    return killed


def loaded_figures(warehouse: DuckDBWarehouseResource, lake_root: Path):
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY])
        return loader.fact_figures(session, [DAY])[DAY]


def test_a_kill_at_every_step_of_the_commit_never_empties_or_duplicates_a_loaded_day(tmp_path, curate):
    kill_after = 1
    while True:
        lake_root = tmp_path / f"lake-{kill_after}"
        write_curated_day(lake_root, DAY, OLD)
        # A crashed earlier run's leftovers, which the commit must also clean up.
        (lake_root / "curated" / "order_lines" / f"order_date={DAY}" / "part-00000-crashed.snappy.parquet").write_bytes(b"PAR1")
        warehouse = DuckDBWarehouseResource(path=str(tmp_path / f"wh-{kill_after}.duckdb"), lock_timeout_seconds=0)
        assert loaded_figures(warehouse, lake_root) == expected_figures(OLD)

        killed = commit_all(curate, lake_root, stage_day(lake_root, NEW, "run1"), "run1", kill_after)
        # Whatever the step, the day is whole: the old one before the records, the new one after
        # (step 1 moves the one staged file in, step 2 writes the record).
        expected = OLD if killed and kill_after < 2 else NEW
        assert loaded_figures(warehouse, lake_root) == expected_figures(expected)

        # The re-run converges: the new day, and nothing in the folders but records and their files.
        commit_all(curate, lake_root, stage_day(lake_root, NEW, "run2"), "run2", None)
        assert loaded_figures(warehouse, lake_root) == expected_figures(NEW)
        lake = LocalLakeResource(root=str(lake_root))
        for table in loader.STAGES:
            folder = lake_root / "curated" / table / f"order_date={DAY}"
            listed = [key.rsplit("/", 1)[1] for key in lake.curated_files(table, DAY)]
            assert listed == ["part-00000-run2.snappy.parquet"]
            assert sorted(p.name for p in folder.iterdir()) == sorted(listed + ["_manifest.json"])
        if not killed:
            break
        kill_after += 1
    # moved, record, then at least: the old file, the crashed file, the staging folder.
    assert kill_after >= 5
