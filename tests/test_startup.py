"""What every `admf` command pays before it does anything: the modules it imports, the bytecode
it reuses, the market-data digests it remembers (an unchanged `admf run` is mostly start-up)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from admf_assets import versions
from admf_assets.versions import FileDigests, files_version

ROOT = Path(__file__).resolve().parents[1]


def _aged(path: Path, seconds: float = 60.0) -> None:
    """Give ``path`` an mtime ``seconds`` in the past (as a file written earlier would have)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def _replace(path: Path, data: bytes) -> None:
    """Rewrite as the store does: a new file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@pytest.fixture
def files(tmp_path):
    out = []
    for i in range(4):
        p = tmp_path / "parts" / f"2024-01-0{i + 1}.parquet"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(f"bars of day {i}".encode() * 50)
        _aged(p)
        out.append((p.stem, p))
    return out


@pytest.fixture
def reads(monkeypatch):
    """The files whose bytes were read to hash them."""
    seen: list[str] = []
    real = versions._file_digest

    def counting(path):
        seen.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(versions, "_file_digest", counting)
    return seen


def test_remembered_digests_give_the_same_version_and_skip_unchanged_files(tmp_path, files, reads):
    plain = files_version(files)
    cache = tmp_path / "cache" / "digests.json"
    assert files_version(files, FileDigests(cache)) == plain
    assert len(reads) == 2 * len(files)  # the plain pass and the first cached one
    reads.clear()
    assert files_version(files, FileDigests(cache)) == plain
    assert reads == []  # a new process: every file stat'ed, none read
    entry = json.loads(cache.read_text())[os.fspath(files[0][1])]
    assert entry[3] == hashlib.sha256(files[0][1].read_bytes()).hexdigest()


def test_a_rewritten_or_deleted_file_is_hashed_again(tmp_path, files, reads):
    cache = tmp_path / "digests.json"
    before = files_version(files, FileDigests(cache))
    _replace(files[1][1], b"re-ingested bars")
    _aged(files[1][1])
    reads.clear()
    after = files_version(files, FileDigests(cache))
    assert reads == [os.fspath(files[1][1])]
    assert after != before and after == files_version(files)
    files[2][1].unlink()
    version, missing = files_version(files, FileDigests(cache))
    assert missing == 1 and (version, missing) == files_version(files)


def test_a_file_written_just_now_is_not_remembered(tmp_path, files, reads):
    """A write in the same clock tick as the read could keep size, mtime and inode: a digest
    is remembered only once the file has settled."""
    cache = tmp_path / "digests.json"
    _replace(files[0][1], b"fresh")  # mtime: now
    files_version(files, FileDigests(cache))
    assert os.fspath(files[0][1]) not in json.loads(cache.read_text())
    reads.clear()
    files_version(files, FileDigests(cache))
    assert reads == [os.fspath(files[0][1])]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"x": "y"}'])
def test_a_broken_cache_file_is_ignored_and_rewritten(tmp_path, files, content):
    cache = tmp_path / "digests.json"
    cache.write_text(content)
    assert files_version(files, FileDigests(cache)) == files_version(files)
    assert len(json.loads(cache.read_text())) >= len(files)


@pytest.mark.parametrize("forge", [lambda st: [st.st_size + 1, st.st_mtime_ns, st.st_ino, "00" * 32],
                                   lambda st: [st.st_size, st.st_mtime_ns, st.st_ino],
                                   lambda st: [st.st_size, st.st_mtime_ns, st.st_ino, "not hex"]])
def test_a_forged_entry_for_another_file_is_not_trusted(tmp_path, files, forge):
    """An entry whose signature is not the file's (another size, mtime or inode), or that is
    not a signature and a digest, is ignored."""
    cache = tmp_path / "digests.json"
    cache.write_text(json.dumps({os.fspath(files[0][1]): forge(files[0][1].stat())}))
    assert files_version(files, FileDigests(cache)) == files_version(files)


def _python(code: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env}, cwd=cwd)


def test_reading_and_planning_a_workflow_imports_no_optimizer_or_template_engine(tmp_path):
    """Optuna (and its storages' redis client) and Jinja2 load where a search runs or a report
    renders; `admf validate` and an up-to-date `admf run` never pay for them."""
    code = ("import sys\n"
            "from admf_assets.workflow.loader import load_workflow\n"
            "from admf_assets.workflow.compiler import compile_graph\n"
            "graph = load_workflow('basic_research').graph\n"
            "compile_graph(graph)\n"
            "print(sorted(m for m in ('optuna', 'redis', 'jinja2', 'scipy', 'matplotlib', 'statsmodels')"
            " if m in sys.modules))\n")
    out = _python(code, DAGSTER_HOME=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _copy_of_the_project(tmp_path: Path) -> Path:
    dest = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("admf_assets", "resources", "workflows"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest


@pytest.mark.parametrize("opt_out", [False, True])
def test_admf_caches_its_own_bytecode_unless_told_not_to(tmp_path, opt_out):
    """With PYTHONDONTWRITEBYTECODE set (as in many container images) an editable install
    compiled the project's modules on every command; `admf` writes them as pip would have for
    an installed package, and ADMF_NO_BYTECODE=1 keeps the variable's meaning."""
    project = _copy_of_the_project(tmp_path)
    code = ("import sys\n"
            f"sys.path.insert(0, {str(project)!r})\n"
            "sys.argv = ['admf', 'validate', 'basic_research']\n"
            "from admf_assets.cli import main\n"
            "main()\n")
    env = {"PYTHONDONTWRITEBYTECODE": "1", "DAGSTER_HOME": str(tmp_path / "home"),
           "ADMF_NO_BYTECODE": "1" if opt_out else ""}
    out = _python(code, cwd=project, **env)  # its ./workflows
    assert out.returncode == 0, out.stdout + out.stderr
    assert "basic_research" in out.stdout
    cached = sorted(p.name.split(".")[0] for p in project.rglob("*.pyc"))
    if opt_out:
        assert cached == []
    else:  # the modules imported before the command ran as well as those after
        assert {"__init__", "cli", "settings", "loader", "kind", "backtest"} <= set(cached)
