"""Guards the Glue calling convention: on AWS Glue the script is started as
`script.py --JOB_NAME x --order_date D --lake_root s3://... ` plus Glue's own arguments
(--JOB_ID, --JOB_RUN_ID, --job-bookmark-option, --TempDir, Pipes' --dagster-pipes-*), and reads
them through `awsglue.utils.getResolvedOptions`. If the script imported something Glue lacks, parsed
its arguments only with argparse, or choked on Glue's extra arguments, the job would fail on AWS
while every local run stayed green. A fake `awsglue` package with getResolvedOptions' semantics
(parse_known_args over argv[1:], the named options required, errors raised, the resolved dict
returned, JOB_NAME resolved only when asked) stands in for Glue's; no Spark is started."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types

import pytest

from .conftest import SCRIPT_PATH

GLUE_ARGV = [
    "/tmp/glue/curate_sales_orders.py",
    "--JOB_ID", "j_0123456789abcdef", "--JOB_RUN_ID", "jr_0123456789abcdef",
    "--job-bookmark-option", "job-bookmark-disable", "--TempDir", "s3://aws-glue-temp/x",
    "--enable-metrics", "true", "--enable-continuous-cloudwatch-log", "true",
    "--JOB_NAME", "curate_sales_orders",
    "--order_date", "2026-11-20", "--lake_root", "s3://sales-lake/prod",
    "--dagster-pipes-context", "eyJ4IjogMX0=", "--dagster-pipes-messages", "eyJ5IjogMn0=",
]

# The fake package's source, shared by the in-process tests and the subprocess one.
FAKE_AWSGLUE_SOURCE = textwrap.dedent('''
    import argparse

    CALLS = []

    class GlueArgumentError(Exception):
        pass

    class GlueArgumentParser(argparse.ArgumentParser):
        # Glue's parser raises instead of printing usage and exiting.
        def error(self, message):
            raise GlueArgumentError(message)

    def getResolvedOptions(args, options):
        CALLS.append((list(args), list(options)))
        parser = GlueArgumentParser()
        parser.add_argument("--job-bookmark-option", required=False)
        parser.add_argument("--continuation-option", required=False)
        parser.add_argument("--TempDir", required=False)
        parser.add_argument("--JOB_ID", required=False)
        parser.add_argument("--JOB_RUN_ID", required=False)
        for option in options:
            parser.add_argument("--" + option, required=True)
        parsed, _extra = parser.parse_known_args(args[1:])
        # Glue returns the reserved keys too (None when absent); callers pick what they asked for.
        return vars(parsed)
''')


def _fake_awsglue() -> tuple[types.ModuleType, types.ModuleType]:
    package = types.ModuleType("awsglue")
    package.__path__ = []  # a package, so `from awsglue.utils import ...` resolves
    utils = types.ModuleType("awsglue.utils")
    exec(FAKE_AWSGLUE_SOURCE, utils.__dict__)
    package.utils = utils
    return package, utils


@pytest.fixture
def fake_glue(monkeypatch):
    package, utils = _fake_awsglue()
    monkeypatch.setitem(sys.modules, "awsglue", package)
    monkeypatch.setitem(sys.modules, "awsglue.utils", utils)
    return utils


def test_glue_arguments_resolve_through_get_resolved_options(curate, fake_glue):
    lake_root, dates = curate.parse_args(GLUE_ARGV)
    assert (lake_root, dates) == ("s3://sales-lake/prod", ["2026-11-20"])
    # Glue's resolver, not the argparse fallback, read them: the whole argv went in.
    assert fake_glue.CALLS and fake_glue.CALLS[0][0] == GLUE_ARGV
    assert set(fake_glue.CALLS[0][1]) == {"lake_root", "order_date"}


def test_glue_date_range_is_resolved_too(curate, fake_glue):
    lake_root, dates = curate.parse_args(GLUE_ARGV + ["--order_date_end", "2026-11-22"])
    assert dates == ["2026-11-20", "2026-11-21", "2026-11-22"]
    assert any("order_date_end" in options for _args, options in fake_glue.CALLS)


def test_missing_required_glue_argument_fails_the_job(curate, fake_glue):
    argv = [arg for arg in GLUE_ARGV]
    index = argv.index("--order_date")
    del argv[index:index + 2]
    with pytest.raises(fake_glue.GlueArgumentError, match="order_date"):
        curate.parse_args(argv)


def test_bad_date_from_glue_is_a_clear_exit(curate, fake_glue):
    argv = [("2026-20-11" if arg == "2026-11-20" else arg) for arg in GLUE_ARGV]
    with pytest.raises(SystemExit, match="invalid date"):
        curate.parse_args(argv)


def test_script_imports_and_parses_on_glue_without_spark(tmp_path):
    # A fresh interpreter: importing the script and parsing Glue's argv must not import pyspark
    # (on Glue the session comes from GlueContext later; a module-level Spark import or session
    # would run before Pipes is opened and fail outside Glue's runtime).
    fake_dir = tmp_path / "site"
    (fake_dir / "awsglue").mkdir(parents=True)
    (fake_dir / "awsglue" / "__init__.py").write_text("")
    (fake_dir / "awsglue" / "utils.py").write_text(FAKE_AWSGLUE_SOURCE)
    probe = textwrap.dedent(f'''
        import importlib.util, json, sys
        sys.path.insert(0, {str(fake_dir)!r})
        spec = importlib.util.spec_from_file_location("glue_job", {str(SCRIPT_PATH)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        import awsglue.utils
        result = module.parse_args({GLUE_ARGV!r})
        print(json.dumps({{"result": result, "calls": len(awsglue.utils.CALLS),
                          "pyspark": any(m.split(".")[0] == "pyspark" for m in sys.modules)}}))
    ''')
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report == {"result": ["s3://sales-lake/prod", ["2026-11-20"]], "calls": 1, "pyspark": False}


def test_fake_matches_argparse_fallback(curate):
    # Without awsglue the same argv gives the same answer (the local/by-hand path).
    assert "awsglue" not in sys.modules
    assert curate.parse_args(GLUE_ARGV) == ("s3://sales-lake/prod", ["2026-11-20"])


def test_glue_lease_arguments_resolve_through_get_resolved_options(curate, fake_glue):
    assert curate.parse_lease_args(GLUE_ARGV) is None  # the Step Functions export passes none
    assert not any("lease_run_id" in options for _args, options in fake_glue.CALLS)
    lease = curate.parse_lease_args(GLUE_ARGV + ["--lease_key_prefix", "curated/_leases", "--lease_run_id", "r-1"])
    assert (lease.key_prefix, lease.run_id) == ("curated/_leases", "r-1")
    assert any(set(options) == {"lease_key_prefix", "lease_run_id"} for _args, options in fake_glue.CALLS)
