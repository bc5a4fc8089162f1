"""Limits a workflow document must respect before anything else reads it.

A YAML file can be small on disk and still be hostile to the code that walks it: thousands
of nested brackets (Python's recursion limit), aliases that expand exponentially (the
"billion laughs": ten lines of ``&a``/``*a`` become a billion values), an alias inside its own
anchor (a cycle), or NUL bytes that end up in file names and the HTML report.  These checks
run on the parsed document without recursion and visit each shared object once, so they
cost time linear in the size of the file, not of its expansion.
"""

from __future__ import annotations

from typing import Any

from .errors import WorkflowError, _dotted

__all__ = ["MAX_DEPTH", "MAX_VALUES", "MAX_NAME_LENGTH", "check_document"]

#: nesting levels a workflow may use (a real one needs about 8)
MAX_DEPTH = 50
#: values (scalars and containers) after YAML aliases are expanded
MAX_VALUES = 1_000_000
#: phase names and workflow ids name folders, files and DuckDB schemas
MAX_NAME_LENGTH = 64


def _children(obj: Any) -> list[tuple[Any, Any]]:
    """(key, child) pairs of a container; mapping keys are children too (they can hold NULs)."""
    if isinstance(obj, dict):
        out: list[tuple[Any, Any]] = []
        for k, v in obj.items():
            out.append((None, k))
            out.append((k, v))
        return out
    if isinstance(obj, (list, tuple)):
        return list(enumerate(obj))
    return []


def check_document(doc: Any, file: str | None) -> None:
    """Raise a one-line :class:`WorkflowError` when ``doc`` (a parsed YAML document) nests
    deeper than :data:`MAX_DEPTH`, expands to more than :data:`MAX_VALUES` values, contains
    itself, or holds a NUL byte in any key or string."""
    size: dict[int, int] = {}
    first_path: dict[int, list[Any]] = {}
    on_stack: set[int] = set()
    # iterative post-order walk over distinct objects (shared aliases are visited once)
    stack: list[tuple[Any, list[Any], bool]] = [(doc, [], False)]
    while stack:
        obj, path, done = stack.pop()  # only containers are pushed; strings are checked below
        oid = id(obj)
        kids = _children(obj)
        if not kids:
            continue
        if done:
            on_stack.discard(oid)
            values = [c for k, c in kids if not (k is None and isinstance(obj, dict))]  # keys are not values
            size[oid] = 1 + sum(size.get(id(c), 1) for c in values)
            if size[oid] > MAX_VALUES:
                raise WorkflowError(f"expands to more than {MAX_VALUES:,} values through YAML aliases (*name); "
                                    "write the values out or use fewer aliases",
                                    file=file, field=_dotted(first_path.get(oid, path)) or None)
            continue
        if oid in on_stack:
            raise WorkflowError("a YAML alias refers to the mapping or list that contains it (a cycle)",
                                file=file, field=_dotted(path) or None)
        if oid in size:
            continue  # a shared object (an alias) already measured
        on_stack.add(oid)
        first_path.setdefault(oid, path)
        stack.append((obj, path, True))
        if len(path) >= MAX_DEPTH:  # never walk further than the limit
            raise WorkflowError(f"nested deeper than {MAX_DEPTH} levels (a workflow needs about 8); flatten it",
                                file=file, field=_dotted(path[:6]) + " ...")
        for key, child in kids:
            if isinstance(child, str):  # scalars are checked here, not pushed: a long list stays cheap
                if "\x00" in child:
                    where = _dotted(path if key is None else [*path, key]) or None
                    raise WorkflowError("contains a NUL byte (\\0); remove it (names and text end up in file "
                                        "names and the report)", file=file, field=where)
            elif isinstance(child, (dict, list, tuple)):
                stack.append((child, path if key is None else [*path, key], False))
