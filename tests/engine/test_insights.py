"""engine.insights against closed forms and planted effects; engine.labels; the executive
summary section's wording of verdicts."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from admf_assets.engine import insights as I
from admf_assets.engine import labels as L
from admf_assets.engine import report as REP


def _grid(f, noise=0.0, seed=0):
    rows = [{"a": a, "b": b, "c": c} for a, b, c in itertools.product([1, 2, 3, 4], [10, 20, 30], [0.0, 0.5])]
    h = pd.DataFrame(rows)
    rng = np.random.default_rng(seed)
    h["objective"] = f(h) + noise * rng.normal(size=len(h))
    return h


def test_expected_max_sharpe_reproduces_the_published_numbers():
    # pypbo test_expected_max: E[max of 100 standard normals] by the approximation
    assert I.expected_max_sharpe(100, 1.0) == pytest.approx(2.5306028932016846, abs=1e-12)
    # Bailey & Lopez de Prado (2014) numerical example: N = 100, V[SR] = 1/2 (annualised) -> SR0 = 1.7894
    assert I.expected_max_sharpe(100, math.sqrt(0.5)) == pytest.approx(1.7894, abs=5e-5)
    for n, z in ((10, 1.5746), (20, 1.9007), (1000, 3.2551), (10000, 3.8607)):  # peers-and-oracles table
        assert I.expected_max_sharpe(n, 1.0) == pytest.approx(z, abs=5e-5)
    assert I.expected_max_sharpe(1, 1.0) == 0.0 and I.expected_max_sharpe(50, 0.0) == 0.0


def test_parameter_effects_are_the_groupby_means():
    h = _grid(lambda d: 0.5 * d["a"] - 0.01 * d["b"], noise=0.05)
    eff = I.parameter_effects(h, ["a", "b", "c"])
    assert list(eff["parameter"]) == ["a", "b", "c"]  # by spread
    means = h.groupby("a")["objective"].mean()
    row = eff.iloc[0]
    assert row.best_value == means.idxmax() == 4 and row.worst_value == means.idxmin() == 1
    assert row.spread == pytest.approx(means.max() - means.min())
    low = I.parameter_effects(h, ["a"], direction="minimize").iloc[0]
    assert low.best_value == 1 and low.best_mean == pytest.approx(means.min())
    # a continuous parameter (random search) is binned into quintiles
    rng = np.random.default_rng(1)
    r = pd.DataFrame({"x": rng.uniform(0, 1, 500)})
    r["objective"] = r["x"] ** 2
    e = I.parameter_effects(r, ["x"]).iloc[0]
    assert e.n_values == 5 and e.best_mean > 0.6 and e.worst_mean < 0.05


def test_variance_explained_is_the_main_effect_eta_squared():
    # additive on a balanced grid: the main effects explain everything, in proportion to their variances
    alpha = {1: -1.5, 2: -0.5, 3: 0.5, 4: 1.5}
    beta = {10: -1.0, 20: 0.0, 30: 1.0}
    h = _grid(lambda d: d["a"].map(alpha) + d["b"].map(beta))
    shares = I.parameter_importance(h, ["a", "b", "c"])
    va, vb = np.var(list(alpha.values())), np.var(list(beta.values()))
    assert shares["a"] == pytest.approx(va / (va + vb)) and shares["b"] == pytest.approx(vb / (va + vb))
    assert shares["c"] == pytest.approx(0.0, abs=1e-12) and list(shares) == ["a", "b", "c"]
    # a pure interaction: no main effect explains anything
    x = _grid(lambda d: np.where((d["a"] > 2) == (d["b"] > 15), 1.0, -1.0) * np.where(d["c"] > 0, 1, -1))
    assert sum(I.parameter_importance(x, ["a", "b", "c"]).values()) < 0.05
    # against a direct one-way ANOVA with statsmodels
    import statsmodels.api as sm
    from statsmodels.formula.api import ols

    n = _grid(lambda d: np.sin(d["a"]) + 0.1 * d["b"] / 10, noise=0.3, seed=3)
    table = sm.stats.anova_lm(ols("objective ~ C(a)", data=n).fit())
    eta = table.loc["C(a)", "sum_sq"] / table["sum_sq"].sum()
    assert I.parameter_importance(n, ["a"])["a"] == pytest.approx(eta, rel=1e-12)
    assert I.parameter_importance(h.head(3), ["a"]) == {}


def test_neighbourhood_tells_a_peak_from_a_plateau():
    spike = _grid(lambda d: np.where((d["a"] == 3) & (d["b"] == 20) & (d["c"] == 0.5), 2.0, 0.1))
    best = int(spike["objective"].idxmax())
    nb = I.neighbourhood(spike, ["a", "b", "c"], best)
    assert nb["n"] == 6 and nb["best"] == 2.0 and nb["ratio"] == pytest.approx(0.05)
    plateau = _grid(lambda d: 1.0 + 0.01 * d["a"])
    nb = I.neighbourhood(plateau, ["a", "b", "c"], int(plateau["objective"].idxmax()))
    assert nb["ratio"] > 0.98


def test_relative_change():
    assert I.relative_change(1.5, 0.6) == pytest.approx(-0.6)
    assert I.relative_change(-0.5, 0.5) == pytest.approx(2.0)
    assert math.isnan(I.relative_change(0.0, 1.0)) and math.isnan(I.relative_change(float("nan"), 1.0))


def test_labels_are_words_with_units():
    assert L.card_label("n_bars") == "Bars (trading days)"
    assert L.card_label("total_costs") == "Costs paid (% of equity)"
    assert L.card_label("max_drawdown_duration") == "Longest drawdown (bars)"
    assert L.card_label("brand_new_metric") == "Brand new metric"
    assert L.show("total_costs", 0.0031519) == "0.32%"
    assert L.show("sharpe_ratio", 1.15803) == "1.16"
    assert L.show("n_trades", 6.0) == "6"
    assert L.show("final_value", 117343.94) == "117,343.94"
    assert L.show("unknown", 1.0) is None and L.show("sharpe_ratio", float("nan")) is None
    L.register_label("my_metric", "My metric", "widgets", "count")
    assert L.card_label("my_metric") == "My metric (widgets)"


def test_cards_use_the_label_table():
    html = REP.render_report({"title": "t", "sections": [{"title": "m", "metrics": {
        "n_bars": 259, "total_costs": 0.0032, "sharpe_ratio": 1.15803, "strategy": "momentum", "fast_period": 20.0}}]})
    cards = dict((k, v) for k, v in __import__("re").findall(
        r'<span class="k">([^<]+)</span><span class="v">([^<]+)</span>', html))
    assert cards == {"Bars (trading days)": "259", "Costs paid (% of equity)": "0.32%",
                     "Sharpe ratio (annualised)": "1.16", "Strategy": "momentum", "Fast period": "20"}
    assert "text-transform: uppercase" not in html


def test_executive_summary_wording():
    none = REP.executive_summary_section([], [])
    assert none["callout"]["status"] == "unvalidated" and none["callout"]["headline"] == "Not validated"
    assert REP.executive_summary_section([{"valid": None, "reason": "skipped"}], [])["callout"]["status"] == \
        "unvalidated"
    bad = REP.executive_summary_section(
        [{"valid": True, "reason": "PSR 0.99", "phase": "v1"},
         {"valid": False, "reason": "PBO 0.61 > 0.5", "phase": "v2",
          "criteria": [{"name": "pbo", "value": 0.61, "threshold": "<= 0.5", "passed": False}]}],
        [{"topic": "risk", "text": "VaR 2%", "phase": "a"},
         {"topic": "decay", "text": "Sharpe 1.2 -> 0.4", "key": "sharpe_decay", "value": -0.67, "phase": "b"},
         {"topic": "performance", "text": "", "key": "sharpe_ratio", "value": 0.4, "label": "OOS Sharpe",
          "phase": "b"}])
    assert bad["callout"] == {"status": "invalid", "headline": "Not valid", "text": "v1: PSR 0.99\n\nv2: PBO 0.61 > 0.5"}
    assert [b["label"] for b in bad["bullets"]] == ["In-sample vs out-of-sample", "Risk"]  # topic order
    assert bad["metrics"] == {"Sharpe ratio change out of sample": "-67.00%", "OOS Sharpe": "0.40"}
    assert bad["table"].to_dict("records") == [{"phase": "v2", "criterion": "pbo", "value": 0.61,
                                                "threshold": "<= 0.5", "result": "FAIL"}]
    ok = REP.executive_summary_section([{"valid": True, "reason": "all pass", "phase": "v"}], [])
    assert ok["callout"]["status"] == "valid" and ok["callout"]["headline"] == "Valid"
