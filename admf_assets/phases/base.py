"""What every phase implementation receives and returns.

A phase implementation is a function ``run(ctx: PhaseContext) -> PhaseResult``: it takes the
loaded upstream values, calls the engine, and returns DataFrames (one per canonical output)
with their metadata.  The compiler (``admf_assets.workflow.compiler``) does the Dagster part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from admf_assets.workflow.graph import PhaseNode, WorkflowGraph
from resources.storage import TableStore


class PhaseError(Exception):
    """A problem a user can fix (bad config for the data, missing market data...).

    The compiler turns it into a Dagster ``Failure`` whose description is this one line,
    prefixed with the workflow file and phase."""


@dataclass
class PhaseContext:
    graph: WorkflowGraph
    node: PhaseNode
    inputs: dict[str, Any]  #: canonical output name -> value, for the consumed upstream edges
    upstream: dict[str, Any]  #: 'phase.output' -> value, every loaded upstream asset
    store: TableStore
    reports_dir: Path
    run_id: str = ""
    lineage: list[dict] = field(default_factory=list)
    log: Any = logging.getLogger("admf.phase")

    @property
    def config(self) -> dict:
        return dict(self.node.config)

    def need(self, canonical: str) -> Any:
        if canonical not in self.inputs:
            raise PhaseError(f"needs an input providing '{canonical}' (none is connected)")
        return self.inputs[canonical]

    def output_param(self, canonical: str, name: str, default=None):
        for o in self.node.outputs:
            if o.canonical == canonical:
                return o.params.get(name, default)
        return default


@dataclass
class PhaseResult:
    outputs: dict[str, pd.DataFrame]  #: canonical output name -> value
    metadata: dict[str, dict] = field(default_factory=dict)  #: canonical name -> metadata
    metrics: dict[str, float] = field(default_factory=dict)  #: checked by success criteria


# ----------------------------------------------------------------------------- helpers
def md_table(df: pd.DataFrame | None, n: int = 10, floatfmt: str = ".4f") -> dg.MetadataValue:
    if df is None or df.empty:
        return dg.MetadataValue.md("_no rows_")
    return dg.MetadataValue.md(df.head(n).to_markdown(index=False, floatfmt=floatfmt))


def metric_metadata(metrics: dict) -> dict:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, (bool, np.bool_)):
            out[k] = dg.MetadataValue.bool(bool(v))
        elif isinstance(v, (int, np.integer)):
            out[k] = dg.MetadataValue.int(int(v))
        elif isinstance(v, (float, np.floating)):
            out[k] = dg.MetadataValue.float(float(v)) if np.isfinite(v) else dg.MetadataValue.text(str(v))
        elif v is not None:
            out[k] = dg.MetadataValue.text(str(v))
    return out


def close_matrix(bars: pd.DataFrame, split: str | None = None) -> pd.DataFrame:
    """dates x symbols close prices; ``split`` 'train'/'test' restricts the rows, None keeps all."""
    if split in ("train", "test"):
        bars = bars[bars["split"] == split]
    close = bars.pivot(index="date", columns="symbol", values="close").sort_index()
    close.index = pd.DatetimeIndex(close.index, name="date")
    return close
