"""`admf run` materializes only what is stale, as Dagster's own stale status says: counts of
materializations per asset after unchanged runs, config edits, --phase, --from, --force and
re-ingested market data."""

from __future__ import annotations

import textwrap
from pathlib import Path

import dagster as dg
import pytest

from admf_assets import cli, staleness

WF = """\
workflow: {{name: Incremental, id: {wid}}}
data: {{symbols: [SPY], start_date: {start}, end_date: {end}, split: {{test_start: {split}}}}}
phases:
  - name: opt
    type: optimization
    config:
      optimization:
        parameters: {{fast_period: {fast}, slow_period: [20, 30]}}
  - name: bt
    type: backtest
    inputs: [opt.best_parameters]
    config: {{cost_bps: {cost}}}
reporting: {{enabled: false}}
"""
EARLY = dict(start="2021-01-04", end="2021-05-31", split="2021-04-01")
LATE = dict(start="2021-06-01", end="2021-09-30", split="2021-08-02")
ASSETS = ["data/bars", "opt/best_parameters", "opt/top_parameter_sets", "opt/optimization_history",
          "bt/validation_results", "bt/performance_report"]


@pytest.fixture(scope="module")
def env(tmp_path_factory, admf_env):
    root = tmp_path_factory.mktemp("incremental")
    with admf_env(root, backfill=("2021-01-04", "2021-09-30")) as (instance, _):
        yield root, instance


def write(path: Path, wid: str, fast="[5, 10]", cost=5.0, dates=EARLY) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(WF.format(wid=wid, fast=fast, cost=cost, **dates))
    return str(path)


def counts(instance, wid: str) -> dict[str, int]:
    """Materializations recorded per asset of workflow ``wid`` (``phase/output``)."""
    out = {}
    for name in ASSETS:
        key = dg.AssetKey([wid, *name.split("/")])
        out[name] = len(instance.fetch_materializations(key, limit=1000).records)
    return out


def admf(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def delta(before: dict, after: dict) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def test_unchanged_second_run_recomputes_nothing_and_says_so(env, capsys):
    root, instance = env
    wf = write(root / "a.yaml", "inc_a")
    code, out, err = admf(capsys, "run", wf)
    assert code == 0, err
    assert counts(instance, "inc_a") == dict.fromkeys(ASSETS, 1)
    code, out, err = admf(capsys, "run", wf)
    assert code == 0, err
    assert "workflow inc_a: 6 assets up to date, nothing to run" in out
    assert counts(instance, "inc_a") == dict.fromkeys(ASSETS, 1)
    # --force recomputes everything
    before = counts(instance, "inc_a")
    assert admf(capsys, "run", wf, "--force")[0] == 0
    assert delta(before, counts(instance, "inc_a")) == dict.fromkeys(ASSETS, 1)


def test_config_edit_reruns_the_phase_and_its_downstream_only(env, capsys):
    root, instance = env
    wf = write(root / "b.yaml", "inc_b")
    assert admf(capsys, "run", wf)[0] == 0

    # the last phase: only its two assets
    write(root / "b.yaml", "inc_b", cost=9.0)
    before = counts(instance, "inc_b")
    code, out, err = admf(capsys, "run", wf)
    assert code == 0, err
    assert delta(before, counts(instance, "inc_b")) == {"bt/validation_results": 1, "bt/performance_report": 1}
    assert "running workflow inc_b: 1 of 3 phases (config changed: bt)" in out

    # an upstream phase: Dagster's resolver (the UI's "Unsynced") marks it AND its downstream
    write(root / "b.yaml", "inc_b", fast="[5, 15]", cost=9.0)
    from admf_assets.workflow.loader import load_workflow

    graph = load_workflow(wf).graph
    statuses = staleness.Planner(graph, instance).statuses()
    assert {p: s.state for p, s in statuses.items()} == {"data": "fresh", "opt": "stale", "bt": "stale"}
    assert statuses["bt"].reason == "upstream config changed (opt)"
    before = counts(instance, "inc_b")
    assert admf(capsys, "run", wf)[0] == 0
    assert delta(before, counts(instance, "inc_b")) == {k: 1 for k in ASSETS if not k.startswith("data/")}
    assert "up to date" in admf(capsys, "run", wf)[1]


def test_edit_of_a_workflow_in_the_workflows_dir(env, capsys, monkeypatch):
    root, instance = env
    folder = root / "wfdir"
    write(folder / "named.yaml", "inc_named")
    monkeypatch.setenv("ADMF_WORKFLOWS_DIR", str(folder))
    assert admf(capsys, "run", "named")[0] == 0
    assert "up to date" in admf(capsys, "run", "named")[1]
    write(folder / "named.yaml", "inc_named", cost=2.0)
    before = counts(instance, "inc_named")
    assert admf(capsys, "run", "named")[0] == 0
    assert delta(before, counts(instance, "inc_named")) == {"bt/validation_results": 1, "bt/performance_report": 1}


def test_phase_and_from_run_from_stored_upstreams(env, capsys):
    root, instance = env
    wf = write(root / "c.yaml", "inc_c")
    assert admf(capsys, "run", wf)[0] == 0

    before = counts(instance, "inc_c")
    code, out, err = admf(capsys, "run", wf, "--phase", "opt")
    assert code == 0, err
    assert delta(before, counts(instance, "inc_c")) == {k: 1 for k in ASSETS if k.startswith("opt/")}
    # opt recomputed the same content (same data versions): its downstream stays fresh
    assert "up to date" in admf(capsys, "run", wf)[1]

    before = counts(instance, "inc_c")
    assert admf(capsys, "run", wf, "--from", "opt")[0] == 0
    assert delta(before, counts(instance, "inc_c")) == {k: 1 for k in ASSETS if not k.startswith("data/")}

    before = counts(instance, "inc_c")
    assert admf(capsys, "run", wf, "--phase", "bt", "--phase", "data")[0] == 0
    assert delta(before, counts(instance, "inc_c")) == {k: 1 for k in ASSETS if k.startswith(("bt/", "data/"))}

    code, out, err = admf(capsys, "run", wf, "--phase", "optt")
    assert code == 2 and err.strip().splitlines() == [
        f"{wf}: no phase 'optt' in workflow inc_c (did you mean 'opt'?) (phases: data, opt, bt)"]


def test_phase_whose_upstream_was_never_materialized_is_one_line(env, capsys):
    root, instance = env
    wf = write(root / "d.yaml", "inc_d")
    code, out, err = admf(capsys, "run", wf, "--phase", "bt")
    assert code == 2
    assert err.strip().splitlines() == [
        f"{wf}: phase 'bt' needs inc_d/opt/best_parameters, which has never been materialized; produce it with: "
        f"admf run {wf} --phase opt (or run the whole workflow: admf run {wf})"]
    assert counts(instance, "inc_d") == dict.fromkeys(ASSETS, 0)


def test_reingested_market_data_makes_exactly_the_workflows_reading_it_stale(env, capsys, monkeypatch):
    root, instance = env
    early = write(root / "early.yaml", "inc_early", dates=EARLY)
    late = write(root / "late.yaml", "inc_late", dates=LATE)
    monkeypatch.setenv("ADMF_WORKFLOWS_DIR", str(root))  # `admf backfill` observes these workflows
    assert admf(capsys, "run", early)[0] == 0 and admf(capsys, "run", late)[0] == 0

    from admf_assets.workflow.loader import load_workflow

    def stale(wf):
        return {p: s.reason for p, s in staleness.Planner(load_workflow(wf).graph, instance).stale().items()}

    # re-ingesting identical bars changes no data version
    assert admf(capsys, "backfill", "--start", "2021-07-01", "--end", "2021-07-30")[0] == 0
    assert stale(early) == {} and stale(late) == {}

    # different bars in July (another seed): only the workflow reading July is stale
    monkeypatch.setenv("ADMF_SEED", "7")
    assert admf(capsys, "backfill", "--start", "2021-07-01", "--end", "2021-07-30")[0] == 0
    assert stale(early) == {}
    assert stale(late) == {"data": "market data changed"}
    before = counts(instance, "inc_late")
    code, out, err = admf(capsys, "run", late)
    assert code == 0, err
    # the data phase first; its new bars then make the phases reading them stale (a second wave)
    assert "running workflow inc_late: 1 of 3 phases (market data changed: data)" in out
    assert "running workflow inc_late: 2 more phases (new data in data.bars: opt, bt)" in out
    assert delta(before, counts(instance, "inc_late")) == dict.fromkeys(ASSETS, 1)
    assert "up to date" in admf(capsys, "run", early)[1]
    assert "up to date" in admf(capsys, "run", late)[1]


def test_next_wave_waits_for_phases_whose_inputs_may_still_change():
    class Node:
        def __init__(self, *up):
            self.upstream_phases = up

    class Graph:
        order = ("a", "b", "c", "d")
        phases = {"a": Node(), "b": Node("a"), "c": Node("b"), "d": Node("a", "c")}

    g = Graph()
    # d is stale (market data, say) but c, between a and d, may still change: d waits
    assert staleness.next_wave(g, {"a", "d"}) == ["a"]
    assert staleness.next_wave(g, {"a", "b", "c", "d"}) == ["a", "b", "c", "d"]
    assert staleness.next_wave(g, {"b", "d"}) == ["b"]
    assert staleness.next_wave(g, {"d"}) == ["d"]
    assert staleness.downstream_of(g, ["b"]) == {"b", "c", "d"}


def test_a_phase_whose_condition_was_false_is_up_to_date_and_so_is_its_downstream(env, capsys):
    root, instance = env
    wf = root / "gated.yaml"
    write(wf, "inc_gated")
    gate = '    enabled: "${opt.best_parameters.sharpe_ratio} > 100"\n'
    extra = "  - name: bt2\n    type: backtest\n    inputs: [opt.best_parameters]\n    depends_on: [bt]\n"
    text = wf.read_text().replace("    config: {cost_bps: 5.0}\n", "    config: {cost_bps: 5.0}\n" + gate)
    wf.write_text(text.replace("reporting:", extra + "reporting:"))
    code, out, err = admf(capsys, "run", str(wf))
    assert code == 0, err
    assert counts(instance, "inc_gated")["bt/validation_results"] == 0  # the condition was false
    # nothing changed: bt was evaluated (skipped), bt2 waits for it; neither runs again
    code, out, err = admf(capsys, "run", str(wf))
    assert code == 0, err
    assert "workflow inc_gated: 8 assets up to date (4 not made: a false condition or a branch not taken in bt; bt2 waits for it)" in out
    code, out, err = admf(capsys, "run", str(wf), "--phase", "bt2")
    assert code == 2 and "which was not produced by the last run of phase 'bt' (it was skipped)" in err


def test_a_branch_not_taken_is_up_to_date_while_the_decision_is(env, capsys):
    """A conditional phase without ``if_false`` whose condition was false materializes only its
    branch_decision: its other outputs count as up to date (not "never materialized") until the
    config or the inputs change, and the phase reading them waits."""
    root, instance = env
    wf = root / "branch.yaml"
    write(wf, "inc_branch")
    extra = """\
  - name: sel
    type: conditional
    condition: "${opt.best_parameters.sharpe_ratio} > 100"
    if_true: {type: optimization, config: {optimization: {parameters: {fast_period: [5], slow_period: [30]}}}}
    outputs: [best_parameters, branch_decision]
  - name: bt2
    type: backtest
    inputs: [sel.best_parameters]
"""
    wf.write_text(wf.read_text().replace("reporting:", extra + "reporting:"))

    def made(name: str) -> int:
        key = dg.AssetKey(["inc_branch", *name.split("/")])
        return len(instance.fetch_materializations(key, limit=100).records)

    code, out, err = admf(capsys, "run", str(wf))
    assert code == 0, err
    assert (made("sel/branch_decision"), made("sel/best_parameters"), made("bt2/validation_results")) == (1, 0, 0)
    code, out, err = admf(capsys, "run", str(wf))
    assert code == 0, err
    assert "workflow inc_branch: 10 assets up to date (3 not made: a false condition or a branch not taken in sel; bt2 waits for it)" in out
    assert made("sel/branch_decision") == 1
    # a config edit of the conditional phase decides again (bt2, never made, is tried with it
    # and skipped by Dagster when the branch is again not taken); opt is not recomputed
    wf.write_text(wf.read_text().replace("> 100", "> 200"))
    code, out, err = admf(capsys, "run", str(wf))
    assert code == 0, err
    assert "running workflow inc_branch: 2 of 5 phases (config changed: sel; never materialized: bt2)" in out
    assert (made("sel/branch_decision"), made("opt/best_parameters"), made("bt2/validation_results")) == (2, 1, 0)
    assert "workflow inc_branch: 10 assets up to date" in admf(capsys, "run", str(wf))[1]


def test_walk_forward_folds_are_up_to_date_per_partition(env, capsys):
    """A workflow with walk_forward (its folds are static partitions): a second unchanged run
    recomputes nothing; an edit of walk_forward's config recomputes every fold and the stitched
    outputs, not the optimization upstream."""
    root, instance = env
    wf = root / "wfo.yaml"
    wf.write_text(textwrap.dedent("""\
        workflow: {name: Incremental folds, id: inc_wfo}
        data: {symbols: [SPY], start_date: 2021-01-04, end_date: 2021-09-30}
        phases:
          - name: opt
            type: optimization
            config: {optimization: {parameters: {fast_period: [5, 10], slow_period: [20, 30]}}}
          - name: wfo
            type: walk_forward
            inputs: [opt.best_parameters]
            config: {walk_forward: {train_period_days: 60, test_period_days: 30}}
        reporting: {enabled: false}
        """))

    def made(name: str, partition: bool = False):
        recs = instance.fetch_materializations(dg.AssetKey(["inc_wfo", *name.split("/")]), limit=1000).records
        return sorted(r.partition_key for r in recs) if partition else len(recs)

    code, out, err = admf(capsys, "run", str(wf))
    assert code == 0, err
    folds = made("wfo/fold_results", partition=True)
    assert len(folds) >= 3 and len(set(folds)) == len(folds)  # one materialization per fold
    assert made("wfo/walk_forward_results") == 1
    code, out, err = admf(capsys, "run", str(wf))
    assert code == 0, err
    assert f"workflow inc_wfo: {len(load_graph(wf).assets())} assets up to date, nothing to run" in out
    assert made("wfo/fold_results") == len(folds) and made("wfo/walk_forward_results") == 1
    wf.write_text(wf.read_text().replace("test_period_days: 30}", "test_period_days: 30, gap_days: 2}"))
    code, out, err = admf(capsys, "run", str(wf))
    assert code == 0, err
    assert "running workflow inc_wfo: 1 of 3 phases (config changed: wfo)" in out
    assert made("opt/best_parameters") == 1 and made("wfo/walk_forward_results") == 2
    assert made("wfo/fold_results") == 2 * len(folds)
    assert "assets up to date" in admf(capsys, "run", str(wf))[1]


def load_graph(path):
    from admf_assets.workflow.loader import load_workflow

    return load_workflow(str(path)).graph
