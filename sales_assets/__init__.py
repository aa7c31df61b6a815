"""The sales pipeline. Dagster loads the code location from ``sales_assets.definitions``.

This package init imports nothing on purpose: the ingest code runs as an AWS Lambda and as a
benchmark stage without Dagster, whose import costs about two seconds per process.
"""
