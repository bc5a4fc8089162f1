"""`admf ui`: a signal to `admf` stops dagster dev, the webserver, the daemon and the code servers,
and removes the temporary files; run events stay out of its terminal."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from admf_assets import cli

REPO = Path(__file__).resolve().parents[1]


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, process group) of a live process, None when it is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2])


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_process_and_removes_the_temporary_files(tmp_path, sig):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADMF_", "DAGSTER_"))}
    env["DAGSTER_HOME"] = str(tmp_path / "home")
    log = (tmp_path / "ui.log").open("w")
    admf = subprocess.Popen([sys.executable, "-m", "admf_assets.cli", "ui", "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        banner = admf.stdout.readline()
        workspace = Path(re.search(r"workspace (\S+?)\)", banner).group(1))
        assert workspace.is_file()
        deadline = time.monotonic() + 240
        while True:  # until the webserver answers
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "ui.log").read_text()
            assert admf.poll() is None, (tmp_path / "ui.log").read_text()
            time.sleep(1)
        dev = next(p for p in _pids() if (_stat(p) or (0, 0))[0] == admf.pid)
        group = [p for p in _pids() if (_stat(p) or (0, 0))[1] == dev]
        cmdlines = [Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode() for p in group]
        assert any("dagster_webserver" in c for c in cmdlines) and any("_daemon" in c for c in cmdlines)
        assert any("code-server" in c or "api grpc" in c for c in cmdlines)
        sockets = [Path(m) for c in cmdlines for m in re.findall(r"--socket (\S+)", c)]

        admf.send_signal(sig)
        assert admf.wait(timeout=120) == 0
        time.sleep(0.5)
        assert [p for p in group if _stat(p) is not None] == [], "processes left running"
        assert not workspace.parent.exists()
        assert [s for s in sockets if s.exists()] == []
    finally:
        if admf.poll() is None:
            admf.kill()
        log.close()


def test_run_events_stay_out_of_the_ui_terminal(capsys):
    lines = [
        "\x1b[32m2026-12-01 10:15:18 +0000\x1b[0m - dagster - \x1b[34mINFO\x1b[0m - Launching Dagster services...\n",
        "2026-12-01 10:16:00 +0000 - dagster - DEBUG - basic_research - 49b88764-725f-4359-a6a6-ab877ccfa5fb - "
        "basic_research__data - STEP_START - Started execution of step\n",
        "2026-12-01 10:16:01 +0000 - dagster - INFO - basic_research - 49b88764-725f-4359-a6a6-ab877ccfa5fb - "
        "basic_research__data - LOADED_INPUT - Loaded input\n",
        "2026-12-01 10:16:02 +0000 - dagster - ERROR - basic_research - 49b88764-725f-4359-a6a6-ab877ccfa5fb - "
        "basic_research__data - STEP_FAILURE - the data phase failed\n",
    ]
    cli._pump(iter(lines), verbose=False)
    err = capsys.readouterr().err
    assert "Launching Dagster services" in err and "STEP_FAILURE" in err
    assert "STEP_START" not in err and "LOADED_INPUT" not in err
    cli._pump(iter(lines), verbose=True)
    assert capsys.readouterr().err == "".join(lines)
