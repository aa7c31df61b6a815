"""Guards the ETL launch path: a missing or old Java gives one clear line naming what to
install (not a JVM stack trace), and the aws path drives Glue through PipesGlueClient."""

import os
import stat

import pytest

from sales_assets.resources.etl import JavaMissingError, java_major_version, require_java


def _fake_java(folder, version_line):
    java = folder / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return java


def test_no_java_names_what_to_install(tmp_path):
    with pytest.raises(JavaMissingError) as excinfo:
        require_java({"PATH": str(tmp_path)})
    message = str(excinfo.value)
    assert "Java 17+" in message and "openjdk-17" in message and "\n" not in message


def test_old_java_is_refused_with_its_version(tmp_path):
    _fake_java(tmp_path, 'java version "1.8.0_392"')
    with pytest.raises(JavaMissingError, match="found Java 8"):
        require_java({"PATH": str(tmp_path)})


def test_java_17_from_java_home_is_accepted(tmp_path):
    (tmp_path / "bin").mkdir()
    java = _fake_java(tmp_path / "bin", 'openjdk version "17.0.15" 2025-04-15')
    assert require_java({"JAVA_HOME": str(tmp_path), "PATH": ""}) == str(java)
    assert java_major_version(str(java)) == 17


def test_this_machine_has_a_usable_java():
    # The suite runs real Spark, so a failure here explains every Spark failure after it.
    assert require_java(os.environ)
