"""Reading a workflow file: YAML, templates, validation stages, graph.

Stages (each reports all of its problems at once, then stops):

1. YAML syntax (``file:line:col: message``), duplicate keys, top level is a mapping;
2. ``template:`` merged in (templates.py);
3. phase list shape; the ADMF-PC ``workflow.parallel_phases`` / ``convergence_phase``
   layout is flattened into ``phases`` (``branch.phase.output`` references lose the
   branch prefix); ``workflow.error_handling.phase_error_policies`` are applied to the
   phases that exist;
4. phase types: unknown types (with a suggestion), and types that are not available
   yet for enabled phases -- checked before anything else about the phases, so a file
   that uses a future phase type fails with exactly that message;
5. the pydantic models of every section and phase (spec.py);
6. per-type configs, outputs, references, implicit phases, cycles (graph.py).

YAML is read with ``yaml.safe_load`` (``yaml.compose`` first, to find duplicate keys);
nothing from the file is ever evaluated.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from admf_assets import settings
from admf_assets.phases import KINDS
from admf_assets.plugins import PluginError, load_plugins
from admf_assets.settings import display_path

from .errors import ErrorCollector, WorkflowError, pydantic_errors, suggest
from . import ids
from .graph import build_graph
from .guards import MAX_DEPTH, MAX_NAME_LENGTH, check_document
from .spec import WorkflowSpec, slugify
from .templates import apply_template

__all__ = [
    "resolve_workflow_path",
    "list_workflows",
    "display_path",
    "parse_yaml",
    "read_yaml",
    "load_workflow",
    "load_workflow_text",
    "load_workflow_dict",
]

_SUFFIXES = (".yaml", ".yml")


# ----------------------------------------------------------------------- paths
def list_workflows(workflows_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    folder = Path(workflows_dir) if workflows_dir is not None else settings.workflows_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in _SUFFIXES and p.is_file()}


def resolve_workflow_path(path_or_name: str | os.PathLike, workflows_dir: str | os.PathLike | None = None) -> Path:
    """A path to a YAML file, or a workflow name -> ``<workflows dir>/<name>.yaml``."""
    given = Path(path_or_name)
    if given.is_file():
        return given
    text = str(path_or_name)
    is_name = given.suffix not in _SUFFIXES and os.sep not in text and "/" not in text
    if is_name:
        folder = Path(workflows_dir) if workflows_dir is not None else settings.workflows_dir()
        for suffix in _SUFFIXES:
            candidate = folder / f"{text}{suffix}"
            if candidate.is_file():
                return candidate
        known = list_workflows(folder)
        raise WorkflowError(
            f"unknown workflow '{text}'{suggest(text, known)}; "
            f"workflows in {folder}: {', '.join(sorted(known)) or '(none)'}",
            file=str(folder / f"{text}.yaml"),
        )
    raise WorkflowError("no such file", file=text)


# ------------------------------------------------------------------------ YAML
def _check_duplicate_keys(root: Any, file: str) -> None:
    """Duplicate mapping keys anywhere (iterative: any depth, each aliased node once)."""
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    k = key_node.value
                    if k in keys:
                        mark = key_node.start_mark
                        raise WorkflowError(
                            f"duplicate key '{k}' (first at line {keys[k].line + 1})",
                            file=file, line=mark.line + 1, column=mark.column + 1,
                        )
                    keys[k] = key_node.start_mark
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def parse_yaml(text: str, file: str) -> Any:
    """``yaml.safe_load`` with errors as ``file:line:col: message``."""
    loader = yaml.SafeLoader(text)
    try:  # one pass: the node tree is checked for duplicate keys, then constructed (safe_load's steps)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_duplicate_keys(node, file)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{problem} ({exc.context})"
        return_line = mark.line + 1 if mark is not None else None
        return_col = mark.column + 1 if mark is not None else None
        raise WorkflowError(f"YAML syntax error: {problem}", file=file,
                            line=return_line, column=return_col) from None
    except yaml.YAMLError as exc:
        raise WorkflowError(f"YAML error: {exc}", file=file) from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise WorkflowError(f"nested too deeply to read (a workflow may nest at most {MAX_DEPTH} levels; "
                            "it needs about 8)", file=file) from None
    except (ValueError, TypeError, OverflowError) as exc:
        # e.g. an impossible date such as 2020-13-01 (PyYAML raises while constructing it)
        bad = _bad_scalar(yaml.compose(text, Loader=yaml.SafeLoader))
        if bad is not None:
            mark = bad.start_mark
            raise WorkflowError(f"invalid value '{bad.value}': {exc}", file=file,
                                line=mark.line + 1, column=mark.column + 1) from None
        raise WorkflowError(f"invalid value: {exc}", file=file) from None
    finally:
        loader.dispose()


def _bad_scalar(node: Any) -> Any:
    """The first scalar node that PyYAML's safe constructor cannot build, or None."""
    if isinstance(node, yaml.ScalarNode):
        try:
            yaml.SafeLoader("").construct_object(node, deep=True)
        except Exception:  # noqa: BLE001 - any construction failure is what we look for
            return node
        return None
    if isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    else:
        return None
    for child in children:
        hit = _bad_scalar(child)
        if hit is not None:
            return hit
    return None


def read_yaml(path: Path, display: str | None = None) -> Any:
    file = display or display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowError("no such file", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"cannot read file: {exc}", file=file) from None
    return parse_yaml(text, file)


# ------------------------------------------------------------------- loading
def load_workflow(
    path_or_name: str | os.PathLike,
    workflows_dir: str | os.PathLike | None = None,
    *,
    templates_dir: str | os.PathLike | None = None,
) -> WorkflowSpec:
    """Load and fully validate a workflow file (a path, or a name in the workflows dir).

    Raises :class:`~.errors.WorkflowError` (one line per problem in ``str()``).
    """
    path = resolve_workflow_path(path_or_name, workflows_dir)
    given = Path(path_or_name)
    file = str(path_or_name) if given.is_file() else display_path(path)
    doc = read_yaml(path, file)
    spec = load_workflow_dict(doc, source=file, default_id=slugify(path.stem),
                              templates_dir=templates_dir, workflows_dir=workflows_dir, path=path.resolve())
    # one id, one file: a copy elsewhere must not replace this id's tables and history
    folder = Path(workflows_dir) if workflows_dir is not None else settings.workflows_dir()
    ids.check_against_folder(spec.workflow_id, path, folder, file, slugify)
    ids.check_registered(spec.workflow_id, path, settings.storage_root(), file)
    return spec


def load_workflow_text(
    text: str,
    source: str = "<string>",
    *,
    workflow_id: str | None = None,
    templates_dir: str | os.PathLike | None = None,
    workflows_dir: str | os.PathLike | None = None,
) -> WorkflowSpec:
    """Like :func:`load_workflow` for YAML text; ``source`` names it in messages."""
    doc = parse_yaml(text, source)
    default_id = workflow_id or (slugify(Path(source).stem) if source != "<string>" else None)
    return load_workflow_dict(doc, source=source, default_id=default_id,
                              templates_dir=templates_dir, workflows_dir=workflows_dir)


def load_workflow_dict(
    doc: Any,
    *,
    source: str | None = None,
    default_id: str | None = None,
    templates_dir: str | os.PathLike | None = None,
    workflows_dir: str | os.PathLike | None = None,
    path: Path | None = None,
) -> WorkflowSpec:
    """Validate an already parsed document (see the module docstring for the stages);
    ``path`` is the file it came from (absolute), when there is one."""
    try:
        load_plugins()
    except PluginError as exc:
        raise WorkflowError(str(exc), file=source, field="ADMF_PLUGINS") from None
    file = source
    if doc is None:
        raise WorkflowError("the file is empty", file=file)
    if not isinstance(doc, dict):
        raise WorkflowError(f"expected a mapping at the top level (got {type(doc).__name__})", file=file)
    check_document(doc, file)  # depth, alias expansion, cycles, NUL bytes: before anything walks it
    doc = copy.deepcopy(doc)

    # 2. template
    templated = "template" in doc
    doc = apply_template(doc, file=file, read_yaml=read_yaml,
                         templates_dir=templates_dir, workflows_dir=workflows_dir)
    if templated:
        check_document(doc, file)  # the template's own text too

    # 3. phase list shape, ADMF-PC layouts
    warnings: list[str] = []
    errs = ErrorCollector(file)
    _resource_warnings(doc, file, warnings)
    _flatten_parallel(doc, errs)
    errs.raise_if_any()
    raw_phases = doc.get("phases")
    if raw_phases is None:
        errs.add("required: a list of phases", field="phases")
    elif not isinstance(raw_phases, list):
        errs.add(f"expected a list of phases (got {type(raw_phases).__name__})", field="phases")
    elif not raw_phases:
        errs.add("a workflow needs at least one phase", field="phases")
    else:
        for i, p in enumerate(raw_phases):
            if not isinstance(p, dict):
                errs.add(f"expected a mapping with name and type (got {type(p).__name__})", field=f"phases[{i}]")
            elif not isinstance(p.get("name"), str) or not p.get("name"):
                errs.add("required: the phase name" if p.get("name") is None
                         else f"expected a string (got {p.get('name')!r})", field=f"phases[{i}].name")
    errs.raise_if_any()
    _apply_error_policies(doc, file, warnings)
    _superseded_warnings(doc, file, warnings)

    # 4. phase types
    for p in doc["phases"]:
        name, ptype = p["name"], p.get("type")
        if ptype is None:
            errs.add("required: the phase type", phase=name, field="type")
            continue
        if not isinstance(ptype, str):
            errs.add(f"expected a string (got {ptype!r})", phase=name, field="type")
            continue
        found = KINDS.lookup(ptype)
        if found is None:
            errs.add(f"unknown phase type '{ptype}'{suggest(ptype.strip().lower(), KINDS.spellings())}; "
                     f"available: {', '.join(k.name for k in KINDS.available())}",
                     phase=name, field="type")
        elif not found.available and p.get("enabled", True) is not False:
            errs.add(found.unavailable(ptype), phase=name, field="type")
    errs.raise_if_any()

    # 5. models
    names_by_index = {i: p["name"] for i, p in enumerate(doc["phases"])}

    def phase_of(loc: tuple) -> tuple[str, tuple] | None:
        if len(loc) >= 2 and loc[0] == "phases" and isinstance(loc[1], int) and loc[1] in names_by_index:
            return names_by_index[loc[1]], tuple(loc[2:])
        return None

    try:
        spec = WorkflowSpec.model_validate(doc)
    except ValidationError as exc:
        errs.extend(pydantic_errors(exc, model=WorkflowSpec, file=file, phase_of=phase_of))
        errs.raise_if_any()
        raise  # pragma: no cover - pydantic always reports something

    spec._source = file
    spec._path = path
    spec._workflow_id = spec.workflow.id or default_id or slugify(spec.workflow.name or "workflow")
    if len(spec._workflow_id) > MAX_NAME_LENGTH:
        raise WorkflowError(f"the workflow id '{spec._workflow_id[:20]}...' (from the file name) is "
                            f"{len(spec._workflow_id)} characters long; at most {MAX_NAME_LENGTH}: set a short "
                            "workflow.id", file=file, field="workflow.id")

    # 6. graph
    spec._graph = build_graph(spec, file, KINDS)
    spec._warnings = warnings + list(spec._graph.warnings)
    return spec


def _flatten_parallel(doc: dict[str, Any], errs: ErrorCollector) -> None:
    wf = doc.get("workflow")
    if not isinstance(wf, dict) or not ({"parallel_phases", "convergence_phase"} & set(wf)):
        return
    wf = dict(wf)
    branches = wf.pop("parallel_phases", None) or {}
    convergence = wf.pop("convergence_phase", None)
    doc["workflow"] = wf
    phases = doc.get("phases")
    if phases is None:
        phases = []
    if not isinstance(phases, list):
        return
    phases = list(phases)
    if not isinstance(branches, dict):
        errs.add("expected a mapping of branch name -> {phases: [...]}", field="workflow.parallel_phases")
        return
    branch_names = set()
    for branch, body in branches.items():
        branch_names.add(str(branch))
        if not isinstance(body, dict) or not isinstance(body.get("phases"), list):
            errs.add("expected {phases: [...]}", field=f"workflow.parallel_phases.{branch}")
            continue
        extra = sorted(set(body) - {"phases"})
        if extra:
            errs.add(f"unknown key '{extra[0]}'; allowed: phases", field=f"workflow.parallel_phases.{branch}")
        phases.extend(body["phases"])
    if convergence is not None:
        phases.extend(convergence if isinstance(convergence, list) else [convergence])
    phase_names = {p.get("name") for p in phases if isinstance(p, dict)}

    def strip(ref: Any) -> Any:
        if not isinstance(ref, str):
            return ref
        head, _, rest = ref.partition(".")
        if rest and head in branch_names and head not in phase_names:
            return rest
        return ref

    for p in phases:
        if isinstance(p, dict):
            for key in ("inputs", "depends_on"):
                if isinstance(p.get(key), list):
                    p[key] = [strip(r) for r in p[key]]
                elif isinstance(p.get(key), str):
                    p[key] = strip(p[key])
    doc["phases"] = phases


def _warn(warnings: list[str], file: str | None, field: str, message: str) -> None:
    warnings.append(WorkflowError(message, file=file, field=field).format())


def _apply_error_policies(doc: dict[str, Any], file: str | None, warnings: list[str]) -> None:
    """ADMF-PC ``workflow.error_handling.phase_error_policies`` -> per-phase keys
    (``on_failure``, ``max_retries`` -> ``retries``, ``critical``); keys the phase sets itself win."""
    wf = doc.get("workflow")
    eh = wf.get("error_handling") if isinstance(wf, dict) else None
    if not isinstance(eh, dict):
        return
    by_name = {p["name"]: p for p in doc["phases"]}
    policies = eh.get("phase_error_policies") or {}
    base = "workflow.error_handling"
    if isinstance(policies, dict):
        for pname, policy in policies.items():
            fld = f"{base}.phase_error_policies.{pname}"
            target = by_name.get(pname)
            if target is None:
                _warn(warnings, file, fld, f"no phase '{pname}' in this workflow{suggest(str(pname), by_name)}; ignored")
                continue
            if not isinstance(policy, dict):
                _warn(warnings, file, fld, "expected a mapping; ignored")
                continue
            for key, value in policy.items():
                if key in ("on_failure", "critical"):
                    target.setdefault(key, value)
                elif key == "max_retries":
                    target.setdefault("retries", value)
                else:
                    _warn(warnings, file, f"{fld}.{key}", "not supported; ignored")
    for key in eh:
        if key != "phase_error_policies":
            _warn(warnings, file, f"{base}.{key}",
                  "ignored: a failed run keeps what it materialized; re-execute from the failure in Dagster")


_SUPERSEDED = {
    ("workflow", "checkpointing"): "ignored: every phase output is a Dagster materialization; "
    "resume by re-executing from the failure",
    ("workflow", "monitoring"): "ignored: progress, logs and timings are in the Dagster UI",
    ("workflow", "resource_management"): "ignored: use infrastructure.phase_resources "
    "(max_workers, memory_limit_gb, pool) and infrastructure.max_concurrent",
    ("reporting", "workflow_analytics"): "ignored: run timings and lineage are in the Dagster UI",
}


_CONTAINERS = ("taken as max_workers (at most 256): the threads of the phase's evaluation on this machine (no "
               "containers are started; scale out with a Dagster executor)")

#: seed 000's execution keys (its production workflow): Dagster and the executor decide these
_RESOURCE_KEYS = {
    "parallel_phases": "ignored: independent phases run in parallel with execution: {executor: multiprocess}",
    "checkpoint_enabled": _SUPERSEDED[("workflow", "checkpointing")],
    "max_total_memory_gb": "ignored: memory is not capped; each phase's peak memory is in the report",
    "max_total_cores": "ignored: cap concurrent phases with infrastructure.max_concurrent",
}
_PHASE_RESOURCE_KEYS = {
    "memory_gb": "ignored: bound a phase's memory with infrastructure.phase_resources.<phase>.memory_limit_gb",
    "cpu_cores": "ignored: a phase's evaluation threads are infrastructure.phase_resources.<phase>.max_workers; "
                 "cap concurrent phases with infrastructure.max_concurrent",
}


def _resource_warnings(doc: dict[str, Any], file: str | None, warnings: list[str]) -> None:
    """Seed 000's ``parallel_phases: true``, ``checkpoint_enabled``, ``max_total_*`` (workflow) and
    ``memory_gb`` / ``cpu_cores`` (phase): one "ignored" warning each, then removed
    (``parallel_phases`` as a mapping of branches is a layout, see ``_flatten_parallel``)."""
    wf = doc.get("workflow")
    if isinstance(wf, dict):
        for key, message in _RESOURCE_KEYS.items():
            if key in wf and not (key == "parallel_phases" and isinstance(wf[key], dict)):
                _warn(warnings, file, f"workflow.{key}", message)
                wf = {k: v for k, v in wf.items() if k != key}
        doc["workflow"] = wf
    phases = doc.get("phases")
    for i, p in enumerate(phases if isinstance(phases, list) else []):
        if isinstance(p, dict) and set(_PHASE_RESOURCE_KEYS) & set(p):
            for key in [k for k in _PHASE_RESOURCE_KEYS if k in p]:
                warnings.append(WorkflowError(_PHASE_RESOURCE_KEYS[key], file=file, phase=p.get("name"),
                                              field=key).format())
            phases[i] = {k: v for k, v in p.items() if k not in _PHASE_RESOURCE_KEYS}


def _superseded_warnings(doc: dict[str, Any], file: str | None, warnings: list[str]) -> None:
    for p in doc.get("phases") or []:
        if isinstance(p, dict) and "container_count" in p:
            warnings.append(WorkflowError(_CONTAINERS, file=file, phase=p.get("name"), field="container_count").format())
    infra = doc.get("infrastructure")
    res = infra.get("phase_resources") if isinstance(infra, dict) else None
    for name, r in (res.items() if isinstance(res, dict) else ()):
        if isinstance(r, dict) and "container_count" in r:
            _warn(warnings, file, f"infrastructure.phase_resources.{name}.container_count", _CONTAINERS)
    for (section, key), message in _SUPERSEDED.items():
        sec = doc.get(section)
        if isinstance(sec, dict) and key in sec:
            _warn(warnings, file, f"{section}.{key}", message)
            doc[section] = {k: v for k, v in sec.items() if k != key}  # warned about: it goes
