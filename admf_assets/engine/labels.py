"""How a number is called and shown to a reader: one table of label, unit and format per
field name, used by the report's cards, metric tables and the executive summary.

>>> describe("total_costs")
Label(label='Costs paid', unit='% of equity', kind='percent', doc='transaction costs and slippage summed over the bars')
>>> card_label("max_drawdown_duration"), show("max_drawdown_duration", 42.0)
('Longest drawdown (bars)', '42')
>>> card_label("some_new_field"), show("sharpe_ratio", 1.23456)
('Some new field', '1.23')

A field missing from the table is worded from its name (underscores become spaces) and
formatted by :func:`admf_assets.engine.report.format_value`'s rules.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal

__all__ = ["Label", "LABELS", "describe", "card_label", "show", "register_label", "plain_number"]

Kind = Literal["percent", "ratio", "count", "money", "bps", "number", "date", "text", "bytes", "seconds"]


@dataclass(frozen=True)
class Label:
    label: str  #: words, sentence case
    unit: str = ""  #: shown in parentheses after the label on a card ("bars", "% of equity")
    kind: Kind = "number"  #: how the value is formatted
    doc: str = ""  #: one line for a tooltip


def _l(label: str, unit: str = "", kind: Kind = "number", doc: str = "") -> Label:
    return Label(label, unit, kind, doc)


LABELS: dict[str, Label] = {
    # return metrics (engine.metrics.METRIC_COLUMNS)
    "total_return": _l("Total return", "", "percent", "compounded return over the period"),
    "annual_return": _l("Annual return", "", "percent", "geometric, 252 bars per year"),
    "annual_volatility": _l("Annual volatility", "", "percent", "standard deviation of bar returns x sqrt(252)"),
    "sharpe_ratio": _l("Sharpe ratio", "annualised", "ratio", "mean / standard deviation of bar returns x sqrt(252), "
                       "no risk-free rate"),
    "sortino_ratio": _l("Sortino ratio", "annualised", "ratio", "mean / downside deviation x sqrt(252)"),
    "calmar_ratio": _l("Calmar ratio", "", "ratio", "annual return / |max drawdown|"),
    "max_drawdown": _l("Max drawdown", "", "percent", "deepest fall below the running peak of equity"),
    "max_drawdown_duration": _l("Longest drawdown", "bars", "count", "bars from a peak until it is regained"),
    "win_rate": _l("Win rate", "% of active bars", "percent", "share of non-zero bars with a positive return"),
    "n_trades": _l("Trades", "", "count", "positions opened or flipped, summed over symbols"),
    "turnover": _l("Turnover", "x equity per year", "ratio", "sum of |position changes| per year"),
    "exposure": _l("Time in market", "", "percent", "share of bars with a position"),
    # backtest
    "n_bars": _l("Bars", "trading days", "count", "daily returns in the period"),
    "n_days": _l("Bars", "trading days", "count", "daily returns in the period"),
    "total_costs": _l("Costs paid", "% of equity", "percent", "transaction costs and slippage summed over the bars"),
    "cost_bps": _l("Commission", "bps per trade", "bps"),
    "slippage_bps": _l("Slippage", "bps per trade", "bps"),
    "initial_capital": _l("Initial capital", "", "money"),
    "final_value": _l("Final value", "", "money"),
    "start": _l("First return", "date", "date", "the bar whose close-to-close return is the first counted"),
    "end": _l("Last bar", "date", "date"),
    "period_start": _l("Starting equity at", "close", "date", "the close where equity is 1.0"),
    "strategy": _l("Strategy", "", "text"),
    "split": _l("Data split", "", "text"),
    "sharpe_decay": _l("Sharpe ratio change out of sample", "", "percent",
                       "(out-of-sample - in-sample) / |in-sample| Sharpe ratio, same costs"),
    "exposure_scale": _l("Exposure scale", "x capital", "ratio", "fraction of capital the strategy runs at"),
    # search
    "best_score": _l("Best objective", "", "ratio"),
    "objective": _l("Objective", "", "ratio"),
    "n_trials": _l("Trials", "", "count"),
    "n_valid_trials": _l("Valid trials", "", "count"),
    "variance_explained": _l("Variance explained", "main effect", "percent",
                             "share of the objective's variance across trials a parameter explains alone"),
    "expected_max_sharpe": _l("Best Sharpe ratio expected by luck", "", "ratio",
                              "expected maximum of the trials' Sharpe ratios if none had an edge"),
    # analysis
    "mean_correlation": _l("Mean correlation", "", "ratio", "mean off-diagonal Pearson correlation"),
    "max_correlation": _l("Max correlation", "", "ratio"),
    "probability_of_loss": _l("Probability of loss", "", "percent", "share of Monte Carlo paths ending below 1.0"),
    "var_95": _l("VaR 95 %", "daily", "percent", "loss exceeded on 5 % of days (historical)"),
    "cvar_95": _l("CVaR 95 %", "daily", "percent", "mean loss on the worst 5 % of days"),
    "series": _l("Series", "", "count"),
    "mean off-diagonal": _l("Mean correlation", "off-diagonal", "ratio"),
    "max off-diagonal": _l("Max correlation", "off-diagonal", "ratio"),
    "min off-diagonal": _l("Min correlation", "off-diagonal", "ratio"),
    # data
    "n_rows": _l("Rows", "", "count"),
    "n_symbols": _l("Symbols", "", "count"),
    "n_dates": _l("Dates", "", "count"),
    "missing_fraction": _l("Missing closes", "", "percent"),
    # report / runtime
    "report_bytes": _l("Report size", "bytes", "bytes"),
    "n_sections": _l("Sections", "", "count"),
    "seconds": _l("Execution time", "s", "seconds"),
}


def register_label(name: str, label: str, unit: str = "", kind: Kind = "number", doc: str = "") -> None:
    """Add or replace the wording of a field (a kind module can call this for its own metrics)."""
    LABELS[name] = Label(label, unit, kind, doc)


def describe(name) -> Label:
    """The table entry of ``name``, or one worded from the name itself."""
    key = str(name)
    if key in LABELS:
        return LABELS[key]
    low = key.strip().lower().replace(" ", "_").replace("-", "_")
    if low in LABELS:
        return LABELS[low]
    words = key.replace("_", " ").strip()
    return Label(words[:1].upper() + words[1:] if words else key)


def card_label(name) -> str:
    """``Label (unit)``: what a card or a metric row is called."""
    d = describe(name)
    return f"{d.label} ({d.unit})" if d.unit else d.label


def plain_number(x: float, digits: int = 4) -> str:
    """A float with ``digits`` decimals; thousands separators from 1,000, none after the
    point from 1e6; scientific notation below 1e-3."""
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 1e6:
        return f"{x:,.0f}"
    if a >= 1000:
        return f"{x:,.2f}"
    if a >= 1e-3:
        return f"{x:.{digits}f}"
    return f"{x:.3e}"


def show(name, value) -> str | None:
    """``value`` formatted for the field ``name`` by its kind, or None when the table has no
    rule for it (the caller's generic formatting applies)."""
    d = LABELS.get(str(name))
    if d is None or value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    x = float(value)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "\u221e" if x > 0 else "-\u221e"
    if d.kind == "percent":
        return f"{x:.2%}"
    if d.kind == "ratio":
        return f"{x:.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:.2e}"
    if d.kind in ("count", "bytes"):
        return f"{x:,.0f}" if x.is_integer() else f"{x:,.1f}"
    if d.kind == "money":
        return f"{x:,.2f}"
    if d.kind == "bps":
        return f"{x:g}"
    if d.kind == "seconds":
        return f"{x:.2f}" if x < 100 else f"{x:,.0f}"
    return plain_number(x)
