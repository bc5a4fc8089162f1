"""Success criteria become one asset check per bound; each check tests its own bound only,
values exactly on a bound pass, a metric the phase did not report fails and says so."""

from __future__ import annotations

import math

import dagster as dg
import pandas as pd
import pytest

from admf_assets import runner
from admf_assets.phases.kind import Output, PhaseKind, PhaseResult
from admf_assets.workflow.loader import load_workflow_text
from admf_assets.workflow.spec import Criterion


# ------------------------------------------------------------------ the criterion itself
@pytest.mark.parametrize("crit, bound, value, passed, reason", [
    ({"min": 10}, "min", 10, True, "n = 10 >= min 10"),  # exactly on the bound
    ({"min": 10}, "min", 9.999, False, "n = 9.999 < min 10"),
    ({"max": 0.5}, "max", 0.5, True, "n = 0.5 <= max 0.5"),
    ({"max": 0.5}, "max", 0.5000001, False, "n = 0.5 > max 0.5"),
    ({"min": 0, "max": 1}, "min", 2.0, True, "n = 2 >= min 0"),  # breaking max does not fail min
    ({"min": 0, "max": 1}, "max", 2.0, False, "n = 2 > max 1"),
    ({"min": 0, "max": 1}, "min", -1.0, False, "n = -1 < min 0"),
    ({"min": 0, "max": 1}, "max", -1.0, True, "n = -1 <= max 1"),
    ({"min": 0}, "min", None, False, "metric 'n' was not reported by the phase"),
    ({"min": 0}, "min", float("nan"), False, "metric 'n' is NaN (not computable on this data)"),
    ({"max": 0}, "max", "abc", False, "metric 'n' is not a number (got 'abc')"),
])
def test_each_bound_is_checked_on_its_own(crit, bound, value, passed, reason):
    assert Criterion.model_validate(crit).evaluate(bound, value, "n") == (passed, reason)


def test_passes_means_both_bounds():
    c = Criterion(min=0.0, max=1.0)
    assert [c.passes(v) for v in (0.0, 1.0, -1e-12, 1 + 1e-12, None, math.nan)] == \
        [True, True, False, False, False, False]


# ------------------------------------------------------------------ compiled checks, run
class _Metrics(PhaseKind):
    """A kind reporting fixed metrics, and declaring one it never reports (a planted omission)."""

    name = "fixed_metrics_for_tests"
    description = "test kind"
    outputs = (Output("table", "one row", columns=("x",)),)
    metrics = ("score", "other", "forgotten")

    def run(self, ctx):
        return PhaseResult(outputs={"table": pd.DataFrame({"x": [1]})}, metrics={"score": 2.0, "other": 0.25})


@pytest.fixture
def metrics_kind(register_kind):
    return register_kind(_Metrics())


WF = """\
workflow: {{name: Criteria, id: {wid}}}
phases:
  - name: k
    type: fixed_metrics_for_tests
    critical: {critical}
    success_criteria:
      score: {score}
      other: {{min: 0.0, max: 0.25}}
      forgotten: {{min: 0}}
reporting: {{enabled: false}}
"""


def _evaluations(instance, run_id):
    recs = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    return {r.event_log_entry.dagster_event.event_specific_data.check_name:
            r.event_log_entry.dagster_event.event_specific_data for r in recs}


def test_checks_in_a_run(metrics_kind, tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ADMF_STORAGE", raising=False)
    from admf_assets import settings

    settings.ensure_dagster_home()
    with pytest.raises(Exception):  # min > max is refused at validation
        load_workflow_text("phases: [{name: k, type: fixed_metrics_for_tests, "
                           "success_criteria: {score: {min: 2, max: 1}}}]")
    spec = load_workflow_text(WF.format(wid="crit_warn", critical="false", score="{min: 2.0, max: 2.5}"))
    with dg.DagsterInstance.get() as instance:
        out = runner.run_workflow(spec.graph, instance)
        assert out.success  # not critical: failing checks warn only
        ev = _evaluations(instance, out.run_id)
        assert {n: e.passed for n, e in ev.items()} == {
            "score_min": True, "score_max": True,  # 2.0 sits exactly on min
            "other_min": True, "other_max": True,  # 0.25 sits exactly on max
            "forgotten_min": False}
        assert ev["forgotten_min"].description == "metric 'forgotten' was not reported by the phase"
        assert ev["forgotten_min"].metadata["value"].value == "not reported"
        assert ev["score_min"].description == "score = 2 >= min 2"

        spec = load_workflow_text(WF.format(wid="crit_block", critical="true", score="{min: 1.0, max: 1.5}"))
        out = runner.run_workflow(spec.graph, instance)
        assert not out.success
        ev = _evaluations(instance, out.run_id)
        # score 2.0 breaks only its max (1.5): its min check still passes
        assert (ev["score_min"].passed, ev["score_max"].passed) == (True, False)
        assert ev["score_max"].description == "score = 2 > max 1.5"
        assert "check score_max on crit_block/k/table failed: score = 2 > max 1.5" in out.failures
        assert "check forgotten_min on crit_block/k/table failed: metric 'forgotten' was not reported by the phase" \
            in out.failures
        assert not any("score_min" in f for f in out.failures)
