from setuptools import find_packages, setup

# The Dagster family moves in lock-step: dagster-aws 0.29.27 pins dagster 1.13.27
# exactly, and an unpinned install silently falls back to dagster-aws 0.11.
DAGSTER_VERSION = "1.13.27"
DAGSTER_LIBS_VERSION = "0.29.27"

setup(
    name="sales_assets",
    version="0.1.0",
    description="End-to-end AWS-style sales data pipeline as Dagster assets, runnable locally.",
    packages=find_packages(exclude=["sales_assets_tests", "sales_assets_tests.*"]),
    package_data={"sales_assets": ["source/*.yaml", "warehouse/sql/*.sql", "reporting/sql/*.sql", "reporting/templates/*", "bench/sql/*.sql"]},
    include_package_data=True,
    python_requires=">=3.11,<3.13",
    install_requires=[
        f"dagster=={DAGSTER_VERSION}",
        f"dagster-webserver=={DAGSTER_VERSION}",
        f"dagster-aws=={DAGSTER_LIBS_VERSION}",
        f"dagster-pipes=={DAGSTER_VERSION}",
        # AWS Glue 5 runs Spark 3.5 on Python 3.11.
        "pyspark>=3.5,<3.6",
        "boto3>=1.34",
        "requests>=2.31",
        # the source client's transport (requests' own dependency, imported directly)
        "urllib3>=2",
        # validates a page and hands each order's exact bytes without building it (ingest speed)
        "msgspec>=0.18",
        "redshift-connector>=2.1",
        "duckdb>=1.1",
        "sqlglot>=25",
        "pyarrow>=15",
        # the benchmark's JSON parse limit (sales-pipeline bench)
        "orjson>=3.9",
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6", "moto[s3,glue,sns,cloudwatch,logs,secretsmanager,server]>=5", "statelint>=3.1", "cfn-lint>=1.20", "parliament>=1.6.4"],
    },
    entry_points={"console_scripts": ["sales-pipeline=sales_assets.cli:main"]},
)
