"""The sales pipeline's Dagster code location (``dagster ... -m sales_assets``)."""

import warnings

import dagster as dg

# The project deliberately uses Dagster's beta/preview APIs (single-run backfills,
# partitioned checks); their import-time warnings are not the user's concern.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from sales_assets.definitions import defs as defs  # noqa: E402
