"""Shared fixtures: a throw-away admf instance for tests that run workflows for real."""

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
