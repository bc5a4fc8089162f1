"""Fixtures shared by the end-to-end workflow tests at the top of tests/."""

from __future__ import annotations

import pytest


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
