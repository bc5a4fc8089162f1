"""User extensions without editing the package: ``ADMF_PLUGINS=mypkg.strategies,other.mod``.

Each module is imported once, before any workflow is validated or compiled, so a strategy
registered there with ``@register_strategy("my_strategy", params=...)`` can be named in a
workflow YAML as ``type: my_strategy``.  The modules must be importable (installed, or on
``PYTHONPATH``).
"""

from __future__ import annotations

import importlib
import os

_loaded: set[str] = set()


class PluginError(ImportError):
    pass


def load_plugins(names: str | None = None) -> list[str]:
    spec = os.environ.get("ADMF_PLUGINS", "") if names is None else names
    mods = [m.strip() for m in spec.split(",") if m.strip()]
    for mod in mods:
        if mod in _loaded:
            continue
        try:
            importlib.import_module(mod)
        except Exception as exc:  # report any failure of user code as one line
            raise PluginError(f"cannot import '{mod}': {type(exc).__name__}: {exc}") from None
        _loaded.add(mod)
    return mods
