"""report: one self-contained HTML file (Jinja2, autoescaped) joining what the kinds of the
upstream phases contribute: their verdicts and insights (``PhaseKind.verdict`` /
``PhaseKind.insights``) in an executive summary first, then one group of sections per phase
(``PhaseKind.sections``), the header facts they give (``PhaseKind.header``), and the
lineage: the run and its UI link, every input's materialization time, code and data
version, the market data's range and source, each phase's execution time and peak memory,
the admf and Dagster versions.  A new kind never edits this module.

Every workflow gets a ``report`` phase unless it declares one or sets
``reporting: {enabled: false}``; the ``reporting:`` keys are its config.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import time
from datetime import datetime
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import StrictBool, StrictStr

import admf_assets
from admf_assets import settings
from admf_assets.engine.report import executive_summary_section, render_report, write_report
from admf_assets.phases.kind import ConfigEnv, FilePath, Implicit, Insight, Link, Output, PhaseContext, PhaseKind, \
    PhaseResult, PhaseView, StrictModel, Verdict
from resources.storage import write_bytes_atomic


class Config(StrictModel):
    title: StrictStr | None = None
    output_path: StrictStr | None = None
    include_phase_reports: StrictBool = True
    generate_summary_report: StrictBool = True


class Report(PhaseKind):
    name = "report"
    aliases = ("html_report",)
    description = "HTML report of every upstream result (Jinja2, autoescaped)."
    Config = Config
    outputs = (
        Output("report", "Path of the rendered HTML report", aliases=("html_report", "summary_report", "final_report"),
               columns=("path", "latest", "title", "generated_at", "bytes", "run_id")),
    )
    consumes_all = True
    metrics = ("report_bytes", "n_sections")
    implicit = Implicit(phase="report", when="always", section="reporting", description="HTML report of the workflow")

    def effective_config(self, cfg: Config, env: ConfigEnv) -> Config:
        if cfg.title is None and env.workflow is not None:
            cfg = cfg.model_copy(update={"title": env.workflow.name or env.workflow.id})
        return cfg

    def run(self, ctx: PhaseContext) -> PhaseResult:
        t0 = time.perf_counter()
        cfg: Config = ctx.config
        wf = ctx.workflow
        views = ctx.views()
        lineage = ctx.lineage()
        execution = _execution(views, lineage)
        header: dict = {}
        sections: list[dict] = []
        verdicts: list[Verdict] = []
        insights: list[Insight] = []
        warnings: list[str] = []
        for view in views:
            header.update(view.kind.header(view))
            v = _hook(view, "verdict", warnings, ctx)
            if v is not None:
                verdicts.append(v if v.phase else dataclasses.replace(v, phase=view.phase))
            for ins in _hook(view, "insights", warnings, ctx) or ():
                insights.append(ins if ins.phase else dataclasses.replace(ins, phase=view.phase))
            group = {"id": view.phase, "title": view.phase,
                     "subtitle": f"{view.kind.name} phase: {view.kind.description}",
                     "facts": _facts(execution.get(view.phase))}
            for sec in _hook(view, "sections", warnings, ctx) or ():
                if sec.get("detail") and not cfg.include_phase_reports:
                    continue
                sections.append({**sec, "group": sec.get("group") or group})
        if cfg.generate_summary_report:
            summary = executive_summary_section([dataclasses.asdict(v) for v in verdicts],
                                                [dataclasses.asdict(i) for i in insights])
            sections = [summary, *sections, _outputs_section(views)]
        title = cfg.title or wf.name
        now = datetime.now()
        run = {"id": ctx.run_id, "url": f"{settings.ui_url()}/runs/{ctx.run_id}" if ctx.run_id else ""}
        html = render_report({
            "title": title,
            "workflow": {"name": wf.name, "description": wf.description, "id": wf.id, "version": wf.version},
            "data": header,
            "sections": sections,
            "warnings": warnings,
            "lineage": [{k: v for k, v in row.items() if k not in _EXEC_FIELDS} for row in lineage],
            "execution": [{"phase": p, **e} for p, e in execution.items()],
            "run": run,
            "environment": _environment(lineage, header),
            "generated_at": now.strftime("%Y-%m-%d %H:%M:%S"),
        })
        folder = _output_dir(cfg, ctx)
        path = folder / f"{wf.id}_{now:%Y%m%d-%H%M%S}_{ctx.run_id[:8] or 'local'}.html"
        latest = folder / "latest.html"
        if isinstance(folder, Path):
            path = write_report(html, path)
            tmp = folder / ".latest.html.tmp"
            shutil.copyfile(path, tmp)
            tmp.replace(latest)
            size = path.stat().st_size
        else:  # a storage root on an fsspec filesystem
            data = html.encode("utf-8")
            write_bytes_atomic(data, path)
            write_bytes_atomic(data, latest)
            size = len(data)
        seconds = time.perf_counter() - t0
        row = pd.DataFrame([{"path": str(path), "latest": str(latest), "title": title,
                             "generated_at": pd.Timestamp(now), "bytes": size, "run_id": ctx.run_id}])
        verdict = _verdict_line(verdicts)
        meta = {"report_path": FilePath(str(path)), "latest": FilePath(str(latest)),
                "url": Link(path.as_uri() if isinstance(path, Path) else str(path)), "bytes": size,
                "sections": len(sections), "verdict": verdict, "build_seconds": round(seconds, 3)}
        if run["url"]:
            meta["run_url"] = Link(run["url"])
        ctx.log.info(f"report: {size:,} bytes, {len(sections)} sections, built in {seconds:.2f} s; {verdict}")
        return PhaseResult(outputs={"report": row}, metadata={"report": meta},
                           metrics={"report_bytes": size, "n_sections": len(sections)})

    def sections(self, view: PhaseView) -> list[dict]:
        return []


_EXEC_FIELDS = ("seconds", "cpu_seconds", "peak_rss_mb", "rss_increase_mb", "measured")


def _hook(view: PhaseView, name: str, warnings: list[str], ctx: PhaseContext) -> Any:
    """A kind's report hook; a failing hook costs its part of the report, not the report."""
    try:
        return getattr(view.kind, name)(view)
    except Exception as exc:  # noqa: BLE001 - one broken kind must not lose the whole report
        msg = f"phase '{view.phase}': its {name} could not be built ({type(exc).__name__}: {exc})"
        warnings.append(msg)
        ctx.log.warning(msg)
        return None


def _execution(views: list[PhaseView], lineage: list[dict]) -> dict[str, dict]:
    """Phase -> its kind and execution measurements (from its first output's materialization)."""
    kinds = {v.phase: v.kind.name for v in views}
    out: dict[str, dict] = {}
    for row in lineage:
        phase = row.get("phase")
        if phase in kinds and phase not in out and "seconds" in row:
            out[phase] = {"kind": kinds[phase], **{k: row[k] for k in _EXEC_FIELDS if k in row}}
    return out


def _facts(e: dict | None) -> dict:
    if not e:
        return {}
    facts = {"execution time": f"{e['seconds']:.2f} s wall" + (f", {e['cpu_seconds']:.2f} s CPU"
                                                               if "cpu_seconds" in e else "")}
    if e.get("peak_rss_mb") is not None:
        facts["peak memory"] = f"{e['peak_rss_mb']:,.0f} MB RSS (+{e.get('rss_increase_mb', 0):,.1f} MB in the phase)"
    return facts


def _version(package: str) -> str:
    try:
        return pkg_metadata.version(package)
    except pkg_metadata.PackageNotFoundError:
        return "not installed"


def _environment(lineage: list[dict], header: dict) -> dict[str, Any]:
    env: dict[str, Any] = {}
    source = next((r["source"] for r in lineage if r.get("source")), None)
    market = next((r for r in lineage if r.get("partitions")), None)
    if source is not None or market is not None:
        env["market data source"] = source or "not recorded"
    if header.get("start") is not None:
        env["market data range"] = f"{header.get('start')} .. {header.get('end')}"
    if market is not None:
        env["market partitions"] = market["partitions"]
    env.update({"admf": admf_assets.__version__, "dagster": _version("dagster"), "python": platform.python_version(),
                "pandas": _version("pandas"), "numpy": _version("numpy"), "matplotlib": _version("matplotlib")})
    return env


def _verdict_line(verdicts: list[Verdict]) -> str:
    judged = [v for v in verdicts if v.valid is not None]
    if not judged:
        return "not validated (no validation phase ran)"
    bad = [v for v in judged if not v.valid]
    return ("NOT VALID: " if bad else "valid: ") + "; ".join(f"{v.phase}: {v.reason}" for v in (bad or judged))


def _output_dir(cfg: Config, ctx: PhaseContext) -> Path:
    if cfg.output_path:
        p = Path(cfg.output_path).expanduser()
        return p if p.is_absolute() else settings.storage_root() / p
    return ctx.reports_dir / ctx.workflow.id


def _outputs_section(views: list[PhaseView]) -> dict:
    rows = []
    for v in views:
        for canonical, value in v.outputs.items():
            rows.append({"phase": v.phase, "kind": v.kind.name, "output": canonical,
                         "rows": len(value) if hasattr(value, "__len__") else None})
    return {"title": "Phases and their tables", "text": "The phases of this run and the tables they stored.",
            "table": pd.DataFrame(rows, columns=["phase", "kind", "output", "rows"]), "max_rows": 100}


KIND = Report()

__all__ = ["KIND", "Config", "Report"]
