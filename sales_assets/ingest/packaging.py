"""Build the ingest Lambda's deployment zip (``sales-pipeline package-lambda``).

The zip holds the handler and exactly the project modules it imports (listed in
``LAMBDA_MODULES``; none imports Dagster, pydantic or pyarrow), a stand-in
``sales_assets/__init__.py`` (the real one loads the Dagster code location), and,
unless ``vendor=False``, ``requests`` with its dependencies copied from the current
environment. boto3 is left out: the Lambda Python runtime provides it.

The build is reproducible: entries are sorted and carry a fixed timestamp, so the
same sources give the same bytes (and the same CodeSha256 in AWS).
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


def build_lambda_zip(out_dir: str | Path, vendor: bool = True) -> LambdaPackage:
    """Write ``out_dir/sales-ingest-lambda.zip`` and describe it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[tuple[Path | bytes, str]] = [(STUB_INIT.encode(), "sales_assets/__init__.py")]
    files += [(PACKAGE_ROOT / module, f"sales_assets/{module}") for module in LAMBDA_MODULES]
    if vendor:
        for name in VENDORED_PACKAGES:
            files += _package_files(name)
    files.sort(key=lambda item: item[1])
    target = out / ZIP_NAME
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for source, name in files:
            data = source if isinstance(source, bytes) else source.read_bytes()
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    tmp.replace(target)
    return LambdaPackage(path=target, handler=HANDLER, entries=tuple(name for _, name in files))
