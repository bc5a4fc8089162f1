"""Workflow templates.

A template is a workflow YAML file (same format, usually complete).  Built-in ones ship
in ``admf_assets/templates/*.yaml``; users register their own by dropping ``NAME.yaml``
into the templates folder (``templates_dir`` argument, else ``$ADMF_TEMPLATES_DIR``,
else ``<workflows dir>/templates``, i.e. ``workflows/templates/``; see ``settings.workflows_dir``).  A user template with
the same name as a built-in one replaces it.

A workflow says ``template: NAME`` and overrides:

* top-level sections are deep-merged (mappings merge key by key, anything else --
  lists included -- is replaced by the workflow's value);
* ``phases`` merge by ``name``: an entry whose name is in the template deep-merges into
  that phase (``{name: validation, enabled: false}`` disables it,
  ``{name: opt, config: {optimization: {method: random}}}`` changes one key),
  entries with new names are appended in order.

A template may itself use ``template:`` (cycles are an error).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable

from admf_assets import settings

from .errors import WorkflowError, suggest

__all__ = [
    "BUILTIN_TEMPLATES_DIR",
    "templates_search_path",
    "list_templates",
    "find_template",
    "deep_merge",
    "merge_phases",
    "apply_template",
]

BUILTIN_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
_SUFFIXES = (".yaml", ".yml")


def templates_search_path(
    templates_dir: str | os.PathLike | None = None,
    workflows_dir: str | os.PathLike | None = None,
) -> list[Path]:
    """Folders searched for templates, highest priority first (user folder, then built-ins)."""
    if templates_dir is not None:
        user = Path(templates_dir)
    elif os.environ.get("ADMF_TEMPLATES_DIR"):
        user = Path(os.environ["ADMF_TEMPLATES_DIR"])
    else:
        user = (Path(workflows_dir) if workflows_dir is not None else settings.workflows_dir()) / "templates"
    return [user, BUILTIN_TEMPLATES_DIR]


def list_templates(
    templates_dir: str | os.PathLike | None = None,
    workflows_dir: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Template name -> file; user templates shadow built-in ones of the same name."""
    found: dict[str, Path] = {}
    for folder in templates_search_path(templates_dir, workflows_dir):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix in _SUFFIXES and path.is_file():
                found.setdefault(path.stem, path)
    return found


def find_template(
    name: str,
    templates_dir: str | os.PathLike | None = None,
    workflows_dir: str | os.PathLike | None = None,
) -> Path | None:
    return list_templates(templates_dir, workflows_dir).get(name)


def deep_merge(base: Any, override: Any) -> Any:
    """Mappings merge recursively; any other override value replaces the base value."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def merge_phases(base: list[Any], override: list[Any]) -> list[Any]:
    """Merge phase lists by name (see module docstring)."""
    out = [copy.deepcopy(p) for p in base]
    index = {p.get("name"): i for i, p in enumerate(out) if isinstance(p, dict) and p.get("name") is not None}
    for entry in override:
        name = entry.get("name") if isinstance(entry, dict) else None
        if name is not None and name in index:
            merged = deep_merge(out[index[name]], {k: v for k, v in entry.items() if k != "name"})
            out[index[name]] = merged
        else:
            out.append(copy.deepcopy(entry))
            if name is not None:
                index[name] = len(out) - 1
    return out


def apply_template(
    doc: dict[str, Any],
    *,
    file: str | None,
    read_yaml: Callable[[Path], Any],
    templates_dir: str | os.PathLike | None = None,
    workflows_dir: str | os.PathLike | None = None,
    _seen: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Return ``doc`` merged over its template (recursively); ``doc`` without ``template`` is returned as is.

    The returned document keeps ``template: NAME`` for information.
    """
    name = doc.get("template")
    if name is None:
        return doc
    if not isinstance(name, str) or not name.strip():
        raise WorkflowError(f"expected a template name (got {name!r})", file=file, field="template")
    name = name.strip()
    available = list_templates(templates_dir, workflows_dir)
    if name in _seen:
        chain = " -> ".join((*_seen, name))
        raise WorkflowError(f"template cycle: {chain}", file=file, field="template")
    path = available.get(name)
    if path is None:
        where = ", ".join(str(p) for p in templates_search_path(templates_dir, workflows_dir))
        raise WorkflowError(
            f"unknown template '{name}'{suggest(name, available)}; available: "
            f"{', '.join(sorted(available)) or '(none)'} (searched {where})",
            file=file,
            field="template",
        )
    shown = settings.display_path(path)
    base = read_yaml(path)
    if not isinstance(base, dict):
        raise WorkflowError("a template must be a mapping", file=shown)
    base = apply_template(
        base, file=shown, read_yaml=read_yaml, templates_dir=templates_dir,
        workflows_dir=workflows_dir, _seen=(*_seen, name),
    )
    if isinstance(base.get("workflow"), dict):
        # the id names the asset keys: each workflow using the template gets its own
        base = {**base, "workflow": {k: v for k, v in base["workflow"].items() if k != "id"}}
    merged: dict[str, Any] = {}
    for key in list(base) + [k for k in doc if k not in base]:
        if key == "template":
            continue
        if key in base and key in doc:
            if key == "phases" and isinstance(base[key], list) and isinstance(doc[key], list):
                merged[key] = merge_phases(base[key], doc[key])
            else:
                merged[key] = deep_merge(base[key], doc[key])
        elif key in base:
            merged[key] = copy.deepcopy(base[key])
        else:
            merged[key] = copy.deepcopy(doc[key])
    merged["template"] = name
    return merged
