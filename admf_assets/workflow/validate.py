"""``admf validate FILE...``: check workflow files without Dagster.

    $ admf validate workflows/basic_research.yaml
    OK workflows/basic_research.yaml: 5 phases, 10 assets

A broken file prints one line per problem (``<file>: phase 'p': field 'f': message``)
and the command exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Iterable, Sequence

from .errors import WorkflowError
from .loader import load_workflow, load_workflow_dict, load_workflow_text, resolve_workflow_path
from .spec import WorkflowSpec

__all__ = ["load_workflow", "load_workflow_text", "load_workflow_dict", "resolve_workflow_path",
           "validate_paths", "main"]


def validate_paths(
    paths: Iterable[str | os.PathLike],
    workflows_dir: str | os.PathLike | None = None,
) -> list[str]:
    """One line per problem across all ``paths`` (empty when every file is valid)."""
    problems: list[str] = []
    for path in paths:
        try:
            load_workflow(path, workflows_dir)
        except WorkflowError as exc:
            problems.extend(exc.lines())
    return problems


def _summary(spec: WorkflowSpec) -> str:
    g = spec.graph
    return f"{len(g.order)} phases, {len(g.assets())} assets"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``admf validate``; returns the exit status (0 = all valid)."""
    parser = argparse.ArgumentParser(
        prog="admf validate",
        description="Validate workflow YAML files (paths, or names in the workflows directory).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="workflow file or workflow name")
    parser.add_argument("--workflows-dir", default=None,
                        help="where workflow names are looked up (default: $ADMF_WORKFLOWS_DIR or ./workflows)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the resolved phases and edges")
    args = parser.parse_args(list(argv) if argv is not None else None)

    status = 0
    for item in args.files:
        try:
            spec = load_workflow(item, args.workflows_dir)
        except WorkflowError as exc:
            status = 1
            for line in exc.lines():
                print(line, file=sys.stderr)
            continue
        print(f"OK {spec.source}: {_summary(spec)}")
        for warning in spec.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if args.verbose:
            print(spec.graph.describe())
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
