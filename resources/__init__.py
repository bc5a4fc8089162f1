"""Dagster resources: IO managers (Parquet tables with DuckDB views) and market-data sources."""

from resources.io_managers import DuckDBParquetIOManager, ParquetTableIOManager, StorageResource
from resources.market_source import MarketDataSource

__all__ = ["DuckDBParquetIOManager", "ParquetTableIOManager", "StorageResource", "MarketDataSource"]
