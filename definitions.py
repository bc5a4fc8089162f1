"""The Dagster code location: market data plus one asset group and job per workflow YAML."""

import dagster as dg

from admf_assets import market, runtime
from admf_assets.workflow.compiler import compile_all

workflows = compile_all()

defs = dg.Definitions(
    assets=[*market.ASSETS, *(a for w in workflows for a in w.assets)],
    asset_checks=market.CHECKS,
    jobs=[market.market_data_job, *(w.job for w in workflows)],
    schedules=[market.market_data_schedule],
    resources=runtime.resources(),
    executor=runtime.executor(),
)
