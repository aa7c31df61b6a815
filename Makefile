# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/dagster_home

.PHONY: install demo dev test serve-source clean chromium bench bench-backfill s3a-jars

$(VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/sales-pipeline demo --days 3

dev: install
	$(BIN)/dagster dev -w workspace.yaml

test: install
	$(BIN)/pytest

# Test prerequisite: the dashboard test drives Debian's headless chromium. apt only runs
# when chromium is absent (sudo when not root).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

# hadoop-aws + AWS SDK jars for local Spark on s3a:// (and s3://) lakes, from a PyPI sdist,
# checked against pinned sha256s, cached in $XDG_CACHE_HOME (default ~/.cache)/sales_assets/s3a-jars/.
# The tests fetch them on their own; this is for fetching ahead (e.g. before going offline).
s3a-jars: install
	$(BIN)/python -m sales_assets.transform.s3a_jars

# BENCH_ORDERS orders a day over BENCH_DAYS days; results in bench/results/ (latest.md).
BENCH_ORDERS ?= 100000
BENCH_DAYS ?= 1
bench: install
	$(BIN)/sales-pipeline bench --orders $(BENCH_ORDERS) --days $(BENCH_DAYS) --empty-day

# The backfill target: 30 days x 10k orders as one run vs one day of 300k (latest-backfill.md).
bench-backfill: install
	$(BIN)/sales-pipeline bench --backfill-compare --orders 10000 --days 30

serve-source: install
	$(BIN)/sales-pipeline serve-source

clean:
	rm -rf .sales_data dagster_home/storage dagster_home/history dagster_home/schedules dagster_home/logs
