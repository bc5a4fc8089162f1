"""Phase kinds: the protocol (``kind.py``) and one module per kind, registered below.

Adding a kind is its module (a ``PhaseKind`` subclass and ``KIND = ...``), its engine module,
its tests, and ONE line in the ``KINDS.load`` call.  User code can register kinds too
(``from admf_assets.phases import KINDS; KINDS.register(MyKind())`` in an ``ADMF_PLUGINS``
module).  ``KINDS.plan`` lists kinds of the design that are not implemented yet: a workflow
naming one fails validation with "phase type 'x' is not available yet".
"""

from admf_assets.phases.kind import PhaseKind, Registry

KINDS = Registry()
KINDS.load(
    "admf_assets.phases.data_preparation",
    "admf_assets.phases.feature_engineering",
    "admf_assets.phases.parameter_search",
    "admf_assets.phases.signal_capture",
    "admf_assets.phases.analysis",
    "admf_assets.phases.regime_analysis",
    "admf_assets.phases.ensemble_optimization",
    "admf_assets.phases.conditional",
    "admf_assets.phases.backtest",
    "admf_assets.phases.walk_forward",
    "admf_assets.phases.validation",
    "admf_assets.phases.risk_analysis",
    "admf_assets.phases.report",
)

# named in the ADMF-PC seed documents; not part of this platform yet
KINDS.plan("data_integration", description="Alternative data integration")
KINDS.plan("data_processing", description="Generic data processing")
KINDS.plan("transformation", description="Signal transformation")
KINDS.plan("live_simulation", "paper_trading", description="Paper / shadow trading")
KINDS.plan("live_trading", description="Live trading")

__all__ = ["KINDS", "PhaseKind"]
