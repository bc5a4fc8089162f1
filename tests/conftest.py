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


@pytest.fixture(scope="session")
def admf_env():
    """``admf_env(root, symbols=..., backfill=(first, last), **env)``: see :func:`admf_instance`."""
    return admf_instance
