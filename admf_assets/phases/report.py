"""report: one self-contained HTML file (Jinja2, autoescaped) joining the sections that the
kinds of the upstream phases contribute (``PhaseKind.sections``) and the header facts they
give (``PhaseKind.header``).  A new kind never edits this module.

Every workflow gets a ``report`` phase unless it declares one or sets
``reporting: {enabled: false}``; the ``reporting:`` keys are its config.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
from pydantic import StrictBool, StrictStr

from admf_assets import settings
from admf_assets.engine.report import render_report, write_report
from resources.storage import write_bytes_atomic
from admf_assets.phases.kind import ConfigEnv, FilePath, Implicit, Link, Output, PhaseContext, PhaseKind, PhaseResult, \
    PhaseView, StrictModel


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
        cfg: Config = ctx.config
        wf = ctx.workflow
        views = ctx.views()
        header: dict = {}
        sections: list[dict] = []
        for view in views:
            header.update(view.kind.header(view))
            for sec in view.kind.sections(view):
                if sec.get("detail") and not cfg.include_phase_reports:
                    continue
                sections.append(sec)
        if cfg.generate_summary_report:
            sections.insert(0, _summary_section(views))
        title = cfg.title or wf.name
        now = datetime.now()
        html = render_report({
            "title": title,
            "workflow": {"name": wf.name, "description": wf.description, "id": wf.id, "version": wf.version},
            "data": header,
            "sections": sections,
            "lineage": ctx.lineage(),
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
        row = pd.DataFrame([{"path": str(path), "latest": str(latest), "title": title,
                             "generated_at": pd.Timestamp(now), "bytes": size, "run_id": ctx.run_id}])
        meta = {"report_path": FilePath(str(path)), "latest": FilePath(str(latest)),
                "url": Link(path.as_uri() if isinstance(path, Path) else str(path)), "bytes": size, "sections": len(sections)}
        return PhaseResult(outputs={"report": row}, metadata={"report": meta},
                           metrics={"report_bytes": size, "n_sections": len(sections)})

    def sections(self, view: PhaseView) -> list[dict]:
        return []


def _output_dir(cfg: Config, ctx: PhaseContext) -> Path:
    if cfg.output_path:
        p = Path(cfg.output_path).expanduser()
        return p if p.is_absolute() else settings.storage_root() / p
    return ctx.reports_dir / ctx.workflow.id


def _summary_section(views: list[PhaseView]) -> dict:
    rows = []
    for v in views:
        for canonical, value in v.outputs.items():
            rows.append({"phase": v.phase, "kind": v.kind.name, "output": canonical,
                         "rows": len(value) if hasattr(value, "__len__") else None})
    return {"title": "Summary", "text": "The phases of this run and the tables they produced.",
            "table": pd.DataFrame(rows, columns=["phase", "kind", "output", "rows"]), "max_rows": 100}


KIND = Report()

__all__ = ["KIND", "Config", "Report"]
