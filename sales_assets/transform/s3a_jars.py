"""The two jars local Spark needs to read and write ``s3a://`` (and ``s3://``) lakes.

pyspark ships hadoop-client but not Hadoop's S3 connector. Glue has EMRFS built in; a local
Spark run of ``glue_scripts/`` against S3 (or moto, in the tests) needs ``hadoop-aws`` and the
AWS SDK bundle it was built with. Maven Central is not always reachable where PyPI is, so they
come from the PyPI sdist ``sagemaker_pyspark==1.4.5``, which carries exactly that pair
(``hadoop-aws-3.3.1`` was built against ``aws-java-sdk-bundle-1.11.901``); hadoop-aws 3.3.1
runs on pyspark 3.5's hadoop-client 3.3.4.

Callers may rely on:
- ``ensure_jars()`` returns the paths of both jars in the cache folder (``cache_dir()``), each
  checked against its pinned sha256; it downloads only when a jar is missing or does not match,
  and extracts only those two members of the 181 MB sdist, which it then deletes.
- ``S3AJarsError`` says what failed (download, digest) and how to retry; a cache never holds a
  jar whose digest was not checked (written under a temporary name, renamed once verified).
- ``spark_jars()`` is the comma-separated value for Spark's ``spark.jars``.

``make s3a-jars`` (``python -m sales_assets.transform.s3a_jars``) fetches them ahead of time.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

SDIST_REQUIREMENT = "sagemaker_pyspark==1.4.5"
SDIST_JAR_FOLDER = "sagemaker_pyspark-1.4.5/deps/jars"
# Pinned: a changed upload, a truncated download or a cache edited by hand is refused.
JAR_SHA256 = {
    "hadoop-aws-3.3.1.jar": "6be50ad8a8b445d2802381b085b2a3ede5c29d353450a6a21f16b2fefa962b6e",
    "aws-java-sdk-bundle-1.11.901.jar": "b87175b32a16544cc1b37cf40390eb375833e62bed67f8ce6cde4b7ad6429ead",
}
CACHE_SUBDIR = Path("sales_assets") / "s3a-jars"
_CHUNK = 1 << 20


class S3AJarsError(RuntimeError):
    """The S3A jars could not be fetched or did not match their pinned digests."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/sales_assets/s3a-jars``, ``~/.cache/sales_assets/s3a-jars`` by default."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / CACHE_SUBDIR


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(folder: Path, digests: Mapping[str, str]) -> bool:
    return all((folder / name).is_file() and sha256_of(folder / name) == digest
               for name, digest in digests.items())


def pip_download(requirement: str, dest: Path) -> Path:
    """The sdist of ``requirement`` downloaded into ``dest`` by this interpreter's pip."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
               "--disable-pip-version-check", "--dest", str(dest), requirement]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    archives = sorted(dest.glob("*.tar.gz"))
    if completed.returncode != 0 or len(archives) != 1:
        tail = "\n".join((completed.stderr or completed.stdout or "").strip().splitlines()[-8:])
        raise S3AJarsError(
            f"could not download {requirement} from PyPI (it carries the hadoop-aws and AWS SDK jars "
            f"Spark needs for s3a://): `pip {' '.join(command[3:])}` exited {completed.returncode}"
            f"{': ' + tail if tail else ''}. Check that PyPI is reachable (pip's index settings, proxy) "
            f"and run `make s3a-jars` again, or put {' and '.join(JAR_SHA256)} (sha256 pinned in "
            f"{__name__}) into {dest.parent}.")
    return archives[0]


def extract_jars(archive: Path, folder: Path, digests: Mapping[str, str]) -> list[Path]:
    """Only the jars named in ``digests`` from ``archive`` into ``folder``, each verified first."""
    wanted = {f"{SDIST_JAR_FOLDER}/{name}": name for name in digests}
    found: list[Path] = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            name = wanted.get(member.name)
            if name is None or not member.isfile():
                continue
            target = folder / name
            temp = folder / f".{name}.{os.getpid()}.part"
            digest = hashlib.sha256()
            try:
                with tar.extractfile(member) as source, open(temp, "wb") as sink:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        sink.write(chunk)
                if digest.hexdigest() != digests[name]:
                    raise S3AJarsError(
                        f"{name} in {archive.name} has sha256 {digest.hexdigest()}, expected {digests[name]}: "
                        f"refusing it (the upload changed, or the download is corrupt)")
                os.replace(temp, target)
            finally:
                if temp.exists():
                    temp.unlink()
            found.append(target)
    missing = sorted(set(digests) - {path.name for path in found})
    if missing:
        raise S3AJarsError(f"{archive.name} holds no {', '.join(missing)} under {SDIST_JAR_FOLDER}/")
    return [folder / name for name in digests]


def ensure_jars(folder: Path | None = None, digests: Mapping[str, str] = JAR_SHA256,
                download: Callable[[str, Path], Path] = pip_download) -> list[Path]:
    """Paths of the verified jars in ``folder`` (``cache_dir()``), fetched only when needed."""
    folder = Path(folder) if folder is not None else cache_dir()
    if _verified(folder, digests):
        return [folder / name for name in digests]
    folder.mkdir(parents=True, exist_ok=True)
    # The sdist goes next to the cache (same filesystem) and is deleted with its folder.
    with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as work:
        archive = download(SDIST_REQUIREMENT, Path(work))
        return extract_jars(archive, folder, digests)


def spark_jars(folder: Path | None = None) -> str:
    """The ``spark.jars`` value for the verified jars (fetched when needed)."""
    return ",".join(str(path) for path in ensure_jars(folder))


def main() -> None:
    try:
        paths = ensure_jars()
    except S3AJarsError as error:
        raise SystemExit(f"s3a-jars: {error}") from None
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
