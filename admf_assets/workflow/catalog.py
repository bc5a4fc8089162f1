"""The phase types a workflow can use (pure data; no Dagster, no pydantic).

Each :class:`PhaseType` says what the YAML may write (canonical name and aliases),
whether it can run today (``available``), which config keys it requires or defaults,
which outputs it produces (each output is a separate asset; outputs have aliases
because the seed documents name the same result in several ways), which outputs it
produces when the YAML declares none, whether it reads the workflow's market data,
and which canonical upstream outputs it consumes.

Names from the ADMF-PC seed documents that this platform does not implement yet
(``walk_forward``, ``signal_generation``, ``live_trading``, ...) are *known but not
available*: a workflow using them fails validation with
``phase type 'walk_forward' is not available yet``; any other type name fails with
``unknown phase type 'x' (did you mean 'y'?)``.

Metric names listed in ``metrics`` are the contract between ``success_criteria`` in the
YAML and the phase implementations: a phase reports these names in its asset metadata.
They follow the engine's conventions (admf_assets/engine/metrics.py): fractions as
fractions, ``max_drawdown`` as a NEGATIVE fraction (-0.23 = 23 % below the peak), so a
drawdown limit is written ``max_drawdown: {min: -0.25}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from admf_assets.engine.metrics import METRIC_COLUMNS

__all__ = [
    "OutputType",
    "ConsumeRule",
    "PhaseType",
    "PHASE_TYPES",
    "PHASE_TYPE_ALIASES",
    "ANALYZERS",
    "ANALYZER_ALIASES",
    "ANALYZER_OUTPUTS",
    "OPTIMIZATION_METHODS",
    "UNAVAILABLE_OPTIMIZATION_METHODS",
    "OBJECTIVES",
    "PERFORMANCE_METRICS",
    "DEFAULT_TOP_N",
    "lookup_phase_type",
    "all_phase_type_names",
    "resolve_output",
]

DEFAULT_TOP_N = 10

#: the engine's metric columns: success criteria may name any of them
PERFORMANCE_METRICS: tuple[str, ...] = tuple(METRIC_COLUMNS)


@dataclass(frozen=True)
class OutputType:
    """One canonical output of a phase type.

    ``pattern`` (a regex with a named group ``n``) matches parametrised aliases such as
    ``top_10_parameter_sets``: the number is exposed as the output's ``n`` parameter.
    """

    name: str
    aliases: tuple[str, ...] = ()
    description: str = ""
    pattern: str | None = None


@dataclass(frozen=True)
class ConsumeRule:
    """The phase needs one upstream asset whose canonical output is one of ``outputs``.

    ``required``: validation fails when no upstream edge provides any of them, unless
    the phase config has the key ``unless_config`` (e.g. backtest with fixed parameters).
    At most one upstream asset may provide each canonical name (otherwise ambiguous).
    """

    outputs: tuple[str, ...]
    required: bool = True
    unless_config: str | None = None


@dataclass(frozen=True)
class PhaseType:
    name: str
    description: str
    available: bool
    aliases: tuple[str, ...] = ()
    required_config: tuple[str, ...] = ()
    optional_config: Mapping[str, Any] = field(default_factory=dict)
    outputs: tuple[OutputType, ...] = ()
    default_outputs: tuple[str, ...] = ()
    needs_market_data: bool = False
    consumes: tuple[ConsumeRule, ...] = ()
    consumes_all: bool = False
    metrics: tuple[str, ...] = ()

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def consumed_outputs(self) -> frozenset[str]:
        """Canonical upstream output names this phase loads as inputs."""
        names: set[str] = set()
        for rule in self.consumes:
            names.update(rule.outputs)
        if self.needs_market_data:
            names.add("bars")
        return frozenset(names)

    def output_alias_names(self) -> list[str]:
        names: list[str] = []
        for o in self.outputs:
            names.append(o.name)
            names.extend(o.aliases)
        return names


def _ro(d: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(d)


# ------------------------------------------------------------------ analysis kinds
#: canonical analyzer -> aliases
ANALYZERS: Mapping[str, tuple[str, ...]] = _ro(
    {
        "drawdown_analysis": ("drawdown", "drawdowns"),
        "correlation_analysis": ("correlation", "correlations"),
        "regime_performance": ("regime_analysis_performance",),
        "monte_carlo_simulation": ("monte_carlo",),
    }
)
ANALYZER_ALIASES: Mapping[str, str] = _ro(
    {alias: canon for canon, aliases in ANALYZERS.items() for alias in (canon, *aliases)}
)
#: the analysis output each analyzer fills in
ANALYZER_OUTPUTS: Mapping[str, str] = _ro(
    {
        "drawdown_analysis": "drawdowns",
        "correlation_analysis": "correlations",
        "regime_performance": "regime_breakdown",
        "monte_carlo_simulation": "risk_assessment",
    }
)

# ------------------------------------------------------------- search methods
OPTIMIZATION_METHODS: tuple[str, ...] = ("grid", "random")
UNAVAILABLE_OPTIMIZATION_METHODS: tuple[str, ...] = (
    "bayesian",
    "tpe",
    "cmaes",
    "cma_es",
    "differential_evolution",
    "genetic",
)
#: objective -> direction
OBJECTIVES: Mapping[str, str] = _ro(
    {
        "sharpe_ratio": "maximize",
        "sortino_ratio": "maximize",
        "calmar_ratio": "maximize",
        "total_return": "maximize",
        "annual_return": "maximize",
        "win_rate": "maximize",
        "max_drawdown": "maximize",  # negative fraction: closer to 0 is better
        "annual_volatility": "minimize",
    }
)

# ------------------------------------------------------------------ phase types
_DATA = PhaseType(
    name="data_preparation",
    description="Clean daily bars of the workflow's symbols and dates, read from the "
    "partitioned market data; the data section's train/test split travels with them.",
    available=True,
    aliases=("data_prep", "data_loading"),
    optional_config=_ro({"symbols": None, "start_date": None, "end_date": None, "split": None}),
    outputs=(
        OutputType("bars", ("cleaned_data", "clean_data", "market_data", "data"),
                   "Daily OHLCV bars, one row per symbol and date"),
    ),
    default_outputs=("bars",),
    metrics=("n_rows", "n_symbols", "n_dates", "missing_fraction"),
)

_SEARCH = PhaseType(
    name="parameter_search",
    description="Search a strategy's parameters (grid or random) on the train split.",
    available=True,
    aliases=("optimization", "parameter_optimization", "grid_search"),
    required_config=("optimization.parameters",),
    optional_config=_ro(
        {
            "strategies": [{"type": "momentum"}],
            "optimization.method": "grid",
            "optimization.objective": "sharpe_ratio",
            "optimization.direction": None,
            "optimization.n_trials": None,
            "optimization.seed": 42,
            "data_split": "train",
            "top_n": None,
        }
    ),
    outputs=(
        OutputType("best_parameters", ("best_params", "optimal_parameters"),
                   "The best parameter set and its score"),
        OutputType("top_parameter_sets", ("top_strategies", "top_parameters"),
                   "The N best parameter sets with their metrics",
                   pattern=r"^top_(?P<n>[0-9]+)_(parameter_sets|strategies|parameters)$"),
        OutputType("optimization_history",
                   ("trial_history", "trials", "all_results", "performance_distribution"),
                   "Every trial: parameters, objective and metrics"),
    ),
    default_outputs=("best_parameters", "top_parameter_sets", "optimization_history"),
    needs_market_data=True,
    metrics=PERFORMANCE_METRICS + ("best_score", "n_trials", "n_valid_trials"),
)

_ANALYSIS = PhaseType(
    name="analysis",
    description="Analyse the performance of the selected parameter sets "
    "(drawdowns, correlation, regime performance, Monte Carlo).",
    available=True,
    aliases=("performance_analysis",),
    optional_config=_ro(
        {
            "analyzers": ["drawdown_analysis", "correlation_analysis"],
            "data_split": "train",
            "n_simulations": 1000,
            "seed": 42,
        }
    ),
    outputs=(
        OutputType("performance_metrics", ("metrics_summary",), "Summary metrics table"),
        OutputType("drawdowns", ("drawdown_analysis",), "Drawdown periods and depths"),
        OutputType("correlations", ("correlation_analysis", "correlation_matrix"),
                   "Return correlations between parameter sets / symbols"),
        OutputType("regime_breakdown", ("regime_performance",),
                   "Performance by market regime"),
        OutputType("risk_assessment", ("monte_carlo", "risk_metrics"),
                   "Monte Carlo risk assessment"),
    ),
    # default: performance_metrics + the output of each configured analyzer
    default_outputs=("performance_metrics",),
    needs_market_data=True,
    consumes=(ConsumeRule(("best_parameters", "top_parameter_sets")),),
    metrics=PERFORMANCE_METRICS
    + ("mean_correlation", "max_correlation", "probability_of_loss", "var_95", "cvar_95"),
)

_BACKTEST = PhaseType(
    name="backtest",
    description="Backtest one parameter set on a data split (the reserved test period "
    "by default) with transaction costs.",
    available=True,
    aliases=("out_of_sample_backtest",),
    optional_config=_ro(
        {
            "data_split": "test",
            "include_transaction_costs": True,
            "cost_bps": 5.0,
            "slippage_bps": 2.0,
            "initial_capital": 100_000.0,
            "generate_detailed_report": True,
            "parameters": None,
            "strategy": None,
        }
    ),
    outputs=(
        OutputType("validation_results",
                   ("backtest_results", "performance", "metrics", "final_strategy_performance"),
                   "Out-of-sample metrics"),
        OutputType("performance_report",
                   ("final_performance_report", "equity_curve", "detailed_report", "returns"),
                   "Daily returns / equity curve of the backtest"),
    ),
    default_outputs=("validation_results", "performance_report"),
    needs_market_data=True,
    consumes=(ConsumeRule(("best_parameters",), required=True, unless_config="parameters"),),
    metrics=PERFORMANCE_METRICS + ("total_costs", "n_days"),
)

_REPORT = PhaseType(
    name="report",
    description="HTML report of every upstream result (Jinja2, autoescaped).",
    available=True,
    aliases=("reporting", "html_report"),
    optional_config=_ro(
        {
            "title": None,
            "output_path": None,
            "include_phase_reports": True,
            "generate_summary_report": True,
        }
    ),
    outputs=(
        OutputType("report", ("html_report", "summary_report", "final_report"),
                   "Path of the rendered HTML report"),
    ),
    default_outputs=("report",),
    consumes_all=True,
    metrics=("n_sections",),
)


def _later(name: str, description: str, aliases: tuple[str, ...] = ()) -> PhaseType:
    return PhaseType(name=name, description=description, available=False, aliases=aliases)


PHASE_TYPES: Mapping[str, PhaseType] = _ro(
    {
        t.name: t
        for t in (
            _DATA,
            _SEARCH,
            _ANALYSIS,
            _BACKTEST,
            _REPORT,
            # designed (DESIGN.md) but not implemented yet
            _later("feature_engineering", "Feature computation"),
            _later("signal_capture", "Capture the signals of many strategies",
                   ("signal_generation",)),
            _later("regime_analysis", "Regime detection (Markov switching, k-means, change points)",
                   ("regime_detection",)),
            _later("ensemble_optimization", "Ensemble weights by signal replay",
                   ("ensemble",)),
            _later("walk_forward", "Walk-forward re-optimisation",
                   ("walk_forward_validation", "walk_forward_analysis")),
            _later("validation", "Statistical validation (Monte Carlo, bootstrap, deflated Sharpe, PBO)",
                   ("statistical_validation", "comprehensive_validation")),
            _later("risk_analysis", "VaR/CVaR, stress windows, tail risk"),
            _later("conditional", "Branch on a safe expression over upstream results"),
            # named in the ADMF-PC seed documents; not part of this platform yet
            _later("data_integration", "Alternative data integration"),
            _later("data_processing", "Generic data processing"),
            _later("transformation", "Signal transformation"),
            _later("live_simulation", "Paper / shadow trading"),
            _later("live_trading", "Live trading"),
        )
    }
)

#: every accepted spelling -> canonical type name
PHASE_TYPE_ALIASES: Mapping[str, str] = _ro(
    {alias: t.name for t in PHASE_TYPES.values() for alias in (t.name, *t.aliases)}
)


def all_phase_type_names() -> list[str]:
    return sorted(PHASE_TYPE_ALIASES)


def lookup_phase_type(name: str) -> PhaseType | None:
    """The phase type for a canonical name or alias (case-insensitive), or None."""
    canon = PHASE_TYPE_ALIASES.get(str(name).strip().lower())
    return PHASE_TYPES[canon] if canon else None


def resolve_output(phase_type: PhaseType, name: str) -> tuple[str, dict[str, Any]] | None:
    """Canonical output name and parameters for a declared output name, or None.

    ``top_10_parameter_sets`` -> ``("top_parameter_sets", {"n": 10})``.
    """
    for out in phase_type.outputs:
        if name == out.name or name in out.aliases:
            return out.name, {}
    for out in phase_type.outputs:
        if out.pattern:
            m = re.match(out.pattern, name)
            if m:
                return out.name, {"n": int(m.group("n"))}
    return None
