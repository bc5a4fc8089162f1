"""The ``admf`` command: backfill market data, run workflows, validate YAML, open the UI.

Every command works on one Dagster instance: ``$DAGSTER_HOME``, or ``~/.admf/dagster_home``
when it is not set, so what the command line runs shows up in ``admf ui``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import warnings
from functools import partial
from pathlib import Path


def _instance():
    from admf_assets import settings

    home = settings.ensure_dagster_home()
    warnings.filterwarnings("ignore", module="dagster")
    import dagster as dg

    from admf_assets import recovery

    try:
        instance = dg.DagsterInstance.get()
    except Exception as exc:  # e.g. the PostgreSQL server is down: one line, not a traceback
        from admf_assets.instance import hide_password

        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__]
        raise settings.SettingError(f"cannot open the Dagster instance of {home / 'dagster.yaml'}: "
                                    f"{hide_password(lines[0])}") from None
    for run_id in recovery.mark_dead_runs(instance):
        print(f"admf: run {run_id} had lost its process (killed?): marked failed; "
              f"re-execute it from failure with: admf resume {run_id}", file=sys.stderr)
    return instance


def _fail(msg: str) -> int:
    print(f"admf: error: {msg}", file=sys.stderr)
    return 2


#: exit status of a workflow run that finished, but with failed optional phases
#: (on_failure: continue_with_warning); 1 is a failed run, 2 bad input or usage
EXIT_OPTIONAL_FAILED = 3


def _failed(out, what: str) -> int:
    """Print a failed run's messages (one line each) and return the exit code 1, or
    EXIT_OPTIONAL_FAILED when only optional phases failed."""
    for line in out.failures or ["run failed; open it in the UI (admf ui) for the logs"]:
        print(f"  {line}", file=sys.stderr)
    skipped = getattr(out, "skipped", None)
    if skipped:
        print(f"  skipped (they need a failed phase): {', '.join(skipped)}", file=sys.stderr)
    if getattr(out, "status", "failed") == "optional_failed":
        print(f"{what} {out.run_id} finished with failed optional phases (on_failure: continue_with_warning): "
              f"failed {', '.join(out.failed)}; {out.materialized} assets materialized "
              f"(exit status {EXIT_OPTIONAL_FAILED})", file=sys.stderr)
        return EXIT_OPTIONAL_FAILED
    print(f"{what} {out.run_id} FAILED", file=sys.stderr)
    return 1


def cmd_backfill(args) -> int:
    instance = _instance()
    from admf_assets import runner, settings

    try:
        first, last, keys = runner.partition_range(args.start, args.end)
    except ValueError as exc:
        return _fail(str(exc))
    print(f"backfilling market data {first}..{last} ({len(keys)} weekday partitions) as one run")
    t0 = time.perf_counter()
    out = runner.backfill(args.start, args.end, instance, executor=args.executor,
                          log_level="INFO" if args.verbose else "WARNING")
    took = time.perf_counter() - t0
    if not out.success:
        return _failed(out, "run")
    print(f"run {out.run_id} succeeded in {took:.1f}s")
    from admf_assets import staleness

    staleness.observe_workflows(instance)  # the workflows reading re-ingested dates become unsynced
    print(f"  instance (DAGSTER_HOME): {settings.dagster_home()}")
    print(f"  tables:  {settings.storage_root() / 'tables' / 'market'}")
    print(f"  DuckDB:  {settings.duckdb_path()}  (SELECT * FROM market.clean_bars)")
    return 0


def cmd_run(args) -> int:
    t_start = time.perf_counter()
    from admf_assets.workflow.errors import WorkflowError
    from admf_assets.workflow.loader import load_workflow

    try:
        spec = load_workflow(args.workflow)  # the one time the YAML is read; the graph is handed on
    except WorkflowError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    for warning in spec.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    graph = spec.graph
    if args.resume and (args.phase or args.from_phase or args.force):
        return _fail("--resume re-executes the last failed run as it was; it takes no --phase, --from or --force")
    instance = _instance()
    from admf_assets import runner, settings, staleness

    try:
        runner.claim_workflow_id(graph)  # before anything is written: one id, one file
    except WorkflowError as exc:
        print(str(exc), file=sys.stderr)
        return 2

    level = "INFO" if args.verbose else "WARNING"
    if args.resume:
        return _resume_last(graph, instance, args, level)
    planner = staleness.Planner(graph, instance, executor=args.executor, cli_name=args.workflow)
    try:
        selected = planner.select(args.phase, args.from_phase)
        if selected is not None:
            planner.check_inputs(selected)
    except staleness.SelectionError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        gap = runner.missing_market_range(graph) if planner.reads_market(selected) else None
    except ValueError as exc:
        return _fail(f"{graph.source}: {exc}")
    if gap and not args.no_backfill:
        print(f"backfilling missing market data {gap[0]}..{gap[1]} (one run)")
        b = runner.backfill(gap[0], gap[1], instance, log_level=level)
        if not b.success:
            return _failed(b, "market-data backfill run")
        staleness.observe_workflows(instance)
    planner.observe_market()
    t_run = time.perf_counter()
    if selected is None and not args.force:
        out = planner.run_stale(level, say=print)
        if out is None:
            print(f"{planner.up_to_date_line()}, nothing to run "
                  f"({time.perf_counter() - t_start:.1f}s; --force recomputes everything)")
            return 0
    else:
        n = len(graph.order)
        what = (f"{len(selected)} of {n} phases (selected: {', '.join(selected)})" if selected is not None
                else f"{n} of {n} phases (--force: all {len(graph.assets())} assets)")
        print(f"running workflow {graph.workflow_id}: {what}")
        out = planner.run(selected, level, tags={"admf/selection": "phases" if selected is not None else "force"})
    total = time.perf_counter() - t_start
    if not out.success:
        return _failed(out, "run")
    orchestration = max(0.0, out.run_seconds - out.compute_seconds)
    print(f"run {out.run_id} succeeded: {out.materialized} assets materialized")
    if out.booked:
        print(f"  booked {out.booked[2]} market day(s) {out.booked[0]}..{out.booked[1]} (earlier days untouched)")
    prep = "start-up + market-data backfill" if gap and not args.no_backfill else "start-up"
    print(f"  time: {total:.1f}s end to end ({prep} {t_run - t_start:.1f}s; workflow run "
          f"{out.run_seconds:.1f}s = phases {out.compute_seconds:.1f}s + orchestration {orchestration:.1f}s)")
    print(f"  instance (DAGSTER_HOME): {settings.dagster_home()}   (open it with: admf ui)")
    print(f"  tables: {settings.duckdb_path()}  (schema {graph.workflow_id})")
    if out.report_path:
        print(f"report: {out.report_path}")
    return 0


def _resume_last(graph, instance, args, level: str) -> int:
    """``admf run WF --resume``: re-execute the last run of WF from failure, if it failed."""
    from admf_assets import recovery

    run = recovery.last_run(instance, graph.workflow_id)
    if run is None:
        return _fail(f"{graph.source}: workflow {graph.workflow_id} has no run to resume")
    if run.status.value == "SUCCESS":
        print(f"nothing to resume: the last run of {graph.workflow_id} ({run.run_id}) succeeded "
              f"(admf run {args.workflow} runs what is stale)")
        return 0
    return _reexecute(run, instance, args, level, graph)


def _reexecute(run, instance, args, level: str, graph=None) -> int:
    from admf_assets import recovery, runner

    if run.status not in recovery.RESUMABLE:
        return _fail(f"run {run.run_id} is {run.status.value.lower()}, not failed: only a failed (or killed) "
                     f"run can be re-executed from failure")
    print(f"re-executing run {run.run_id} ({run.job_name}) from failure")
    t0 = time.perf_counter()
    try:
        out = runner.reexecute(run, instance, executor=args.executor, log_level=level, workflow=graph)
    except ValueError as exc:
        return _fail(str(exc))
    if not out.success:
        return _failed(out, "run")
    print(f"run {out.run_id} succeeded in {time.perf_counter() - t0:.1f}s: {out.materialized} assets materialized "
          f"(re-execution of {run.run_id}; the steps that had succeeded were not re-run)")
    if out.report_path:
        print(f"report: {out.report_path}")
    return 0


def cmd_resume(args) -> int:
    instance = _instance()
    from admf_assets import staleness

    run = staleness.find_run(instance, args.run_id)
    if run is None:
        return _fail(f"no run {args.run_id!r} in the instance {instance.root_directory}")
    try:
        graph = staleness.workflow_of(run)
    except ValueError as exc:
        return _fail(str(exc))
    return _reexecute(run, instance, args, "INFO" if args.verbose else "WARNING", graph)


def cmd_validate(args) -> int:
    return _validate(args.rest)


def _validate(argv: list[str]) -> int:
    from admf_assets.workflow.validate import main as validate_main

    return validate_main(argv)


#: a run's console line below WARNING (``<time> - dagster - DEBUG - <job> - <run id> - ...``): kept
#: out of ``admf ui``'s terminal unless --verbose (the UI shows every event of every run)
_RUN_EVENT_LINE = re.compile(r"^\S+ \S+ [+-]\d{4} - dagster - (DEBUG|INFO) - \S+ - [0-9a-f]{8}-[0-9a-f]{4}-")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cmd_ui(args) -> int:
    """``dagster dev`` (webserver, daemon, code servers) in its own process group with a
    temporary workspace file; SIGINT or SIGTERM to ``admf`` stops the whole group (gracefully,
    then by force after ``--stop-timeout`` seconds) and removes the temporary files."""
    import shutil
    import signal
    import tempfile
    import threading

    from admf_assets import settings

    home = settings.ensure_dagster_home()
    root = Path(__file__).resolve().parent.parent
    tmp = Path(tempfile.mkdtemp(prefix="admf-ui-"))
    workspace = tmp / "workspace.yaml"
    workspace.write_text("load_from:\n  - python_module:\n      module_name: definitions\n"
                         f"      working_directory: {json.dumps(str(root))}\n      location_name: admf\n")
    cmd = [sys.executable, "-m", "dagster", "dev", "-h", args.host, "-p", str(args.port), "-w", str(workspace)]
    print(f"Dagster UI on http://{args.host}:{args.port}  (DAGSTER_HOME={home}; workspace {workspace})", flush=True)
    stopping = threading.Event()
    proc = None

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        stopping.set()
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # dagster dev's own graceful shutdown

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        proc = subprocess.Popen(cmd, cwd=str(root), env={**os.environ, "DAGSTER_HOME": str(home)},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                start_new_session=True)
        if stopping.is_set():  # the signal came while it was starting
            proc.send_signal(signal.SIGINT)
        pump = threading.Thread(target=_pump, args=(proc.stdout, args.verbose), daemon=True)
        pump.start()
        while proc.poll() is None:
            try:
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
        code = proc.returncode
        return 0 if stopping.is_set() else code
    finally:
        if proc is not None:
            _stop_group(proc, args.stop_timeout)
        for sig, handler in old.items():
            signal.signal(sig, handler)
        shutil.rmtree(tmp, ignore_errors=True)


def _pump(stream, verbose: bool) -> None:
    for line in stream:
        if verbose or not _RUN_EVENT_LINE.match(_ANSI.sub("", line)):
            sys.stderr.write(line)
            sys.stderr.flush()


def _stop_group(proc, timeout: float) -> None:
    """Wait until dagster dev's process group (webserver, daemon, code servers) is gone; ask
    what its leader left behind to stop, and kill what is left after ``timeout`` seconds."""
    import signal

    deadline = time.monotonic() + timeout
    asked = False
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break  # the whole group is gone
        if proc.poll() is not None and not asked:
            asked = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def cmd_worker(args) -> int:
    from admf_assets import distributed, instance, settings

    home = settings.ensure_dagster_home()
    if instance.storage_kind(instance.read_config(home)) == "sqlite":
        return _fail("a Celery worker needs the Dagster instance on PostgreSQL: set ADMF_POSTGRES_URL "
                     "(README: Instance on PostgreSQL)")
    argv = distributed.worker_argv(args.name, args.concurrency, "INFO" if args.verbose else "WARNING")
    print(f"Celery worker {args.name}: broker {instance.redact(os.environ.get(distributed.BROKER_ENV, distributed.DEFAULT_BROKER))}, "
          f"instance {instance.describe(home)}", flush=True)
    os.execv(argv[0], argv)  # the worker replaces this process (signals reach it directly)
    return 0


def cmd_optuna(args) -> int:
    """optuna-dashboard on a workflow's Optuna studies (the parameter searches' trials)."""
    import importlib.util
    import shutil

    from admf_assets import settings
    from admf_assets.engine.studies import describe_storage, journal_dir, open_storage, workflow_journals

    storage = args.storage or os.environ.get("ADMF_OPTUNA_STORAGE")
    if not storage:
        root = settings.storage_root()
        wf = args.workflow
        if not journal_dir(root, wf).is_dir():  # a workflow name or file: its id names the folder
            from admf_assets.workflow.errors import WorkflowError
            from admf_assets.workflow.loader import load_workflow

            try:
                wf = load_workflow(args.workflow).graph.workflow_id
            except WorkflowError as exc:
                print(str(exc), file=sys.stderr)
                return 2
        files = workflow_journals(root, wf, args.phase)
        if not files:
            what = f"phase '{args.phase}' of workflow '{wf}'" if args.phase else f"workflow '{wf}'"
            return _fail(f"no Optuna studies recorded for {what} yet ({journal_dir(root, wf)}); run it first")
        if len(files) > 1:
            print("journal files (most recent first; the first is opened, pass --storage for another):")
            for f in files:
                print(f"  {f}")
        storage = str(files[0])
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        summaries = optuna.get_all_study_summaries(open_storage(storage), include_best_trial=False)
    except Exception as exc:  # a bad URL, an unreadable file: one line
        return _fail(f"cannot open Optuna storage {describe_storage(storage)}: {exc}")
    print(f"Optuna storage: {describe_storage(storage)}")
    for st in summaries:
        print(f"  {st.study_name}: {st.n_trials} trials")
    exe = Path(sys.executable).with_name("optuna-dashboard")
    dashboard = str(exe) if exe.exists() else shutil.which("optuna-dashboard")
    cmd = [dashboard or "optuna-dashboard", storage, "--host", args.host, "--port", str(args.port)]
    if args.print_command:
        print(" ".join(cmd))
        return 0
    if dashboard is None or importlib.util.find_spec("optuna_dashboard") is None:
        return _fail("optuna-dashboard is not installed: pip install -e '.[dashboard]'")
    print(f"optuna-dashboard on http://{args.host}:{args.port}")
    return subprocess.call(cmd)


def cmd_db(args) -> int:
    """Views refreshed, then the query (if any) on a read-only, sandboxed connection
    (admf_assets/query.py); every refusal or SQL error is one line ``admf db: ...``, status 2."""
    from admf_assets import settings
    from admf_assets.query import QueryError, connect_read_only, run_query
    from resources.storage import TableStore

    store = TableStore(settings.storage_root())
    try:
        names = store.rebuild_views()
    except RuntimeError as exc:
        if not args.sql:
            return _fail(str(exc))
        names = None  # another process holds the file: query the views as they are
        print(f"admf db: note: views not refreshed ({exc})", file=sys.stderr)
    if not args.sql:
        print(f"DuckDB catalog: {store.duckdb_path or f'in memory, over {store.root}'}")
        for n in names:
            print(f"  {n}")
        return 0
    try:
        # a local root: the catalog file in DuckDB's sandbox; a URL root: an in-memory catalog over
        # the fsspec filesystem (queries only, as everywhere: run_query refuses any other statement)
        con = connect_read_only(store.duckdb_path, store.tables) if store.local else store.connect()
        try:
            results = run_query(con, args.sql)
        finally:
            con.close()
    except QueryError as exc:
        print(f"admf db: {exc}", file=sys.stderr)
        return 2
    for text in results:
        print(text)
    return 0


def cmd_info(args) -> int:
    from admf_assets import settings

    from admf_assets import instance

    home = settings.ensure_dagster_home()
    print(f"DAGSTER_HOME: {home}")
    print(f"instance:     {instance.describe(home)}")
    print(f"storage:      {settings.storage_root()}")
    print(f"DuckDB:       {settings.duckdb_path()}")
    print(f"reports:      {settings.reports_dir()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="admf", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("backfill", help="ingest + clean market data for a date range as ONE run")
    b.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    b.add_argument("--end", required=True, help="last date, YYYY-MM-DD (inclusive)")
    b.add_argument("--executor", choices=["in_process", "multiprocess", "celery"], default=None)
    b.add_argument("-v", "--verbose", action="store_true", help="show Dagster's event log")
    b.set_defaults(func=cmd_backfill)

    r = sub.add_parser("run", help="run a workflow end to end (backfilling the market data it needs)")
    r.add_argument("workflow", help="a workflow name (workflows/<name>.yaml) or a path to a YAML file")
    r.add_argument("--executor", choices=["in_process", "multiprocess", "celery"], default=None,
                   help="override the workflow's executor")
    r.add_argument("--no-backfill", action="store_true", help="fail instead of backfilling missing market data")
    r.add_argument("--force", action="store_true", help="recompute every phase, stale or not")
    r.add_argument("--phase", action="append", metavar="P", help="run only phase P from stored upstreams (repeatable)")
    r.add_argument("--from", dest="from_phase", action="append", metavar="P", help="run phase P and its downstream")
    r.add_argument("--resume", action="store_true",
                   help="re-execute the last failed or killed run of the workflow from failure")
    r.add_argument("-v", "--verbose", action="store_true", help="show Dagster's event log")
    r.set_defaults(func=cmd_run)

    rs = sub.add_parser("resume", help="re-execute a failed or killed run from failure (a Dagster re-execution)")
    rs.add_argument("run_id", help="the run id (or its first characters)")
    rs.add_argument("--executor", choices=["in_process", "multiprocess"], default=None)
    rs.add_argument("-v", "--verbose", action="store_true", help="show Dagster's event log")
    rs.set_defaults(func=cmd_resume)

    v = sub.add_parser("validate", help="check workflow YAML files without running them", add_help=False)
    v.add_argument("rest", nargs=argparse.REMAINDER)
    v.set_defaults(func=cmd_validate)

    u = sub.add_parser("ui", help="start the Dagster UI (webserver + daemon) on the admf instance")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", type=int, default=3000)
    u.add_argument("--stop-timeout", type=float, default=30.0,
                   help="seconds a graceful stop may take before the processes are killed")
    u.add_argument("-v", "--verbose", action="store_true", help="show every run's Dagster event log too")
    u.set_defaults(func=cmd_ui)

    w = sub.add_parser("worker", help="run a Celery worker for --executor celery (ADMF_CELERY_BROKER)")
    w.add_argument("--name", default=f"admf-{os.getpid()}", help="worker name (the host is appended: NAME@host)")
    w.add_argument("--concurrency", type=int, default=1, help="steps this worker runs at once (processes)")
    w.add_argument("-v", "--verbose", action="store_true", help="Celery's INFO log")
    w.set_defaults(func=cmd_worker)


    o = sub.add_parser("optuna", help="open optuna-dashboard on a workflow's Optuna studies (its searches' trials)")
    o.add_argument("workflow", help="a workflow name, id or YAML file")
    o.add_argument("--phase", help="a search phase of the workflow (default: the most recently run)")
    o.add_argument("--storage", help="an Optuna storage URL or journal file (default: the workflow's latest journal "
                                     "under the storage root, or $ADMF_OPTUNA_STORAGE)")
    o.add_argument("--host", default="127.0.0.1")
    o.add_argument("--port", type=int, default=8080)
    o.add_argument("--print", dest="print_command", action="store_true",
                   help="list the studies and print the dashboard command instead of starting it")
    o.set_defaults(func=cmd_optuna)

    d = sub.add_parser("db", help="(re)create the DuckDB views over every stored table; optional query")
    d.add_argument("sql", nargs="?", help="a query to run read-only (queries only; no file outside the stored "
                   "tables is readable), e.g. 'SELECT count(*) FROM market.clean_bars'")
    d.set_defaults(func=cmd_db)

    i = sub.add_parser("info", help="print where the instance, tables, DuckDB file and reports are")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    from admf_assets.settings import SettingError

    program = argv is None  # the `admf` program, not a caller in Python
    if program:
        _write_own_bytecode()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["validate"]:  # its own parser: `admf validate -v FILE` as well as `FILE -v`
        func = partial(_validate, argv[1:])
    else:
        args = build_parser().parse_args(argv)
        func = partial(args.func, args)
    try:
        code = func()
    except SettingError as exc:  # a bad ADMF_* environment variable
        code = _fail(str(exc))
    except KeyboardInterrupt:
        code = 130
    if program:
        _exit_now(code)
    return code


def _write_own_bytecode() -> None:
    """Cache the project's compiled modules even when ``PYTHONDONTWRITEBYTECODE`` is set.

    pip compiles every installed package at install time whatever that variable says, but an
    editable install (README's ``pip install -e .``) leaves the project's ~90 modules as source:
    with the variable set (as in many container images) every ``admf`` command compiled them
    again, 0.5 s of a 3.4 s up-to-date ``admf run`` here.  So the ``admf`` process writes bytecode
    (``__pycache__``, git-ignored, beside the sources) as an installed package would have it;
    ``ADMF_NO_BYTECODE=1`` keeps the variable's meaning.  Nothing else changes: Python still
    recompiles a module whose source changed, and a read-only tree is skipped silently.
    """
    if not sys.dont_write_bytecode or os.environ.get("ADMF_NO_BYTECODE", "").strip():
        return
    sys.dont_write_bytecode = False
    import compileall

    for name, module in list(sys.modules.items()):  # imported before this ran: this module and its own
        if name.partition(".")[0] == __package__ and getattr(module, "__file__", None):
            compileall.compile_file(module.__file__, quiet=2)  # skips an up-to-date one


def _exit_now(code: int) -> None:
    """Exit without tearing the interpreter down: the work is done and written, and freeing
    Dagster's module graph object by object costs ~0.6 s of CPU on every command."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
