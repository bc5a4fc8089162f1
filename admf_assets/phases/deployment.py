"""What a phase deploys: the configuration an upstream table describes (a search's best
parameters, an ensemble's weights, a ledger's or a strategy construction's deployed
configuration) as an ``engine.ledger.Deployment``.  Shared by paper_trading (the ledger) and
backtest (the strategy construction of seed 001)."""

from __future__ import annotations

import json

import pandas as pd

from admf_assets.engine import ledger
from admf_assets.engine.paramsets import parameter_set
from admf_assets.phases.kind import PhaseError

#: the upstream outputs that describe a deployable configuration
DEPLOYED_INPUTS = ("best_parameters", "optimal_ensemble_weights", "performance_validation", "production_configuration")


def deployment_from(canonical: str, table: pd.DataFrame, config: dict, ref: str) -> tuple[ledger.Deployment, list[str]]:
    """The deployment an upstream table describes, with the behaviour settings of the phase that
    produced it; notes say what of it a daily ledger does not follow."""
    if table is None or not len(table):
        raise PhaseError(f"input {ref} is empty")
    behaviour = {k: config[k] for k in ledger.BEHAVIOUR_KEYS if k in config}
    if canonical == "best_parameters":
        try:
            strategy, params = parameter_set(table.iloc[0])
        except ValueError as exc:
            raise PhaseError(f"input {ref}: {exc}") from None
        return ledger.Deployment((ledger.Member(strategy, params),), behaviour, strategy), []
    if canonical in ("performance_validation", "production_configuration"):
        ids = table["config_id"].astype(str).unique()
        if len(ids) > 1:
            raise PhaseError(f"input {ref} holds {len(ids)} deployed configurations ({', '.join(ids)}); follow one")
        return ledger.Deployment.from_json(str(table["deployment"].iloc[-1])), []
    rows = table[table["regime"].astype(str) == "all"] if "regime" in table.columns else table
    rows = rows[rows["weight"].astype(float) > 1e-9]
    if rows.empty:
        raise PhaseError(f"input {ref}: no member has a positive weight")
    members = tuple(ledger.Member(str(r["strategy"]), json.loads(r["params"]), float(r["weight"]))
                    for _, r in rows.iterrows())
    notes = []
    if config.get("regime_conditional"):
        notes.append(f"{ref}: regime-conditional weights; the deployed configuration trades the unconditional ('all') weights")
    if config.get("rebalance_frequency", 1) not in (1, [1]):
        notes.append(f"{ref}: the ensemble drifted between rebalances in research; the deployed configuration rebalances daily")
    return ledger.Deployment(members, behaviour, f"ensemble of {len(members)}"), notes


__all__ = ["DEPLOYED_INPUTS", "deployment_from"]
