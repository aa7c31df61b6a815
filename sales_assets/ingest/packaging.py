"""Build the zips that ship project modules to AWS without Dagster.

- The ingest Lambda's deployment zip (``sales-pipeline package-lambda``): the handler and
  exactly the project modules it imports (listed in ``LAMBDA_MODULES``; none imports Dagster,
  pydantic or pyarrow), a stand-in ``sales_assets/__init__.py`` (the real one loads the Dagster
  code location), and, unless ``vendor=False``, ``requests`` with its dependencies copied from
  the current environment. boto3 is left out: the Lambda Python runtime provides it.
- The Glue job's ``--extra-py-files`` zip (``build_glue_lease_zip``): the day lease and the
  object store it runs on (``GLUE_LEASE_MODULES``, standard library only; boto3 is Glue's), so
  ``glue_scripts/curate_sales_orders.py`` takes the same leases as the Dagster asset when it is
  started without them (by Step Functions or by hand).

Builds are reproducible: entries are sorted and carry a fixed timestamp, so the same sources
give the same bytes (and the same CodeSha256 in AWS).
"""

from __future__ import annotations

import importlib.util
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sales_assets.ingest.lambda_handler import HANDLER

ZIP_NAME = "sales-ingest-lambda.zip"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # .../sales_assets
# Project modules the handler imports, transitively (a test imports the handler from
# the unzipped archive with Dagster blocked, so a missing entry here fails it).
LAMBDA_MODULES = (
    "settings.py",
    "source/__init__.py",
    "source/contract.py",
    "source/client.py",
    "ingest/__init__.py",
    "ingest/landing.py",
    "ingest/lease.py",
    "ingest/store.py",
    "ingest/lambda_handler.py",
)
# requests and what it imports; all pure Python except charset_normalizer's optional
# compiled speedups, which fall back to pure Python on another platform.
VENDORED_PACKAGES = ("requests", "urllib3", "idna", "certifi", "charset_normalizer")
STUB_INIT = (
    '"""The sales pipeline\'s ingest code, as packaged for AWS Lambda (no Dagster).\n\n'
    f'Handler: {HANDLER}\n"""\n'
)
GLUE_LEASE_ZIP_NAME = "sales-glue-lease.zip"
# The lease and its store import only the standard library (and boto3 when the store is S3):
# a test imports them from the built zip with nothing else on sys.path.
GLUE_LEASE_MODULES = (
    "ingest/__init__.py",
    "ingest/lease.py",
    "ingest/store.py",
)
GLUE_STUB_INIT = (
    '"""The sales pipeline\'s day lease, as shipped to the Glue job with --extra-py-files (no Dagster)."""\n'
)
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIP_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class LambdaPackage:
    path: Path
    handler: str
    entries: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def _package_files(name: str) -> list[tuple[Path, str]]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"cannot vendor {name!r}: it is not installed in this environment as a package")
    root = Path(next(iter(spec.submodule_search_locations)))
    files = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(_SKIP_SUFFIXES):
            files.append((path, f"{name}/{path.relative_to(root).as_posix()}"))
    return files


def _write_zip(target: Path, files: list[tuple[Path | bytes, str]]) -> tuple[str, ...]:
    """Write ``files`` ((source path or bytes, name in the zip)) to ``target`` reproducibly,
    replacing it only once complete; returns the entry names in order."""
    files = sorted(files, key=lambda item: item[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for source, name in files:
            data = source if isinstance(source, bytes) else source.read_bytes()
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    tmp.replace(target)
    return tuple(name for _, name in files)


def _project_files(stub_init: str, modules: tuple[str, ...]) -> list[tuple[Path | bytes, str]]:
    return [(stub_init.encode(), "sales_assets/__init__.py")] + [
        (PACKAGE_ROOT / module, f"sales_assets/{module}") for module in modules]


def build_lambda_zip(out_dir: str | Path, vendor: bool = True) -> LambdaPackage:
    """Write ``out_dir/sales-ingest-lambda.zip`` and describe it."""
    files = _project_files(STUB_INIT, LAMBDA_MODULES)
    if vendor:
        for name in VENDORED_PACKAGES:
            files += _package_files(name)
    target = Path(out_dir) / ZIP_NAME
    entries = _write_zip(target, files)
    return LambdaPackage(path=target, handler=HANDLER, entries=entries)


def build_glue_lease_zip(out_dir: str | Path) -> Path:
    """Write ``out_dir/sales-glue-lease.zip`` (the Glue job's ``--extra-py-files``) and return its path."""
    target = Path(out_dir) / GLUE_LEASE_ZIP_NAME
    _write_zip(target, _project_files(GLUE_STUB_INIT, GLUE_LEASE_MODULES))
    return target
