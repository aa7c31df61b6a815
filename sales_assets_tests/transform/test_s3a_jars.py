"""Guards the S3A jar fetcher the S3 tests and `make s3a-jars` rely on: a cache holding the
verified jars must not download 181 MB again; from the sdist only the two jars are kept, each
checked against its pinned digest (a changed or corrupt jar is refused and never cached); a
failed download says what failed and how to retry. A fake sdist stands in for PyPI's."""
from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

from sales_assets.transform import s3a_jars

JARS = {"hadoop-aws-test.jar": b"PK hadoop-aws classes", "sdk-bundle-test.jar": b"PK sdk classes"}
DIGESTS = {name: hashlib.sha256(body).hexdigest() for name, body in JARS.items()}


def fake_sdist(dest: Path, members: dict[str, bytes]) -> Path:
    archive = dest / "sagemaker_pyspark-1.4.5.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return archive


class FakePyPI:
    """``download`` for ``ensure_jars``: writes a fake sdist and counts the calls."""

    def __init__(self, jars: dict[str, bytes]):
        self.members = {f"{s3a_jars.SDIST_JAR_FOLDER}/{name}": body for name, body in jars.items()}
        self.members["sagemaker_pyspark-1.4.5/setup.py"] = b"print('not run')"
        self.members[f"{s3a_jars.SDIST_JAR_FOLDER}/spark-core-other.jar"] = b"PK not wanted"
        self.calls = []

    def __call__(self, requirement: str, dest: Path) -> Path:
        self.calls.append(requirement)
        return fake_sdist(dest, self.members)


def test_the_cache_folder_honours_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert s3a_jars.cache_dir() == tmp_path / "sales_assets" / "s3a-jars"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert s3a_jars.cache_dir() == Path(os.path.expanduser("~")) / ".cache" / "sales_assets" / "s3a-jars"


def test_only_the_two_jars_are_extracted_verified_and_then_reused_without_a_download(tmp_path):
    pypi = FakePyPI(JARS)
    paths = s3a_jars.ensure_jars(tmp_path, DIGESTS, pypi)
    assert pypi.calls == [s3a_jars.SDIST_REQUIREMENT]
    assert [path.read_bytes() for path in paths] == list(JARS.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(JARS)  # no sdist, no temp file left
    assert s3a_jars.ensure_jars(tmp_path, DIGESTS, pypi) == paths
    assert len(pypi.calls) == 1


def test_a_jar_edited_in_the_cache_is_fetched_again(tmp_path):
    pypi = FakePyPI(JARS)
    paths = s3a_jars.ensure_jars(tmp_path, DIGESTS, pypi)
    paths[1].write_bytes(b"truncated")
    s3a_jars.ensure_jars(tmp_path, DIGESTS, pypi)
    assert len(pypi.calls) == 2 and paths[1].read_bytes() == JARS[paths[1].name]


def test_a_jar_whose_digest_differs_is_refused_and_never_cached(tmp_path):
    changed = dict(JARS, **{"sdk-bundle-test.jar": b"PK tampered classes"})
    with pytest.raises(s3a_jars.S3AJarsError, match="sdk-bundle-test.jar .* has sha256 .*expected"):
        s3a_jars.ensure_jars(tmp_path, DIGESTS, FakePyPI(changed))
    assert not (tmp_path / "sdk-bundle-test.jar").exists()
    assert all(p.name in JARS for p in tmp_path.iterdir())  # nothing half written either


def test_an_sdist_without_the_jars_is_a_clear_error(tmp_path):
    with pytest.raises(s3a_jars.S3AJarsError, match="holds no sdk-bundle-test.jar"):
        s3a_jars.ensure_jars(tmp_path, DIGESTS, FakePyPI({"hadoop-aws-test.jar": JARS["hadoop-aws-test.jar"]}))


def test_a_failed_download_names_the_package_the_cause_and_the_retry(tmp_path, monkeypatch):
    # An interpreter whose pip fails the way an unreachable index does.
    failing = tmp_path / "python"
    failing.write_text("#!/bin/sh\necho 'ERROR: Could not find a version that satisfies the requirement' >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(failing))
    with pytest.raises(s3a_jars.S3AJarsError) as failed:
        s3a_jars.ensure_jars(tmp_path / "cache", DIGESTS)
    message = str(failed.value)
    assert s3a_jars.SDIST_REQUIREMENT in message and "exited 1" in message
    assert "Could not find a version" in message and "make s3a-jars" in message
    assert list((tmp_path / "cache").iterdir()) == []  # the download folder is gone

