"""Risk guarded: the benchmark's ingest figure stops measuring what a deployed ingest does.

The ingest stage runs like the Lambda package (no Dagster: the package init imports nothing,
the plain object store): if it started importing Dagster again, every ingest figure would carry
about 2 s of import that no landed day pays; if it landed something other than what a
clean `land_day` lands, its MB/s would be of the wrong bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

from sales_assets.bench.harness import _stage_command
from sales_assets.ingest.landing import read_manifest, verify_manifest
from sales_assets.ingest.store import LocalObjectStore
from sales_assets.source import contract
from sales_assets.source.demo_data import DemoDataConfig
from sales_assets.source.demo_server import DemoSourceServer

DAY = dt.date(2026, 3, 2)


def test_the_bench_ingest_lands_the_day_without_importing_dagster(tmp_path):
    lake = tmp_path / "lake"
    with DemoSourceServer(config=DemoDataConfig(orders_per_day=300), cache_days=1) as server:
        params = {"lake_root": str(lake), "days": [DAY.isoformat()], "url": server.url, "token": server.token,
                  "page_size": 100}
        command = _stage_command("ingest", params)
        # -X importtime lists every module the process imports, on stderr.
        done = subprocess.run([command[0], "-X", "importtime", *command[1:]], capture_output=True, text=True,
                              timeout=120)
        served = [contract.dumps_exact(r).encode() + b"\n" for r in server.served_records(DAY)]
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "sales_assets.ingest.landing" in imported
    assert not {name for name in imported if name.split(".")[0] in ("dagster", "pyarrow", "pydantic")}
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    store = LocalObjectStore(lake)
    manifest = read_manifest(store, DAY)
    assert verify_manifest(store, manifest) == []
    landed = b"".join(store.read_bytes(page["key"]) for page in manifest["pages"])
    assert landed == b"".join(served)
    assert figures["bytes"] == len(landed) and figures["orders"] == len(served) == manifest["record_count"]
