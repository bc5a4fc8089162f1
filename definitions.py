"""The Dagster code location: market data plus one asset group and job per workflow YAML."""

import dagster as dg

from admf_assets import market, runtime

defs = dg.Definitions(
    assets=market.ASSETS,
    asset_checks=market.CHECKS,
    jobs=[market.market_data_job],
    schedules=[market.market_data_schedule],
    resources=runtime.resources(),
    executor=runtime.executor(),
)
