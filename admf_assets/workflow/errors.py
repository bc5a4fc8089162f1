"""Errors raised while loading and validating a workflow file.

Every problem is reported as ONE line that names where it is::

    <file>: phase '<phase>': field '<field>': <message>
    <file>:<line>:<column>: <message>            (YAML syntax errors)

Parts that do not apply are left out (a data-section error names the field only).
Several problems found in the same validation stage are raised together as a
:class:`WorkflowValidationError`, whose ``str()`` is one such line per problem.
No pydantic or YAML traceback is ever shown to the user: :func:`pydantic_errors`
translates a pydantic ``ValidationError`` into these lines.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Iterable, Sequence

from admf_assets.suggest import closest, suggest

__all__ = [
    "WorkflowError",
    "WorkflowValidationError",
    "ErrorCollector",
    "suggest",
    "closest",
    "pydantic_errors",
]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class WorkflowError(Exception):
    """One problem in a workflow file: ``file``, ``phase``, ``field`` and ``message``."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        phase: str | None = None,
        field: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = _one_line(message)
        self.file = str(file) if file is not None else None
        self.phase = phase
        self.field = field
        self.line = line
        self.column = column
        super().__init__(self.format())

    def format(self) -> str:
        parts: list[str] = []
        if self.file is not None:
            loc = self.file
            if self.line is not None:
                loc += f":{self.line}"
                if self.column is not None:
                    loc += f":{self.column}"
            parts.append(loc)
        if self.phase is not None:
            parts.append(f"phase '{self.phase}'")
        if self.field is not None:
            parts.append(f"field '{self.field}'")
        parts.append(self.message)
        return ": ".join(parts)

    def __str__(self) -> str:
        return self.format()

    @property
    def errors(self) -> list["WorkflowError"]:
        """The individual problems (just this one for a plain WorkflowError)."""
        return [self]

    def lines(self) -> list[str]:
        return [e.format() for e in self.errors]

    def with_file(self, file: str) -> "WorkflowError":
        if self.file is not None:
            return self
        return WorkflowError(
            self.message, file=file, phase=self.phase, field=self.field,
            line=self.line, column=self.column,
        )


#: problems shown per file; the rest are counted in one more line
MAX_LINES = 5


class WorkflowValidationError(WorkflowError):
    """Several problems at once; ``str()`` is one line per problem (at most :data:`MAX_LINES`,
    then one line counting the others: a file broken in a thousand places needs its first
    mistakes fixed, not a thousand lines)."""

    def __init__(self, errors: Sequence[WorkflowError]) -> None:
        if not errors:
            raise ValueError("WorkflowValidationError needs at least one error")
        self._errors = list(errors)
        first = self._errors[0]
        super().__init__(
            first.message, file=first.file, phase=first.phase, field=first.field,
            line=first.line, column=first.column,
        )

    @property
    def errors(self) -> list[WorkflowError]:
        return list(self._errors)

    def format(self) -> str:
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        out = [e.format() for e in self._errors[:MAX_LINES]]
        rest = len(self._errors) - MAX_LINES
        if rest > 0:
            where = f"{self._errors[0].file}: " if self._errors[0].file else ""
            out.append(f"{where}... and {rest} more problem{'s' if rest > 1 else ''} (fix the ones above first)")
        return out

    def with_file(self, file: str) -> "WorkflowValidationError":
        return WorkflowValidationError([e.with_file(file) for e in self._errors])


def raise_errors(errors: Sequence[WorkflowError]) -> None:
    """Raise nothing, the single error, or a WorkflowValidationError of all of them."""
    if not errors:
        return
    if len(errors) == 1:
        raise errors[0]
    raise WorkflowValidationError(errors)


class ErrorCollector:
    """Collects the problems of one validation stage, all tagged with the same file."""

    def __init__(self, file: str | None) -> None:
        self.file = file
        self.errors: list[WorkflowError] = []

    def add(self, message: str, *, phase: str | None = None, field: str | None = None) -> None:
        self.errors.append(WorkflowError(message, file=self.file, phase=phase, field=field))

    def extend(self, errors: Iterable[WorkflowError]) -> None:
        for e in errors:
            self.errors.append(e.with_file(self.file) if self.file else e)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        raise_errors(self.errors)


# --------------------------------------------------------------- pydantic errors
def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unwrap(annotation: Any) -> list[Any]:
    """Model classes reachable from a type annotation (through Optional, list, dict, Union)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return [annotation]


def _model_at(model: Any, loc: Sequence[Any]) -> Any:
    """Walk a pydantic model class along an error location; return the model there (or None)."""
    from pydantic import BaseModel

    current: Any = model
    i = 0
    while i < len(loc):
        part = loc[i]
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            # an alias key (e.g. 'timeout_hours') or an index into a container
            return None
        nxt = None
        for cand in _unwrap(field.annotation):
            origin = typing.get_origin(cand)
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                nxt = cand
                break
            if origin in (list, tuple, dict):
                args = typing.get_args(cand)
                inner = args[-1] if args else None
                for inner_c in _unwrap(inner):
                    if isinstance(inner_c, type) and issubclass(inner_c, BaseModel):
                        nxt = inner_c
                        i += 1  # skip the index / key part
                        break
                if nxt is not None:
                    break
        if nxt is None:
            return None
        current = nxt
        i += 1
    return current


#: a validator message "[field.path] text" names the field it is about
_FIELD_TAG = re.compile(r"^\[([A-Za-z0-9_.]+)\] (.*)$")
_UNION_TAGS = frozenset({"constrained-str"})


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def pydantic_errors(
    exc: Any,
    *,
    model: Any = None,
    file: str | None = None,
    phase: str | None = None,
    prefix: str = "",
    phase_of: Any = None,
) -> list[WorkflowError]:
    """Translate a pydantic ``ValidationError`` into one WorkflowError per problem.

    ``prefix`` is prepended to the dotted field (``config`` for a phase config);
    ``phase_of(loc) -> (phase_name, remaining_loc) | None`` maps a location such as
    ``('phases', 2, 'retries')`` to the phase it belongs to.
    """
    out: list[WorkflowError] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        # drop the tags pydantic adds for union members / validators ('int', 'function-after[...]')
        loc = tuple(
            p for p in err.get("loc", ())
            if not (isinstance(p, str) and ("[" in p or p in _UNION_TAGS))
        )
        etype = err.get("type", "")
        ph = phase
        sub = loc
        if phase_of is not None:
            hit = phase_of(loc)
            if hit is not None:
                ph, sub = hit
        msg = str(err.get("msg", "invalid value"))
        for pre in ("Value error, ", "Assertion failed, "):
            if msg.startswith(pre):
                msg = msg[len(pre):]
        msg = re.sub(r" or instance of \w+", "", msg)  # internal class names mean nothing to users
        field_loc = sub
        tagged = _FIELD_TAG.match(msg)
        if tagged:  # "[timeout] give only one of ..." from a model validator: name the field
            field_loc = tuple(sub) + tuple(tagged.group(1).split("."))
            msg = tagged.group(2)
        if etype == "extra_forbidden":
            key = str(sub[-1]) if sub else "?"
            parent = _model_at(model, loc[:-1]) if model is not None else None
            known = list(parent.model_fields) if parent is not None else []
            aliases = list(getattr(parent, "__key_aliases__", ())) if parent is not None else []
            hint = suggest(key, known + aliases)
            msg = f"unknown key '{key}'{hint}"
            if known and not hint:
                msg += "; allowed: " + ", ".join(sorted(known + aliases))
        elif etype == "missing":
            msg = "required"
        elif etype == "literal_error":
            expected = (err.get("ctx") or {}).get("expected", "")
            choices = [c.strip().strip("'") for c in expected.replace(" or ", ",").split(",") if c.strip()]
            given = err.get("input")
            msg = f"invalid value {_short_repr(given)}; expected one of: {', '.join(choices)}"
            if isinstance(given, str):
                msg += suggest(given, choices)
        elif "input" in err and etype not in ("value_error", "assertion_error") and not etype.startswith("custom"):
            given = err.get("input")
            if not isinstance(given, (dict, list)):
                msg = f"{msg} (got {_short_repr(given)})"
            else:
                msg = f"{msg} (got a {'mapping' if isinstance(given, dict) else 'list'})"
        field = _dotted(((prefix,) if prefix else ()) + tuple(field_loc)) or None
        e = WorkflowError(msg, file=file, phase=ph, field=field)
        if e.format() not in seen:
            seen.add(e.format())
            out.append(e)
    return out
