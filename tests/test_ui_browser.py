"""The Dagster UI of ``admf ui`` in a real browser: headless Debian Chromium driven by Playwright.

``admf ui`` runs on a free loopback port over a fresh instance; the tests click as a user
would: the workflow's asset graph renders, "Materialize all" on the workflow's job page runs as
the workflow's job, a month of market data backfilled from the UI completes as ONE run, an
asset page shows its metadata and plots, a config change shows the changed phase and its
downstream as unsynced (exactly what ``admf run`` would recompute), and "Materialize unsynced"
runs those assets with the workflow's settings.  Screenshots go to the test's tmp folder.

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or ``$ADMF_CHROMIUM``; ``.ci/run`` installs it
when it runs as root) and the ``playwright`` package (dev extra); never downloads a browser.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("ADMF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium; "
                ".ci/run does it when run as root) to run the browser tests", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e '.[dev]')")

REPO = Path(__file__).resolve().parents[1]
WID = "ui_research"
WORKFLOW = """\
workflow: {{name: UI Research, description: "A small workflow driven from the browser test"}}
data: {{symbols: [SPY, QQQ], start_date: 2023-01-02, end_date: 2023-04-28, split: {{test_start: 2023-04-03}}}}
phases:
  - name: opt
    type: optimization
    config:
      optimization: {{parameters: {{fast_period: [5, 10], slow_period: [20, 30]}}}}
    outputs: [best_parameters, top_5_parameter_sets, optimization_history]
  - name: validation
    type: backtest
    inputs: [opt.best_parameters]
    config: {{data_split: test, cost_bps: {cost}}}
execution: {{timeout_minutes: 30}}
reporting: {{title: UI Research}}
"""
TIMEOUT = 300  # seconds for anything the UI's daemon and run workers do (the machine may be shared)


def wait_for(check, what: str, timeout: float = TIMEOUT, every: float = 1.0):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(url: str, query: str) -> dict:
    req = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def _location_loaded(url: str) -> bool:
    try:
        data = _graphql(url, "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                             "locationOrLoadError { __typename } } } } }")
    except OSError:
        return False
    entries = (data.get("data") or {}).get("workspaceOrError", {}).get("locationEntries") or []
    return any(e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
               for e in entries)


def _default_signals():
    # `admf ui` stops on SIGINT like `dagster dev`; a runner may start us with it ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    home, wfdir, shots = root / "home", root / "workflows", root / "screenshots"
    wfdir.mkdir()
    shots.mkdir()
    (wfdir / f"{WID}.yaml").write_text(WORKFLOW.format(cost=5))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADMF_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), ADMF_WORKFLOWS_DIR=str(wfdir), ADMF_SYMBOLS="SPY,QQQ")
    backfill = subprocess.run([sys.executable, "-m", "admf_assets.cli", "backfill", "--start", "2023-01-02",
                               "--end", "2023-04-28"], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT)
    assert backfill.returncode == 0, backfill.stderr
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "admf_ui.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "admf_assets.cli", "ui", "--port", str(port)], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_default_signals)
    try:
        wait_for(lambda: proc.poll() is not None or _location_loaded(url), "the UI and its code location")
        assert proc.poll() is None, (root / "admf_ui.log").read_text()[-3000:]
        with pytest.MonkeyPatch.context() as mp:  # this process reads the same instance and workflows
            mp.setenv("DAGSTER_HOME", str(home))
            mp.setenv("ADMF_WORKFLOWS_DIR", str(wfdir))
            mp.setenv("ADMF_SYMBOLS", "SPY,QQQ")
            mp.delenv("ADMF_STORAGE", raising=False)
            with dg.DagsterInstance.from_config(str(home)) as instance:
                yield {"url": url, "home": home, "wfdir": wfdir, "shots": shots, "instance": instance, "env": env}
    finally:
        for sig, grace in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
            if proc.poll() is not None:
                break
            os.killpg(proc.pid, sig)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        log.close()
        print(f"screenshots: {shots}")


@pytest.fixture(scope="module")
def page(ui, tmp_path_factory):
    with sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1600, "height": 1000})
        ctx.set_default_timeout(TIMEOUT * 1000)
        pg = ctx.new_page()
        yield pg
        ctx.close()


_state = {"modal_checked": False}


def visit(page, ui, path: str):
    page.goto(ui["url"] + path)
    if not _state["modal_checked"]:  # it can only show on the first visit
        _state["modal_checked"] = True
        dismiss_community_modal(page)


def dismiss_community_modal(page):
    """Dagster's "Join the Dagster community" dialog (a first visit on localhost; the instance
    admf writes turns it off, so usually there is none)."""
    skip = page.get_by_role("dialog").filter(has_text="Join the Dagster community").get_by_role("button", name="Skip")
    try:
        skip.click(timeout=3000)
    except sync_api.TimeoutError:
        pass


def shoot(page, ui, name: str) -> Path:
    path = ui["shots"] / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def runs_of(instance, job: str) -> list:
    return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(job_name=job))]


def finished(instance, run_id: str):
    run = instance.get_run_by_id(run_id)
    return run if run.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
                                 dg.DagsterRunStatus.CANCELED) else None


def materialized_keys(instance, run_id: str) -> set[str]:
    recs = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in recs}


def node_states(page) -> dict[str, bool]:
    """Asset name -> whether its node in the graph shows "Unsynced"."""
    pairs = page.evaluate("""() => [...document.querySelectorAll('[class*="assetNodeContainer"]')].map(n => {
        const name = n.querySelector('[class*="assetName"]');
        return [name ? name.textContent.trim() : '', n.textContent.includes('Unsynced')]; })""")
    return {name: unsynced for name, unsynced in pairs if name}


GROUP = f"/locations/admf/asset-groups/{WID}/lineage"
ASSETS = {f"{WID}/{a}" for a in ("data/bars", "opt/best_parameters", "opt/top_5_parameter_sets",
                                 "opt/optimization_history", "validation/validation_results",
                                 "validation/performance_report", "report/report")}


def test_the_workflows_asset_graph_renders(ui, page):
    visit(page, ui, GROUP)
    for name in ("market_snapshot", "bars", "best_parameters", "top_5_parameter_sets", "validation_results",
                 "performance_report", "report"):
        page.get_by_text(name, exact=True).first.wait_for()
    page.get_by_role("button", name="Materialize all").first.wait_for()
    shoot(page, ui, "01_asset_graph")


def test_materialize_all_on_the_workflow_runs_as_the_workflows_job(ui, page):
    instance = ui["instance"]
    visit(page, ui, f"/locations/admf/jobs/{WID}")
    page.get_by_role("button", name="Materialize all").first.click()
    run = wait_for(lambda: next(iter(runs_of(instance, WID)), None), "the run to be launched")
    run = wait_for(lambda: finished(instance, run.run_id), "the run to finish")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.job_name == WID
    assert materialized_keys(instance, run.run_id) == ASSETS
    # the workflow's settings: its job tags, and the run worker's process recorded
    assert run.tags["admf/workflow"] == WID and run.tags["dagster/max_runtime"] == "1800"
    assert "admf/pid" in instance.get_run_by_id(run.run_id).tags
    visit(page, ui, f"/runs/{run.run_id}")
    page.get_by_text("Success").first.wait_for()
    shoot(page, ui, "02_workflow_run")


def _last_month() -> tuple[str, str, list[str]]:
    first_of_this = dt.date.today().replace(day=1)
    last = first_of_this - dt.timedelta(days=1)
    days = [d for d in (last.replace(day=1) + dt.timedelta(n) for n in range(last.day)) if d.weekday() < 5]
    keys = [d.isoformat() for d in days if d < dt.date.today()]
    return keys[0], keys[-1], keys


def test_a_month_of_market_data_backfilled_from_the_ui_is_one_run(ui, page):
    instance = ui["instance"]
    first, last, keys = _last_month()  # inside the dialog's default "last 90 days"
    visit(page, ui, "/locations/admf/jobs/market_data")
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    dialog.locator("input[type=text]").first.fill(f"[{first}...{last}]")
    dialog.locator("input[type=text]").first.press("Enter")
    dialog.get_by_text(f"{len(keys)} partitions").first.wait_for()
    shoot(page, ui, "03_backfill_dialog")
    dialog.get_by_role("button", name="Launch backfill").click()
    backfill = wait_for(lambda: next(iter(instance.get_backfills()), None), "the backfill to be created")
    by_backfill = dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id})
    run = wait_for(lambda: next(iter(instance.get_runs(by_backfill)), None), "the backfill's run")
    run = wait_for(lambda: finished(instance, run.run_id), "the backfill's run to finish")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    wait_for(lambda: instance.get_backfill(backfill.backfill_id).status.value.startswith("COMPLETED"),
             "the backfill to complete")
    assert len(instance.get_runs(by_backfill)) == 1  # one run for the whole month
    from admf_assets.market import CLEAN_KEY

    assert set(keys) <= instance.get_materialized_partitions(CLEAN_KEY)
    visit(page, ui, "/overview/backfills")
    page.get_by_text(backfill.backfill_id).first.wait_for()
    shoot(page, ui, "04_backfill_done")


def test_an_asset_page_shows_its_metadata_and_plots(ui, page):
    visit(page, ui, f"/assets/{WID}/validation/validation_results")
    for key in ("metric/sharpe_ratio", "equity_and_drawdown", "compute_seconds", "bytes_on_disk"):
        page.get_by_text(key, exact=True).first.wait_for()
    shoot(page, ui, "05_asset_metadata")
    page.get_by_role("button", name="Plots").click()
    wait_for(lambda: page.locator("canvas").count() > 0, "the metadata plots")
    page.get_by_text("metric/sharpe_ratio", exact=True).first.wait_for()
    shoot(page, ui, "06_asset_plots")


def test_a_config_change_marks_the_phase_and_its_downstream_unsynced(ui, page):
    instance = ui["instance"]
    (ui["wfdir"] / f"{WID}.yaml").write_text(WORKFLOW.format(cost=9))
    visit(page, ui, GROUP)
    page.get_by_role("button", name="Reload definitions").click()
    unsynced = {"validation_results", "performance_report", "report"}

    def states():
        s = node_states(page)
        return s if {n for n, u in s.items() if u} == unsynced else None

    wait_for(states, "validation and report to show as unsynced", every=2)
    states_now = node_states(page)
    assert not any(states_now[n] for n in ("bars", "best_parameters", "top_5_parameter_sets", "optimization_history"))
    shoot(page, ui, "07_unsynced")

    # `admf run` would recompute exactly these (the same Dagster resolver decides)
    from admf_assets import staleness
    from admf_assets.workflow.loader import load_workflow

    planner = staleness.Planner(load_workflow(str(ui["wfdir"] / f"{WID}.yaml")).graph, instance)
    assert set(planner.stale()) == {"validation", "report"}

    # "Materialize unsynced": those three assets, with the workflow's settings
    page.get_by_role("button", name="Materialize all").first.locator("xpath=following::button[1]").click()
    page.get_by_text("Materialize unsynced", exact=True).click()
    dialog = page.get_by_role("dialog").filter(has_text="Materialize unsynced assets")
    dialog.get_by_role("button", name="Materialize 3 assets").click()
    before = {r.run_id for r in runs_of(instance, "__ASSET_JOB")}
    run = wait_for(lambda: next((r for r in runs_of(instance, "__ASSET_JOB") if r.run_id not in before), None),
                   "the unsynced assets' run")
    run = wait_for(lambda: finished(instance, run.run_id), "the unsynced assets' run to finish")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert materialized_keys(instance, run.run_id) == {f"{WID}/validation/validation_results",
                                                        f"{WID}/validation/performance_report", f"{WID}/report/report"}
    tags = instance.get_run_by_id(run.run_id).tags
    assert tags["admf/workflow"] == WID and tags["dagster/max_runtime"] == "1800"  # the workflow's run settings
    assert staleness.Planner(planner.graph, instance).stale() == {}
    visit(page, ui, GROUP)
    wait_for(lambda: node_states(page) and not any(node_states(page).values()), "every asset to be synced", every=2)
    shoot(page, ui, "08_synced")
