"""The Dagster code location: market data plus one asset group and job per workflow YAML."""

from admf_assets.defs import build_defs

defs = build_defs()
