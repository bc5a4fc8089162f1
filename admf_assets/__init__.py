"""ADMF research platform: YAML research workflows compiled to Dagster assets."""

__version__ = "0.1.0"
