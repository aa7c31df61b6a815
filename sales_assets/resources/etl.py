"""The ETL engine: the unmodified ``glue_scripts/*.py`` run through Dagster Pipes.

``local`` runs a script as a PySpark subprocess (``PipesSubprocessClient``);
``aws`` starts the same script as a Glue job (dagster-aws ``PipesGlueClient``).
Either way the script reports its materializations and logs back over Pipes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from importlib.metadata import version as distribution_version
from pathlib import Path

import dagster as dg
from pydantic import Field

GLUE_SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "glue_scripts"
MIN_JAVA_MAJOR = 17
JAVA_HELP = (
    "PySpark needs Java {minimum}+ and {found}. Install a JDK/JRE 17 or newer "
    "(Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`; macOS: `brew install openjdk@17`) "
    "and make `java` available on PATH or set JAVA_HOME."
)


class JavaMissingError(RuntimeError):
    """Java is absent or too old for PySpark; the message says what to install."""


def java_major_version(java: str) -> int | None:
    try:
        probe = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', probe.stderr + probe.stdout)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report themselves as "1.8".
    return int(match.group(2) or 0) if major == 1 else major


# (JAVA_HOME, PATH) -> the java found for them: each `java -version` probe starts a JVM, and a
# run's transform steps would otherwise pay it once each.
_USABLE_JAVA: dict[tuple[str | None, str | None], str] = {}


def require_java(environ: Mapping[str, str] | None = None) -> str:
    """Path of a usable ``java`` (17+), or :class:`JavaMissingError` with one clear line.
    A java found is remembered for the same JAVA_HOME and PATH while it still exists."""
    environ = os.environ if environ is None else environ
    cache_key = (environ.get("JAVA_HOME"), environ.get("PATH"))
    known = _USABLE_JAVA.get(cache_key)
    if known is not None and Path(known).exists():
        return known
    java = _find_java(environ)
    _USABLE_JAVA[cache_key] = java
    return java


def _find_java(environ: Mapping[str, str]) -> str:
    java_home = environ.get("JAVA_HOME")
    candidates = [str(Path(java_home) / "bin" / "java")] if java_home else []
    on_path = shutil.which("java", path=environ.get("PATH"))
    if on_path:
        candidates.append(on_path)
    for java in candidates:
        if not Path(java).exists():
            continue
        major = java_major_version(java)
        if major is not None and major >= MIN_JAVA_MAJOR:
            return java
        if major is not None:
            raise JavaMissingError(JAVA_HELP.format(minimum=MIN_JAVA_MAJOR, found=f"found Java {major} at {java}"))
    raise JavaMissingError(JAVA_HELP.format(minimum=MIN_JAVA_MAJOR, found="no `java` was found"))


class EtlResource(dg.ConfigurableResource, ABC):
    """Runs one script of ``glue_scripts/`` with Glue-style ``--name value`` arguments."""

    @abstractmethod
    def run_script(
        self, context: dg.AssetExecutionContext, script: str, arguments: Mapping[str, str],
        expected_lines: int | None = None,
    ) -> dg.PipesClientCompletedInvocation:
        """``expected_lines``: how many raw lines the job will read, when known (an engine may
        size itself by it)."""


# JVM flags of the local Spark driver for a small job: C1 only (no C2). On a small day the C2
# compiler threads spend more CPU compiling than the code they compile saves (an empty day's
# transform took about half the wall time with C1 only on 2 cores, 100k orders were a little
# faster); on a big day C2's code pays for itself many times (1M orders, quiet machine: 119 s
# with C2, 199 s with C1 only), so the flag is used only up to SMALL_JOB_MAX_LINES raw lines.
LOCAL_SPARK_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"
SMALL_JOB_MAX_LINES = 400_000


class LocalSparkEtlResource(EtlResource):
    """The Glue script as a local PySpark subprocess speaking Dagster Pipes."""

    scripts_dir: str = Field(default=str(GLUE_SCRIPTS_DIR))
    python_executable: str = Field(default=sys.executable)
    spark_driver_memory: str = Field(default="2g", description="spark.driver.memory of the local job")
    spark_java_options: str = Field(
        default="",
        description="JVM flags of the local Spark driver, added after any SPARK_SUBMIT_OPTS of the environment",
    )
    small_job_java_options: str = Field(
        default=LOCAL_SPARK_JAVA_OPTIONS,
        description="JVM flags added for a job of at most small_job_max_lines raw lines (or of unknown size)",
    )
    small_job_max_lines: int = Field(default=SMALL_JOB_MAX_LINES)

    def subprocess_env(self, environ: Mapping[str, str] | None = None,
                       expected_lines: int | None = None) -> dict[str, str]:
        """What the script's process gets on top of ``environ`` (default ``os.environ``)."""
        environ = os.environ if environ is None else environ
        small = expected_lines is None or expected_lines <= self.small_job_max_lines
        # spark-submit adds SPARK_SUBMIT_OPTS to the driver JVM's command line (local mode:
        # the driver is that JVM); the user's own flags come first, ours after them.
        ours = (self.spark_java_options, self.small_job_java_options if small else "")
        java_options = " ".join(o for o in (environ.get("SPARK_SUBMIT_OPTS", ""), *ours) if o)
        env = {
            "PYSPARK_PYTHON": self.python_executable,
            "PYSPARK_DRIVER_PYTHON": self.python_executable,
            "SALES_SPARK_DRIVER_MEMORY": self.spark_driver_memory,
        }
        if java_options:
            env["SPARK_SUBMIT_OPTS"] = java_options
        return env

    def run_script(
        self, context: dg.AssetExecutionContext, script: str, arguments: Mapping[str, str],
        expected_lines: int | None = None,
    ) -> dg.PipesClientCompletedInvocation:
        try:
            require_java()
        except JavaMissingError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        script_path = Path(self.scripts_dir) / script
        if not script_path.is_file():
            raise dg.Failure(description=f"Glue script not found: {script_path}", allow_retries=False)
        command = [self.python_executable, str(script_path)]
        for name, value in arguments.items():
            command += [f"--{name}", value]
        env = self.subprocess_env(expected_lines=expected_lines)
        return dg.PipesSubprocessClient(env=env).run(command=command, context=context)


# dagster-aws's PipesS3ContextInjector writes the context to <key_prefix><30 random letters>/context.json
# (no prefix: at the bucket's root) and deletes it when the run ends, so only a fixed prefix
# lets the job's role be granted the context objects and nothing else of the bucket (the
# exported stack's PipesBucket parameter grants GlueJobRole s3:GetObject on it).
PIPES_KEY_PREFIX = "dagster-pipes/"
# The job's Pipes side must speak the protocol of the Dagster that launches it: the same
# dagster-pipes release as this install (setup.py pins the Dagster family in lock-step).
DAGSTER_PIPES_REQUIREMENT = f"dagster-pipes=={distribution_version('dagster-pipes')}"
# Job arguments a run must not pass: StartJobRun's Arguments replace the job's DefaultArguments
# of the same name, and the job depends on these (the Python modules dagster-pipes and boto3,
# the day-lease zip).
JOB_ARGUMENTS_RESERVED = ("--additional-python-modules", "--extra-py-files")


class GlueEtlResource(EtlResource):
    """The Glue script as an AWS Glue job, launched and followed by dagster-aws's ``PipesGlueClient``.

    The Pipes context travels through S3 (``pipes_bucket``, under ``pipes_key_prefix``) and
    the script's messages come back from CloudWatch Logs (the job's stdout in
    ``/aws-glue/jobs/output``), as dagster-aws documents. The job itself must carry
    ``--additional-python-modules`` with :data:`DAGSTER_PIPES_REQUIREMENT` (the exported
    stack's ``CurateJob`` does); a run never overrides it.
    """

    job_name: str = Field(description="Name of the Glue job whose script is glue_scripts/<script>.")
    pipes_bucket: str = Field(description="S3 bucket for the Pipes context handed to the job.")
    pipes_key_prefix: str = Field(
        default=PIPES_KEY_PREFIX,
        description="Key prefix (ending in /) of the Pipes context objects in pipes_bucket; the job's role "
        "needs s3:GetObject on it (the exported stack grants it for the default)",
    )
    region_name: str | None = None
    endpoint_url: str | None = Field(default=None, description="For tests against moto.")

    def _boto_client(self, service: str):
        import boto3

        return boto3.client(service, region_name=self.region_name, endpoint_url=self.endpoint_url)

    def context_injector(self):
        """The ``PipesS3ContextInjector`` a run hands its context to the job with."""
        from dagster_aws.pipes import PipesS3ContextInjector

        return PipesS3ContextInjector(bucket=self.pipes_bucket, key_prefix=self.pipes_key_prefix,
                                      client=self._boto_client("s3"))

    def run_script(
        self, context: dg.AssetExecutionContext, script: str, arguments: Mapping[str, str],
        expected_lines: int | None = None,
    ) -> dg.PipesClientCompletedInvocation:
        from dagster_aws.pipes import PipesCloudWatchMessageReader, PipesGlueClient

        job_arguments = {f"--{name}": value for name, value in arguments.items()}
        reserved = sorted(set(job_arguments) & set(JOB_ARGUMENTS_RESERVED))
        if reserved:
            raise dg.Failure(
                description=f"job arguments {reserved} would replace the Glue job's own (its Python modules, "
                "the lease zip); set them on the job, not per run", allow_retries=False)
        client = PipesGlueClient(
            client=self._boto_client("glue"),
            context_injector=self.context_injector(),
            message_reader=PipesCloudWatchMessageReader(client=self._boto_client("logs")),
        )
        return client.run(context=context, start_job_run_params={"JobName": self.job_name, "Arguments": job_arguments})
