"""IO managers: DataFrames stored as Parquet (per partition when partitioned), queryable in DuckDB.

``ParquetTableIOManager`` subclasses Dagster's ``UPathIOManager`` (same path scheme:
``<base>/<asset key path>.parquet`` or ``<base>/<asset key path>/<partition>.parquet``) and
adds what a single-run backfill needs: an output covering many partitions is split on the
asset's ``partition_expr`` column (default ``date``) into one file per partition, each written
atomically, so re-materializing a partition replaces exactly its rows.  Every table gets a
DuckDB view (see :mod:`resources.storage`).
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
from upath import UPath

from resources.storage import MissingPartitionsError, TableStore


class ParquetTableIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def __init__(self, store: TableStore, register_views: bool = True):
        self.store = store
        self.register_views = register_views
        super().__init__(base_path=UPath(store.tables))

    # single-file IO (unpartitioned assets) -----------------------------------------------
    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        self.store.write(list(context.asset_key.path), _as_frame(context, obj), views=self.register_views)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        if not path.exists():
            raise dg.Failure(
                description=f"{context.asset_key.to_user_string()} has not been materialized yet "
                f"(no file at {path}); materialize it first.",
                allow_retries=False,
            )
        return self.store.read_file(path)

    # partition-aware IO --------------------------------------------------------------------
    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        if not context.has_asset_partitions:
            super().handle_output(context, obj)
            meta = _frame_metadata(obj)
            size = self.store.size(self.store.file_path(list(context.asset_key.path)))
            if size is not None:
                meta["bytes_on_disk"] = dg.MetadataValue.int(size)
                if not self.register_views and isinstance(obj, pd.DataFrame) and size:
                    # an array-like table: how much smaller than the same numbers as dense float64
                    numeric = obj.select_dtypes("number").shape[1]
                    meta["compression_ratio_vs_float64_on_disk"] = dg.MetadataValue.float(
                        round(len(obj) * numeric * 8 / size, 2))
            context.add_output_metadata(meta)
            return
        df = _as_frame(context, obj)
        col = (context.definition_metadata or {}).get("partition_expr", "date")
        if col not in df.columns:
            raise dg.Failure(
                description=f"{context.asset_key.to_user_string()}: output has no partition "
                f"column '{col}' (columns: {', '.join(map(str, df.columns))})",
                allow_retries=False,
            )
        keys = list(context.asset_partition_keys)
        if isinstance(context.asset_partitions_def, dg.TimeWindowPartitionsDefinition):
            labels = pd.to_datetime(df[col]).dt.strftime("%Y-%m-%d")
        else:  # static keys (walk-forward folds, ...): the column holds the key itself
            labels = df[col].astype(str)
        outside = sorted(set(labels.unique()) - set(keys))
        if outside:
            raise dg.Failure(
                description=f"{context.asset_key.to_user_string()}: {len(outside)} row label(s) outside "
                f"the partitions being materialized (first: {outside[0]}); nothing was written",
                allow_retries=False,
            )
        key = list(context.asset_key.path)
        counts = self.store.write_partitions(key, df, labels.to_numpy(), keys, views=self.register_views)
        if not isinstance(context.asset_partitions_def, dg.TimeWindowPartitionsDefinition):
            # static keys (folds) that the definition no longer has would linger in the DuckDB view
            current = set(context.asset_partitions_def.get_partition_keys())
            self.store.drop_partitions(key, sorted(self.store.stored_partitions(key) - current))
        context.add_output_metadata({
            "run_rows": dg.MetadataValue.int(len(df)),
            "columns": dg.MetadataValue.int(len(df.columns)),
            "partitions_written": len(counts),
            "empty_partitions": sum(1 for n in counts.values() if n == 0),
            "path": dg.MetadataValue.path(str(self.store.table_path(key))),
        })

    def load_input(self, context: dg.InputContext):
        if not context.has_asset_key or not context.has_asset_partitions:
            return super().load_input(context)
        key = list(context.asset_key.path)
        keys = list(context.asset_partition_keys)
        if (context.definition_metadata or {}).get("allow_missing_partitions"):
            stored = self.store.stored_partitions(key)  # e.g. a ledger's days booked so far
            keys = [k for k in keys if k in stored]
        try:
            return self.store.read_partitions(key, keys)
        except MissingPartitionsError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None


def _as_frame(context, obj) -> pd.DataFrame:
    if isinstance(obj, pd.Series):
        return obj.to_frame()
    if not isinstance(obj, pd.DataFrame):
        raise dg.Failure(
            description=f"{context.asset_key.to_user_string()}: the Parquet IO manager stores "
            f"pandas DataFrames, got {type(obj).__name__}",
            allow_retries=False,
        )
    return obj


def _frame_metadata(df: pd.DataFrame) -> dict:
    return {"rows": dg.MetadataValue.int(len(df)),
            "columns": dg.MetadataValue.int(len(df.columns))}


class DuckDBParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Tables as Parquet files under ``storage_root``/tables with DuckDB views in
    ``storage_root``/research.duckdb.  ``register_views=False`` for wide array-like frames."""

    storage_root: str
    register_views: bool = True

    def create_io_manager(self, context) -> ParquetTableIOManager:
        return ParquetTableIOManager(TableStore(self.storage_root), register_views=self.register_views)


class StorageResource(dg.ConfigurableResource):
    """Direct access to the stored tables, for checks and phases that query date ranges."""

    storage_root: str

    def store(self) -> TableStore:
        return TableStore(self.storage_root)
