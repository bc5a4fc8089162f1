"""Shared fixtures: a throw-away admf instance for tests that run workflows for real; a module's
own store of clean synthetic market partitions (the end-to-end workflow tests)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest


@contextmanager
def admf_instance(root: Path, symbols: str = "SPY", backfill: tuple[str, str] | None = None, **env: str):
    """A fresh ``DAGSTER_HOME`` under ``root`` (the dagster.yaml admf writes), the environment
    variables ``env`` set, market data of ``symbols`` backfilled for ``backfill`` (first, last
    date); yields ``(instance, monkeypatch)``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(root / "home"))
        mp.delenv("ADMF_STORAGE", raising=False)
        mp.delenv("ADMF_WORKFLOWS_DIR", raising=False)
        mp.delenv("ADMF_SEED", raising=False)
        mp.setenv("ADMF_SYMBOLS", symbols)
        for key, value in env.items():
            mp.setenv(key, value)
        from admf_assets import runner, settings

        settings.ensure_dagster_home()
        with dg.DagsterInstance.get() as instance:
            if backfill is not None:
                assert runner.backfill(*backfill, instance).success
            yield instance, mp


@contextmanager
def forget_plugins():
    """Kinds and plugin modules registered inside the block are forgotten after it (a test's
    plugin kind must not show up in other tests' lists of available kinds)."""
    import sys

    from admf_assets import plugins
    from admf_assets.phases import KINDS

    kinds, aliases, loaded = dict(KINDS._kinds), dict(KINDS._aliases), set(plugins._loaded)
    modules = set(sys.modules)
    try:
        yield
    finally:
        KINDS._kinds.clear()
        KINDS._kinds.update(kinds)
        KINDS._aliases.clear()
        KINDS._aliases.update(aliases)
        plugins._loaded.clear()
        plugins._loaded.update(loaded)
        for name in [m for m in sys.modules if m not in modules and m.startswith("admf_test_")]:
            del sys.modules[name]


@pytest.fixture(scope="session")
def admf_env():
    """``admf_env(root, symbols=..., backfill=(first, last), **env)``: see :func:`admf_instance`."""
    return admf_instance


@pytest.fixture(scope="session")
def plugin_kinds():
    """``with plugin_kinds(): ...``: see :func:`forget_plugins`."""
    return forget_plugins



@pytest.fixture(scope="module")
def market_home(request, tmp_path_factory):
    """A DAGSTER_HOME of the test module's own whose store holds the clean synthetic market
    partitions of the module's ``MARKET = (symbols, start, end)`` (what a backfill stores; the
    backfill itself is tested in tests/test_end_to_end.py and tests/market).  ADMF_SYMBOLS is
    the module's symbols."""
    symbols, start, end = request.module.MARKET
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    mp.setenv("DAGSTER_HOME", str(root / "home"))
    mp.delenv("ADMF_STORAGE", raising=False)
    mp.setenv("ADMF_SYMBOLS", ",".join(symbols))
    mp.delenv("ADMF_WORKFLOWS_DIR", raising=False)
    from admf_assets import settings
    from admf_assets.engine import marketdata, synthetic
    from admf_assets.market import partition_keys_between
    from resources.storage import TableStore

    settings.ensure_dagster_home()
    clean, _ = marketdata.clean_bars(synthetic.synthetic_bars(list(symbols), start, end))
    TableStore(settings.storage_root()).write_partitions(
        ["market", "clean_bars"], clean, clean["date"].dt.strftime("%Y-%m-%d").to_numpy(),
        partition_keys_between(start, end), views=False)
    yield root
    mp.undo()
