"""report: one self-contained HTML file (Jinja2, autoescaped) from every upstream result."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from admf_assets import settings
from admf_assets.engine.report import build_research_report, write_report
from admf_assets.phases.base import PhaseContext, PhaseResult, close_matrix
from admf_assets.phases.parameter_search import PARAM_JSON, backtest_config, evaluate_sets, params_from_row

_COVERED = {"bars", "best_parameters", "top_parameter_sets", "optimization_history", "performance_report",
            "validation_results", "correlations"}


def _by_canonical(ctx: PhaseContext) -> dict[str, object]:
    out: dict[str, object] = {}
    for e in ctx.node.upstream:
        out.setdefault(e.canonical, ctx.upstream.get(f"{e.upstream_phase}.{e.upstream_output}"))
    return out


def output_dir(ctx: PhaseContext) -> Path:
    configured = ctx.config.get("output_path")
    if configured:
        p = Path(configured).expanduser()
        return p if p.is_absolute() else settings.storage_root() / p
    return ctx.reports_dir / ctx.graph.workflow_id


def run(ctx: PhaseContext) -> PhaseResult:
    up = _by_canonical(ctx)
    g = ctx.graph
    bars = up.get("bars")
    best = up.get("best_parameters")
    strategy, params = (params_from_row(best.iloc[0]) if best is not None and len(best) else (None, None))
    data = {}
    in_sample = oos = None
    if bars is not None:
        dates = pd.DatetimeIndex(bars["date"].unique()).sort_values()
        test = pd.DatetimeIndex(bars.loc[bars["split"] == "test", "date"].unique()).sort_values()
        data = {"symbols": sorted(bars["symbol"].unique()), "start": dates[0].date(), "end": dates[-1].date(),
                "test_start": test[0].date() if len(test) else None, "n_bars": len(dates)}
        if best is not None and len(best):
            # the in-sample returns as the search evaluated them (its trading settings)
            edge = next(e for e in ctx.node.upstream if e.canonical == "best_parameters")
            search_cfg = dict(g.phases[edge.upstream_phase].config)
            in_sample = evaluate_sets(close_matrix(bars, search_cfg.get("data_split", "train")), best.head(1),
                                      backtest_config(search_cfg), labels=["in-sample"]).iloc[:, 0]
    perf = up.get("performance_report")
    if perf is not None and len(perf):
        oos = pd.Series(perf["return"].to_numpy(), index=pd.DatetimeIndex(perf["date"]), name="out-of-sample")
    vr = up.get("validation_results")
    oos_metrics = vr.drop(columns=[PARAM_JSON], errors="ignore").iloc[0].to_dict() if vr is not None and len(vr) else None
    corr = up.get("correlations")
    if corr is not None and "label" in corr.columns:
        corr = corr.set_index("label")
    extra = []
    if ctx.config.get("include_phase_reports", True):
        for e in ctx.node.upstream:
            v = ctx.upstream.get(f"{e.upstream_phase}.{e.upstream_output}")
            if e.canonical in _COVERED or not isinstance(v, pd.DataFrame) or v.empty:
                continue
            extra.append({"title": f"{e.upstream_phase}: {e.upstream_output}",
                          "table": v.drop(columns=[PARAM_JSON], errors="ignore")})
    title = ctx.config.get("title") or g.name
    now = datetime.now()
    html = build_research_report(
        title=title,
        workflow={"name": g.name, "description": g.description, "id": g.workflow_id, "version": g.version},
        data=data,
        best_params={"strategy": strategy, **params} if params is not None else None,
        search_top=_drop_json(up.get("top_parameter_sets")),
        search_history=_drop_json(up.get("optimization_history")),
        in_sample_returns=in_sample,
        oos_returns=oos,
        oos_metrics=oos_metrics,
        drawdowns=None,
        correlations=corr,
        extra_sections=extra,
        generated_at=now.strftime("%Y-%m-%d %H:%M:%S"),
        lineage=ctx.lineage,
    )
    folder = output_dir(ctx)
    path = write_report(html, folder / f"{g.workflow_id}_{now:%Y%m%d-%H%M%S}_{ctx.run_id[:8] or 'local'}.html")
    latest = folder / "latest.html"
    tmp = folder / ".latest.html.tmp"
    shutil.copyfile(path, tmp)
    tmp.replace(latest)
    row = pd.DataFrame([{"path": str(path), "latest": str(latest), "title": title,
                         "generated_at": pd.Timestamp(now), "bytes": path.stat().st_size,
                         "run_id": ctx.run_id}])
    meta = {"report_path": dg.MetadataValue.path(str(path)), "latest": dg.MetadataValue.path(str(latest)),
            "url": dg.MetadataValue.url(path.as_uri()), "bytes": path.stat().st_size}
    return PhaseResult(outputs={"report": row}, metadata={"report": meta},
                       metrics={"report_bytes": path.stat().st_size})


def _drop_json(df):
    return df.drop(columns=[PARAM_JSON], errors="ignore") if df is not None else None
