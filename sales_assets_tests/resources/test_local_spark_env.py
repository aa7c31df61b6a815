"""Guards the local Spark launch settings that cut the per-day fixed cost: the driver JVM flags
must reach spark-submit (SPARK_SUBMIT_OPTS) without dropping a user's own flags, must be flags
this JVM accepts (Spark adds -XX:+IgnoreUnrecognizedVMOptions, so a misspelt flag would be
ignored silently), and the Java probe (one JVM start) must not be repeated for every step."""

import subprocess
from pathlib import Path

import pytest

from sales_assets.resources import etl
from sales_assets.resources.etl import LOCAL_SPARK_JAVA_OPTIONS, LocalSparkEtlResource, require_java


def test_the_script_gets_the_jvm_flags_after_the_users_own():
    resource = LocalSparkEtlResource(spark_driver_memory="3g")
    env = resource.subprocess_env({"SPARK_SUBMIT_OPTS": "-Dmine=1"})
    assert env["SPARK_SUBMIT_OPTS"] == f"-Dmine=1 {LOCAL_SPARK_JAVA_OPTIONS}"
    assert env["SALES_SPARK_DRIVER_MEMORY"] == "3g"
    assert resource.subprocess_env({})["SPARK_SUBMIT_OPTS"] == LOCAL_SPARK_JAVA_OPTIONS
    assert "SPARK_SUBMIT_OPTS" not in LocalSparkEtlResource(small_job_java_options="").subprocess_env({})
    both = LocalSparkEtlResource(spark_java_options="-Xss1m").subprocess_env({}, expected_lines=10)
    assert both["SPARK_SUBMIT_OPTS"] == f"-Xss1m {LOCAL_SPARK_JAVA_OPTIONS}"


def test_only_a_small_job_runs_with_the_quick_compiler_alone():
    # C1 alone made a 1M-order day's transform 1.7x slower: a big job must keep C2.
    resource = LocalSparkEtlResource(small_job_max_lines=1000)
    assert resource.subprocess_env({}, expected_lines=1000)["SPARK_SUBMIT_OPTS"] == LOCAL_SPARK_JAVA_OPTIONS
    assert resource.subprocess_env({}, expected_lines=0)["SPARK_SUBMIT_OPTS"] == LOCAL_SPARK_JAVA_OPTIONS
    assert "SPARK_SUBMIT_OPTS" not in resource.subprocess_env({}, expected_lines=1001)
    big = resource.subprocess_env({"SPARK_SUBMIT_OPTS": "-Dmine=1"}, expected_lines=10**6)
    assert big["SPARK_SUBMIT_OPTS"] == "-Dmine=1"


def test_the_transform_asset_tells_the_engine_how_many_raw_lines_it_will_read(tmp_path):
    import datetime as dt
    import json

    from sales_assets.ingest.landing import manifest_key
    from sales_assets.resources.lake import LocalLakeResource
    from sales_assets.transform.assets import _raw_lines

    lake = LocalLakeResource(root=str(tmp_path))
    days = [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]
    assert _raw_lines(lake, days) is None  # nothing landed: size unknown
    for day, lines in zip(days, (3, 4)):
        lake.write_bytes(manifest_key(day), json.dumps({"line_count": lines}).encode())
    assert _raw_lines(lake, days) == 7


def test_the_default_jvm_flags_are_ones_this_java_accepts():
    java = require_java()
    probe = subprocess.run([java, "-XX:-IgnoreUnrecognizedVMOptions", *LOCAL_SPARK_JAVA_OPTIONS.split(), "-version"],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr


def test_the_java_probe_runs_once_per_java_home_and_path(monkeypatch):
    java = require_java()
    monkeypatch.setattr(etl, "_USABLE_JAVA", {})
    probes = []
    real_run = subprocess.run
    monkeypatch.setattr(etl.subprocess, "run", lambda *a, **k: (probes.append(a), real_run(*a, **k))[1])
    environ = {"JAVA_HOME": "", "PATH": str(Path(java).parent)}
    assert require_java(environ) == require_java(environ)
    assert len(probes) == 1
    with pytest.raises(etl.JavaMissingError):  # another PATH is probed afresh (here: no java on it)
        require_java({"PATH": "/nonexistent"})
