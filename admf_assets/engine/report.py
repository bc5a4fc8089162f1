"""Self-contained HTML research report (Jinja2, autoescaped, inline CSS and SVG, no JS).

``render_report(context)`` turns a plain dict into HTML; ``write_report`` writes it
atomically; ``build_research_report`` assembles the standard sections of a research
workflow (best parameters, search results, in-sample vs out-of-sample, equity and
underwater charts, drawdowns, correlations) from engine outputs.

``executive_summary_section`` words the verdicts and insights the kinds contribute; a
section may belong to a phase ``group`` (the report kind groups each phase's sections).
Cards and metric rows are labelled from :mod:`admf_assets.engine.labels` (words and units,
not field names).

Escaping: every value from the context is autoescaped by Jinja2. The only field inserted
as trusted markup is a section's ``chart_svg``, which must come from
:mod:`admf_assets.engine.charts` (matplotlib's SVG writer escapes the text it embeds).
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
import os
import pathlib
import tempfile
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import charts
from .analysis import correlation_summary, drawdown_analysis, equity_curve, underwater
from .labels import card_label, describe, plain_number, show

if TYPE_CHECKING:  # jinja2 is imported when a report is rendered
    import jinja2

__all__ = [
    "render_report",
    "write_report",
    "build_research_report",
    "best_parameters_section",
    "search_result_sections",
    "search_sections",
    "performance_sections",
    "correlation_sections",
    "executive_summary_section",
    "format_value",
    "TEMPLATE_DIR",
    "MAX_TABLE_ROWS",
]

TEMPLATE_DIR = pathlib.Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "report.html.j2"
MAX_TABLE_ROWS = 50
MISSING = "\u2013"  # en dash for NaN/None

# metric names shown as percentages (exact names, or these suffixes)
_PERCENT_NAMES = {
    "total_return",
    "annual_return",
    "annual_volatility",
    "max_drawdown",
    "win_rate",
    "exposure",
    "depth",
    "var",
    "cvar",
    "volatility",
    "prob_loss",
    "fraction",
    "worst",
    "best",
    "worst_bar",
    "frac_beyond_3sigma",
}
_PERCENT_SUFFIXES = ("_return", "_drawdown", "_volatility", "_win_rate")


@lru_cache(maxsize=1)
def _env() -> "jinja2.Environment":
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape  # when a report is rendered

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=select_autoescape(enabled_extensions=("html", "htm", "j2"), default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["zip"] = zip
    return env


# ---------------------------------------------------------------------------------------
# value formatting
# ---------------------------------------------------------------------------------------
def _is_percent_key(key) -> bool:
    if key is None:
        return False
    k = str(key).strip().lower().replace(" ", "_").replace("-", "_")
    return k in _PERCENT_NAMES or k.endswith(_PERCENT_SUFFIXES)


def _is_count_key(key) -> bool:
    if key is None:
        return False
    k = str(key).strip().lower().replace(" ", "_")
    return k.startswith(("n_", "bars_")) or k.endswith(("_bars", "_duration", "_trades", "_obs"))


def _is_missing(v) -> bool:
    if v is None or v is pd.NaT:
        return True
    try:
        return bool(isinstance(v, float | np.floating) and math.isnan(v))
    except TypeError:
        return False


def format_value(v, key=None, fmt: str | None = None) -> str:
    """Human formatting of one value (plain text; escaping is left to the template).

    NaN/None -> an en dash; bools -> yes/no; ints with thousands separators; floats as
    percentages when ``key`` names a return/drawdown/volatility-like metric, otherwise 4
    decimals (scientific notation for tiny or huge values); dates without a midnight time.
    ``fmt`` (a ``str.format`` pattern) overrides the automatic choice for numbers.
    """
    if _is_missing(v):
        return MISSING
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if fmt is not None and isinstance(v, numbers.Number):
        try:
            return fmt.format(v)
        except (ValueError, TypeError):
            pass
    if isinstance(v, numbers.Integral):
        return f"{int(v):,}"
    if isinstance(v, numbers.Real):
        x = float(v)
        if math.isinf(x):
            return "\u221e" if x > 0 else "-\u221e"
        if _is_percent_key(key):
            return f"{x:.2%}"
        if _is_count_key(key) and x.is_integer():
            return f"{int(x):,}"
        return plain_number(x)
    if isinstance(v, pd.Timestamp | _dt.datetime):
        ts = pd.Timestamp(v)
        if ts.hour == ts.minute == ts.second == ts.microsecond == 0 and ts.nanosecond == 0:
            return ts.strftime("%Y-%m-%d")
        return ts.isoformat(sep=" ")
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, pd.Timedelta | _dt.timedelta):
        return str(pd.Timedelta(v))
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={format_value(x, k)}" for k, x in v.items())
    if isinstance(v, list | tuple | set | frozenset | np.ndarray | pd.Index):
        items = sorted(v, key=str) if isinstance(v, set | frozenset) else list(v)
        return ", ".join(format_value(x) for x in items)
    return str(v)


def _table_view(df: pd.DataFrame, max_rows: int, formats: Mapping | None = None, label_rows: bool = False) -> dict:
    """DataFrame -> {columns: [{name, numeric}], rows: [[str]], truncated, shown, total}.

    A non-default index is shown as leading column(s). Floats are formatted per column
    (percent names, columns of whole numbers as integers); when the column name is not a
    known metric, the row label is tried (for metric-per-row tables).  ``label_rows``: the
    index holds field names (a metric per row): they are shown as words with units and
    each row's values formatted by its field's rule (:mod:`admf_assets.engine.labels`)."""
    formats = dict(formats or {})
    total = len(df)
    df = df.head(max_rows) if max_rows is not None and max_rows >= 0 else df
    idx = df.index
    default_index = isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1 and idx.name is None
    row_keys = [None] * len(df) if default_index else [k if not isinstance(k, tuple) else None for k in idx]
    if not default_index:
        names = [n if n is not None else ("" if idx.nlevels == 1 else f"level_{i}") for i, n in enumerate(idx.names)]
        names = [f"{n} (index)" if n in df.columns else n for n in names]
        df = df.copy()
        df.index = idx.set_names(names) if idx.nlevels > 1 else idx.rename(names[0])
        df = df.reset_index()
        n_index_cols = idx.nlevels
    else:
        n_index_cols = 0
    if isinstance(df.columns, pd.MultiIndex):
        df.columns = [" / ".join(str(x) for x in c if str(x) != "") for c in df.columns]
    columns, rows_by_col = [], []
    for j, col in enumerate(df.columns):
        s = df.iloc[:, j]
        is_num = pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
        whole = False
        if pd.api.types.is_float_dtype(s.dtype):
            fin = s.to_numpy(dtype=float)
            fin = fin[np.isfinite(fin)]
            whole = bool(fin.size) and bool(np.all(fin == np.round(fin))) and bool(np.all(np.abs(fin) < 1e15))
        fmt = formats.get(col)
        cells = []
        for i, v in enumerate(s.tolist()):
            if label_rows and j < n_index_cols and row_keys[i] is not None:
                cells.append(card_label(row_keys[i]))
                continue
            if label_rows and j >= n_index_cols and fmt is None and row_keys[i] is not None:
                shown = show(row_keys[i], v)
                if shown is not None:
                    cells.append(shown)
                    continue
            if whole and fmt is None and not _is_missing(v) and not _is_percent_key(col):
                cells.append(f"{int(v):,}")
                continue
            known = _is_percent_key(col) or _is_count_key(col) or j < n_index_cols
            key = col if known else row_keys[i]
            cells.append(format_value(v, key, fmt))
        columns.append({"name": str(col), "numeric": is_num and j >= n_index_cols,
                        "head": label_rows and j < n_index_cols})
        rows_by_col.append(cells)
    rows = [list(r) for r in zip(*rows_by_col)] if rows_by_col else [[] for _ in range(len(df))]
    return {"columns": columns, "rows": rows, "truncated": total > len(rows), "shown": len(rows), "total": total}


def _slug(i: int, title: str) -> str:
    base = "".join(ch if ch.isalnum() else "-" for ch in str(title).lower()).strip("-")
    base = "-".join(p for p in base.split("-") if p)[:40]
    return f"s{i + 1}-{base}" if base else f"s{i + 1}"


_CALLOUT_STATUS = ("valid", "invalid", "unvalidated", "info", "warning")
_SEVERITIES = ("info", "warning", "good")


def _card(key, value, fmt: str | None) -> dict:
    if isinstance(value, str):
        txt = value
    else:
        txt = show(key, value) if fmt is None else None
        if txt is None and (isinstance(value, float | np.floating) and fmt is None and not _is_percent_key(key)
                            and float(value).is_integer() and abs(value) < 1e15):
            txt = f"{int(value):,}"  # e.g. a grid parameter stored as 50.0
        if txt is None:
            txt = format_value(value, key, fmt)
    return {"label": card_label(key), "value": txt, "doc": describe(key).doc}


def _section_view(i: int, sec: Mapping) -> dict:
    if not isinstance(sec, Mapping):
        raise TypeError(f"report section {i + 1} must be a dict, got {type(sec).__name__}")
    title = sec.get("title") or f"Section {i + 1}"
    text = sec.get("text")
    paragraphs = [p.strip() for p in str(text).split("\n\n") if p.strip()] if text else []
    metrics = sec.get("metrics") or {}
    if not isinstance(metrics, Mapping):
        raise TypeError(f"report section {title!r}: 'metrics' must be a dict")
    fmts = sec.get("formats") or {}
    metric_items = [_card(k, v, fmts.get(k)) for k, v in metrics.items() if not _is_missing(v)]  # NaN: no card
    table = sec.get("table")
    tv = None
    if table is not None:
        if isinstance(table, pd.Series):
            table = table.to_frame()
        if not isinstance(table, pd.DataFrame):
            raise TypeError(f"report section {title!r}: 'table' must be a pandas DataFrame")
        tv = _table_view(table, int(sec.get("max_rows", MAX_TABLE_ROWS)), fmts, bool(sec.get("label_rows")))
    svg = sec.get("chart_svg")
    if svg is None:
        chart_list = []
    elif isinstance(svg, str | charts.Chart):
        chart_list = [str(svg)]
    else:
        chart_list = [str(x) for x in svg if x]
    callout = sec.get("callout")
    if callout is not None:
        status = str(callout.get("status", "info"))
        callout = {"status": status if status in _CALLOUT_STATUS else "info",
                   "headline": str(callout.get("headline", "")),
                   "paragraphs": [p.strip() for p in str(callout.get("text") or "").split("\n\n") if p.strip()]}
    bullets = []
    for b in sec.get("bullets") or []:
        if isinstance(b, Mapping):
            sev = str(b.get("severity", "info"))
            bullets.append({"label": str(b.get("label") or ""), "text": str(b.get("text") or ""),
                            "severity": sev if sev in _SEVERITIES else "info"})
        else:
            bullets.append({"label": "", "text": str(b), "severity": "info"})
    group = sec.get("group")
    if group is not None and not isinstance(group, Mapping):
        group = {"title": str(group)}
    return {
        "title": str(title),
        "anchor": _slug(i, title),
        "paragraphs": paragraphs,
        "metrics": metric_items,
        "table": tv,
        "charts": chart_list,
        "callout": callout,
        "bullets": bullets,
        "group": dict(group) if group is not None else None,
    }


def _blocks(sections: list[dict]) -> list[dict]:
    """Consecutive sections of one group -> one block {group, anchor, sections}; ungrouped
    sections are blocks of their own (group None)."""
    blocks: list[dict] = []
    for sec in sections:
        g = sec["group"]
        key = (g.get("id") or g.get("title")) if g else None
        if g is not None and blocks and blocks[-1]["key"] == key:
            blocks[-1]["sections"].append(sec)
            continue
        anchor = f"g{len(blocks) + 1}-" + _slug(0, g.get("title", ""))[3:] if g else sec["anchor"]
        blocks.append({"key": key, "group": ({"title": str(g.get("title", "")),
                                              "subtitle": str(g.get("subtitle") or ""),
                                              "facts": [(str(k), format_value(v, k))
                                                        for k, v in (g.get("facts") or {}).items() if v is not None]}
                                             if g else None),
                       "anchor": anchor, "sections": [sec]})
    return blocks


_WORKFLOW_ORDER = ("name", "id", "description")


_LINEAGE_COLUMNS = {  # key -> header, in display order
    "phase": "phase",
    "asset": "asset",
    "materialized_at": "materialized at",
    "run_id": "run",
    "code_version": "code version",
    "data_version": "data version",
    "partitions": "partitions",
}
_EXECUTION_COLUMNS = {
    "phase": "phase",
    "kind": "kind",
    "seconds": "wall time (s)",
    "cpu_seconds": "CPU time (s)",
    "peak_rss_mb": "peak memory (MB RSS)",
    "rss_increase_mb": "memory added (MB)",
    "measured": "measured",
}


def _rows(items, columns: Mapping[str, str]) -> tuple[list[str], list[list[str]]]:
    items = [dict(x) for x in items or []]
    keys = [k for k in columns if any(k in x for x in items)]
    head = [columns[k] for k in keys]
    rows = [[format_value(x.get(k, ""), k) if not isinstance(x.get(k), float | np.floating)
             else (f"{x[k]:,.2f}" if math.isfinite(x[k]) else MISSING) for k in keys] for x in items]
    return head, rows


def render_report(context: dict) -> str:
    """Render ``templates/report.html.j2`` with ``context`` (see the module docstring).

    Keys (only ``title`` is required): ``title``; ``workflow`` {name, description, id,
    ...}; ``generated_at``; ``data`` {symbols, start, end, train/test split dates, n_bars,
    ...}; ``sections``: list of {title, text?, metrics?: dict, table?: DataFrame,
    max_rows? (default 50), formats?: {column: "{:.2f}"}, label_rows?: bool (the index
    names a field per row), chart_svg?: str or list of str (trusted SVG from charts.py, the
    only unescaped field), callout?: {status: valid|invalid|unvalidated|info|warning,
    headline, text}, bullets?: [str | {label, text, severity: info|warning|good}], group?:
    {id, title, subtitle, facts: dict} (consecutive sections of one group share a heading)};
    ``warnings``: list of str; ``lineage``: list of {phase, asset, materialized_at, run_id,
    code_version, data_version, partitions}; ``execution``: list of {phase, kind, seconds,
    cpu_seconds, peak_rss_mb, rss_increase_mb, measured}; ``run``: {id, url};
    ``environment``: {name: value} (versions, market data source and range).
    """
    if not isinstance(context, Mapping):
        raise TypeError(f"report context must be a dict, got {type(context).__name__}")
    title = context.get("title")
    if title is None or str(title).strip() == "":
        raise ValueError("report context needs a non-empty 'title'")
    wf = dict(context.get("workflow") or {})
    description = wf.pop("description", None)
    wf_fields = [(k, format_value(wf[k], k)) for k in _WORKFLOW_ORDER if k in wf and wf[k] is not None]
    wf_fields += [(str(k), format_value(v, k)) for k, v in wf.items() if k not in _WORKFLOW_ORDER and v is not None]
    data = context.get("data") or {}
    data_items = [(str(k).replace("_", " "), format_value(v, k)) for k, v in data.items() if v is not None]
    sections = [_section_view(i, s) for i, s in enumerate(context.get("sections") or [])]
    warnings = [str(w) for w in (context.get("warnings") or [])]
    lin_head, lin_rows = _rows(context.get("lineage"), _LINEAGE_COLUMNS)
    exe_head, exe_rows = _rows(context.get("execution"), _EXECUTION_COLUMNS)
    run = dict(context.get("run") or {})
    url = str(run.get("url") or "")
    run_view = {"id": str(run.get("id") or ""), "url": url if url.startswith(("http://", "https://")) else ""}
    env = [(str(k), format_value(v, k)) for k, v in (context.get("environment") or {}).items() if v is not None]
    gen = context.get("generated_at")
    view = {
        "title": str(title),
        "workflow": {"description": str(description) if description else "", "fields": wf_fields},
        "data": data_items,
        "blocks": _blocks(sections),
        "sections": sections,
        "warnings": warnings,
        "lineage": {"head": lin_head, "rows": lin_rows},
        "execution": {"head": exe_head, "rows": exe_rows},
        "run": run_view,
        "environment": env,
        "generated_at": format_value(gen) if gen is not None else "",
    }
    return _env().get_template(TEMPLATE_NAME).render(**view)


def write_report(html: str, path: str | os.PathLike) -> pathlib.Path:
    """Write ``html`` to ``path`` atomically and return the path.

    Parent folders are created; the text goes to a temporary file in the same folder,
    is flushed and fsynced, then ``os.replace``d over the target, so readers see either
    the previous file or the complete new one. On any error the temporary file is
    removed and the previous report is left untouched.
    """
    if not isinstance(html, str):
        raise TypeError(f"write_report expects the HTML text (str), got {type(html).__name__}")
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(html)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


# ---------------------------------------------------------------------------------------
# research report
# ---------------------------------------------------------------------------------------
_OBJECTIVE_CANDIDATES = ("sharpe_ratio", "sharpe", "value", "objective", "score")


def _param_columns(history: pd.DataFrame, best_params: Mapping | None) -> list:
    cols = [c for c in history.columns if str(c).startswith(("params_", "param_"))]
    if not cols and best_params:
        cols = [c for c in best_params if c in history.columns]
    out = []
    for c in cols:
        s = history[c]
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype) and s.nunique() > 1:
            out.append(c)
    return out


def _objective_column(history: pd.DataFrame):
    for c in _OBJECTIVE_CANDIDATES:
        if c in history.columns and pd.api.types.is_numeric_dtype(history[c].dtype):
            return c
    return None


def _display_name(col) -> str:
    s = str(col)
    for p in ("params_", "param_"):
        if s.startswith(p):
            return s[len(p) :]
    return s


def _binned(s: pd.Series, max_levels: int = 25, bins: int = 10) -> pd.Series:
    if s.nunique() <= max_levels:
        return s
    cut = pd.cut(s, bins=bins)
    mids = cut.map(lambda iv: float(f"{iv.mid:.3g}") if isinstance(iv, pd.Interval) else np.nan)
    return mids.astype(float)


def search_heatmap_table(search_history: pd.DataFrame, best_params: Mapping | None = None):
    """(pivot, objective, p0, p1) for the mean objective over the first two numeric
    parameters of a search history (other parameters averaged out), or None."""
    if search_history is None or len(search_history) == 0:
        return None
    params = _param_columns(search_history, best_params)
    obj = _objective_column(search_history)
    if len(params) < 2 or obj is None:
        return None
    p0, p1 = params[0], params[1]
    h = pd.DataFrame(
        {
            "p0": _binned(search_history[p0]),
            "p1": _binned(search_history[p1]),
            "y": pd.to_numeric(search_history[obj], errors="coerce"),
        }
    ).replace([np.inf, -np.inf], np.nan)
    pivot = h.pivot_table(index="p0", columns="p1", values="y", aggfunc="mean")
    if pivot.size == 0:
        return None
    pivot.index.name, pivot.columns.name = _display_name(p0), _display_name(p1)
    return pivot, obj, p0, p1, len(params)


def _metrics_frame(series: Mapping[str, pd.Series], periods_per_year: int) -> pd.DataFrame:
    from .metrics import compute_metrics

    cols = {}
    for name, r in series.items():
        if r is None or len(r) == 0:
            continue
        m = compute_metrics(pd.Series(r, dtype=float).to_frame(name), periods_per_year=periods_per_year)
        cols[name] = m.iloc[0]
    if not cols:
        return pd.DataFrame()
    out = pd.DataFrame(cols)
    out = out.dropna(how="all")  # position metrics are NaN without positions
    out.index.name = "metric"
    n_bars = pd.Series({k: float(len(v)) for k, v in series.items() if v is not None and len(v)}, name="n_bars")
    return pd.concat([pd.DataFrame([n_bars]).rename(index={0: "n_bars"}), out])


def _combined(a: pd.Series | None, b: pd.Series | None) -> pd.Series | None:
    parts = [x.astype(float) for x in (a, b) if x is not None and len(x)]
    if not parts:
        return None
    s = pd.concat(parts)
    s = s[~s.index.duplicated(keep="last")]
    try:
        s = s.sort_index()
    except TypeError:
        pass
    return s


def best_parameters_section(best_params: Mapping | None) -> list[dict]:
    return [{"title": "Best parameters", "metrics": dict(best_params)}] if best_params else []


def search_result_sections(search_top: pd.DataFrame | None, search_history: pd.DataFrame | None,
                           best_params: Mapping | None = None, max_rows: int = 20) -> list[dict]:
    """Top parameter sets and a heatmap of the mean objective over the first two numeric
    parameters of ``search_history`` (Optuna-style ``params_*`` columns, or the keys of
    ``best_params``; objective column ``sharpe_ratio``/``sharpe``/``value``/``objective``/``score``)."""
    sections: list[dict] = []
    if search_top is not None and len(search_top):
        sections.append({"title": "Top parameter sets", "table": search_top, "max_rows": max_rows})
    if search_history is not None and len(search_history):
        hm = search_heatmap_table(search_history, best_params)
        if hm is not None:
            pivot, obj, p0, p1, n_params = hm
            label = "Sharpe ratio" if str(obj).startswith("sharpe") else f"Objective ({obj})"
            note = (
                f"Mean {obj} of {len(search_history):,} evaluated parameter sets by "
                f"{_display_name(p0)} (rows) and {_display_name(p1)} (columns)"
                + (", averaged over the other parameters." if n_params > 2 else ".")
            )
            sections.append(
                {
                    "title": f"{label} by {_display_name(p0)} and {_display_name(p1)}",
                    "text": note,
                    "chart_svg": charts.heatmap_svg(pivot, f"Mean {obj}", fmt="{:.2f}"),
                }
            )
    return sections


def search_sections(best_params: Mapping | None, search_top: pd.DataFrame | None,
                    search_history: pd.DataFrame | None, max_rows: int = 20) -> list[dict]:
    """The sections of a parameter search: best parameters, top sets, objective heatmap."""
    return best_parameters_section(best_params) + search_result_sections(search_top, search_history, best_params,
                                                                         max_rows)


def performance_sections(oos_metrics: Mapping | None, in_sample_returns: pd.Series | None,
                         oos_returns: pd.Series | None, drawdowns: pd.DataFrame | None = None,
                         periods_per_year: int = 252, max_rows: int = 20, *, cost_note: str | None = None,
                         oos_start=None) -> list[dict]:
    """Out-of-sample metrics (as reported by the backtest); in-sample vs out-of-sample metrics
    (``compute_metrics`` on each series, side by side); equity curve (in-sample, then
    out-of-sample continuing from the in-sample end value, the out-of-sample period
    shaded); underwater curve of the combined series; drawdown episodes (``drawdowns``, or
    ``drawdown_analysis`` of the combined series).

    ``cost_note`` says which cost model both series were computed with.  ``oos_start``:
    the close at which the out-of-sample equity is the starting value (the first test
    close; the first out-of-sample return is earned from it to the next close): the curve
    starts there and the metric cards name it, so the dates agree with the data split."""
    sections: list[dict] = []
    is_r = in_sample_returns.astype(float) if in_sample_returns is not None and len(in_sample_returns) else None
    oos_r = oos_returns.astype(float) if oos_returns is not None and len(oos_returns) else None
    start = pd.Timestamp(oos_start) if oos_start is not None else None
    if oos_metrics:
        cards = dict(oos_metrics)
        note = None
        if start is not None:
            cards = {"period_start": start, **cards}
            first = cards.get("start", oos_r.index[0] if oos_r is not None else None)
            note = (f"Equity is the starting value at the close of {format_value(start)} (the first test close); "
                    f"the first return counted is the close-to-close return to {format_value(first)}.")
        sec = {"title": "Out-of-sample metrics", "metrics": cards}
        if note or cost_note:
            sec["text"] = " ".join(x for x in (note, cost_note) if x)
        sections.append(sec)
    if is_r is not None or oos_r is not None:
        table = _metrics_frame({"in_sample": is_r, "out_of_sample": oos_r}, periods_per_year)
        if not table.empty:
            sections.append(
                {
                    "title": "In-sample vs out-of-sample",
                    "text": "Metrics computed on each period's bar returns "
                    f"({periods_per_year} bars per year, no risk-free rate)."
                    + (f" {cost_note}" if cost_note else ""),
                    "table": table,
                    "label_rows": True,
                }
            )
        curves: dict[str, pd.Series] = {}
        if is_r is not None:
            curves["in-sample"] = equity_curve(is_r)
        if oos_r is not None:
            oos_eq = equity_curve(oos_r)
            base = float(curves["in-sample"].iloc[-1]) if is_r is not None else 1.0
            oos_eq = oos_eq * base
            if start is not None and start < oos_eq.index[0]:
                oos_eq = pd.concat([pd.Series([base], index=pd.DatetimeIndex([start])), oos_eq])
            elif is_r is not None:
                # join the two segments visually at the last in-sample bar
                joined = pd.concat([curves["in-sample"].iloc[-1:], oos_eq])
                if not joined.index.has_duplicates:
                    oos_eq = joined
            curves["out-of-sample"] = oos_eq
        combined = _combined(is_r, oos_r)
        shade = None
        if oos_r is not None and is_r is not None:
            shade = curves["out-of-sample"].index[0]
        sections.append(
            {
                "title": "Equity curve",
                "chart_svg": charts.line_chart_svg(curves, "Equity (growth of 1.0)", baseline=1.0, shade_from=shade,
                                                   shade_label="out of sample" if shade is not None else None),
            }
        )
        uw = underwater(combined)
        sections.append(
            {
                "title": "Underwater",
                "text": "Drawdown from the running peak of the combined in-sample and out-of-sample equity.",
                "chart_svg": charts.area_chart_svg(uw, "Drawdown from peak"),
            }
        )
        if drawdowns is None:
            drawdowns = drawdown_analysis(combined, top_n=10)
    if drawdowns is not None:
        sections.append({"title": "Drawdown episodes", "table": drawdowns, "max_rows": max_rows})
    return sections


def correlation_sections(correlations: pd.DataFrame | None) -> list[dict]:
    """Summary cards, the matrix as a table and (up to 30 series) as a heatmap."""
    if correlations is None or not len(correlations):
        return []
    summ = correlation_summary(correlations)
    sec = {
        "title": "Correlations",
        "metrics": {
            "series": summ["n_series"],
            "mean off-diagonal": summ["mean_offdiag"],
            "max off-diagonal": summ["max_offdiag"],
            "min off-diagonal": summ["min_offdiag"],
        },
        "table": correlations,
        "max_rows": 60,
        "formats": {c: "{:.2f}" for c in correlations.columns},
    }
    if correlations.shape[0] <= 30 and correlations.shape[0] == correlations.shape[1]:
        sec["chart_svg"] = charts.heatmap_svg(correlations, "Pearson correlation", vmin=-1.0, vmax=1.0)
    return [sec]


_TOPIC_ORDER = ("verdict", "performance", "decay", "overfitting", "robustness", "parameters", "regimes", "risk")
_TOPIC_LABELS = {"decay": "In-sample vs out-of-sample", "overfitting": "Overfitting", "robustness": "Robustness",
                 "parameters": "Parameters", "regimes": "Regime dependence", "risk": "Risk",
                 "performance": "Performance", "verdict": "Verdict"}


def _get(obj, name, default=None):
    return obj.get(name, default) if isinstance(obj, Mapping) else getattr(obj, name, default)


def executive_summary_section(verdicts: list, insights: list, title: str = "Executive summary") -> dict:
    """The report's first section: the verdict, headline numbers and insights.

    ``verdicts``: {valid: bool | None, reason, phase, criteria: [{name, value, threshold,
    passed}]} from the phases that judge (a validation phase); ``insights``: {topic, text,
    key?, value?, label?, severity: info|warning|good, phase} from every phase (an insight
    with a ``key`` and a ``value`` is also a headline card, formatted by the key's rule in
    :mod:`labels` and called ``label`` or the key's label).  Mappings or objects with these
    attributes.

    No verdict -> "Not validated" (nothing tested whether the result is luck); any
    verdict not valid -> "Not valid" with each failing criterion; else "Valid".
    """
    judged = [v for v in verdicts or [] if _get(v, "valid") is not None]
    if not judged:
        callout = {"status": "unvalidated", "headline": "Not validated",
                   "text": "No validation phase ran: the numbers below come from one search and one backtest, "
                           "and nothing here tests whether they could be luck. Add a `validation` phase "
                           "(Monte Carlo, bootstrap, deflated Sharpe ratio, probability of backtest "
                           "overfitting) to get a verdict."}
    else:
        failed = [v for v in judged if not _get(v, "valid")]
        parts = []
        for v in judged:
            phase = _get(v, "phase") or ""
            reason = str(_get(v, "reason") or "")
            parts.append(f"{phase}: {reason}" if phase else reason)
        callout = {"status": "invalid" if failed else "valid", "headline": "Not valid" if failed else "Valid",
                   "text": "\n\n".join(p for p in parts if p)}
    rows = []
    for v in judged:
        for c in _get(v, "criteria") or ():
            rows.append({"phase": _get(v, "phase") or "", "criterion": str(_get(c, "name", "")),
                         "value": _get(c, "value"), "threshold": str(_get(c, "threshold", "")),
                         "result": "pass" if _get(c, "passed") else "FAIL"})
    cards: dict = {}
    bullets = []
    order = {t: i for i, t in enumerate(_TOPIC_ORDER)}
    ranked = sorted(enumerate(insights or []), key=lambda x: (order.get(str(_get(x[1], "topic")), len(order)), x[0]))
    for _, ins in ranked:
        key, value = _get(ins, "key"), _get(ins, "value")
        if key is not None and value is not None and not _is_missing(value):
            label = _get(ins, "label") or card_label(key)
            if label in cards:
                label = f"{label}, {_get(ins, 'phase')}"
            cards[label] = show(key, value) or format_value(value, key)
        text = _get(ins, "text")
        if text:
            topic = str(_get(ins, "topic") or "")
            bullets.append({"label": _TOPIC_LABELS.get(topic, topic.replace("_", " ").capitalize()),
                            "text": str(text), "severity": str(_get(ins, "severity") or "info")})
    sec: dict = {"title": title, "callout": callout, "metrics": cards, "bullets": bullets}
    if rows:
        table = pd.DataFrame(rows)
        sec["table"] = table
        sec["formats"] = {"value": "{:.4g}"}
    return sec


def build_research_report(
    *,
    title: str,
    workflow: dict,
    data: dict,
    best_params: dict | None,
    search_top: pd.DataFrame | None,
    search_history: pd.DataFrame | None,
    in_sample_returns: pd.Series | None,
    oos_returns: pd.Series | None,
    oos_metrics: dict | None,
    drawdowns: pd.DataFrame | None,
    correlations: pd.DataFrame | None,
    extra_sections: list | None = None,
    warnings=(),
    periods_per_year: int = 252,
    generated_at=None,
    lineage: list | None = None,
    max_rows: int = 20,
) -> str:
    """The standard research report from engine outputs, rendered with :func:`render_report`.

    Sections (each only when its input is given): best parameters; the
    :func:`performance_sections`; the :func:`search_result_sections`; the
    :func:`correlation_sections`; then ``extra_sections``.
    """
    sections = [
        *best_parameters_section(best_params),
        *performance_sections(oos_metrics, in_sample_returns, oos_returns, drawdowns, periods_per_year, max_rows),
        *search_result_sections(search_top, search_history, best_params, max_rows),
        *correlation_sections(correlations),
        *(extra_sections or []),
    ]
    context = {
        "title": title,
        "workflow": workflow or {},
        "data": data or {},
        "sections": sections,
        "warnings": [str(w) for w in warnings or ()],
        "lineage": lineage or [],
    }
    if generated_at is not None:
        context["generated_at"] = generated_at
    return render_report(context)
