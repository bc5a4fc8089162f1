"""Safe condition expressions over upstream results (no ``eval``/``exec`` of user text).

    ${initial_assessment.market_conditions.volatility} > 0.25
    avg(${opt.top_10_parameter_sets.sharpe_ratio}) >= 1 and ${risk.risk_metrics.var_95} > -0.03
    ${regimes.market_conditions.volatility_regime} in ('high', 'extreme')

``parse`` turns the text into an :class:`Expression` or raises :class:`ExpressionError` with a
one-line message naming the offending part; ``evaluate`` walks the checked tree with its own
small interpreter.  Allowed (an AST whitelist): comparisons (``< <= > >= == !=``, ``in`` /
``not in`` a tuple or list of literals), ``and`` / ``or`` / ``not``, arithmetic on numbers
(``+ - * / // % **``, exponents up to 64), number / string / boolean literals (``true`` and
``false`` too), references ``${phase.output.field}``, and the functions ``abs min max round
sum avg``.  Everything else -- names, attribute access, subscripts, other calls, keyword
arguments, lambdas, comprehensions, conditional expressions, f-strings, walrus, dict/set
literals, dunder names -- is rejected when the workflow is validated.

A reference names an output of an upstream phase and a column of that table: a one-row table
gives a scalar, a longer table the list of the column's values (for ``avg``, ``min`` ...).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["ExpressionError", "Reference", "Expression", "FUNCTIONS", "parse", "evaluate", "reference_value"]

REF_PATTERN = re.compile(r"\$\{\s*([^{}]*?)\s*\}")
_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = "ref_{}_admf"
_PLACEHOLDER_RE = re.compile(r"^ref_(\d+)_admf$")
MAX_LENGTH = 2000
MAX_EXPONENT = 64


class ExpressionError(ValueError):
    """A condition that is not allowed, or cannot be evaluated (one line)."""


@dataclass(frozen=True)
class Reference:
    phase: str
    output: str
    field: str

    @property
    def text(self) -> str:
        return f"${{{self.phase}.{self.output}.{self.field}}}"

    @property
    def asset(self) -> str:
        """'phase.output' (as in ``inputs``)."""
        return f"{self.phase}.{self.output}"


def _avg(*args):
    vals = _flatten(args, "avg")
    if not vals:
        raise ExpressionError("avg() of no values")
    return sum(vals) / len(vals)


def _flatten(args, name: str) -> list:
    vals = []
    for a in args:
        vals.extend(a if isinstance(a, list) else [a])
    for v in vals:
        if not _is_number(v):
            raise ExpressionError(f"{name}() takes numbers (got {v!r})")
    return vals


def _agg(fn, name):
    def f(*args):
        vals = _flatten(args, name)
        if not vals:
            raise ExpressionError(f"{name}() of no values")
        return fn(vals)
    return f


def _round(x, ndigits=0):
    if not _is_number(x) or not isinstance(ndigits, int) or isinstance(ndigits, bool):
        raise ExpressionError("round(x[, digits]) takes a number and an integer")
    return round(float(x), ndigits)


def _abs(x):
    if not _is_number(x):
        raise ExpressionError(f"abs() takes a number (got {x!r})")
    return abs(x)


FUNCTIONS = {"abs": _abs, "min": _agg(min, "min"), "max": _agg(max, "max"), "round": _round,
             "sum": _agg(sum, "sum"), "avg": _avg}
_CONSTANTS = {"True": True, "False": False, "true": True, "false": False}
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge}
_NODE_NAMES = {ast.Attribute: "attribute access", ast.Subscript: "subscript", ast.Lambda: "lambda",
               ast.ListComp: "comprehension", ast.SetComp: "comprehension", ast.DictComp: "comprehension",
               ast.GeneratorExp: "generator expression", ast.JoinedStr: "f-string", ast.FormattedValue: "f-string",
               ast.IfExp: "conditional expression (x if c else y)", ast.NamedExpr: "assignment (:=)",
               ast.Dict: "dict literal", ast.Set: "set literal", ast.Starred: "starred argument",
               ast.Slice: "slice", ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield"}


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


@dataclass(frozen=True)
class Expression:
    text: str
    refs: tuple[Reference, ...]
    _tree: Any  #: the checked ast.Expression (placeholders for references)
    _code: str  #: the text with placeholders (for error excerpts)

    def evaluate(self, values: Mapping[Reference, Any]) -> Any:
        return evaluate(self, values)


def parse(text: Any) -> Expression:
    """Check a condition; raise :class:`ExpressionError` naming the offending part."""
    if isinstance(text, bool):
        text = "true" if text else "false"
    if not isinstance(text, str):
        raise ExpressionError(f"a condition is a string expression (got {type(text).__name__})")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the condition is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise ExpressionError("the condition is empty")
    refs: list[Reference] = []

    def sub(m: re.Match) -> str:
        inner = m.group(1)
        parts = inner.split(".")
        if len(parts) != 3 or not all(_PART.match(p) for p in parts):
            raise ExpressionError(f"invalid reference '${{{inner}}}': use ${{phase.output.field}}")
        if any(p.startswith("__") for p in parts):
            raise ExpressionError(f"dunder name in reference '${{{inner}}}' is not allowed")
        ref = Reference(*parts)
        if ref not in refs:
            refs.append(ref)
        return " " + _PLACEHOLDER.format(refs.index(ref)) + " "

    code = REF_PATTERN.sub(sub, text)
    if "$" in code or "${" in text and "}" not in text:
        where = code[code.index("$"):][:20] if "$" in code else text
        raise ExpressionError(f"malformed reference near '{where}': use ${{phase.output.field}}")
    for m in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", REF_PATTERN.sub(" ", text)):
        if _PLACEHOLDER_RE.match(m.group(0)):
            raise ExpressionError(f"name '{m.group(0)}' is not allowed")
    try:
        tree = ast.parse(code.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg} in '{text.strip()}'") from None
    code = code.strip()
    _check(tree.body, code, refs)
    return Expression(text.strip(), tuple(refs), tree, code)


def _excerpt(node: ast.AST, code: str, refs: list[Reference]) -> str:
    seg = ast.get_source_segment(code, node) or type(node).__name__
    seg = re.sub(r"ref_(\d+)_admf", lambda m: refs[int(m.group(1))].text, seg)
    seg = " ".join(seg.split())
    return seg if len(seg) <= 60 else seg[:57] + "..."


def _check(node: ast.AST, code: str, refs: list[Reference]) -> None:
    def bad(what: str, n: ast.AST = node) -> ExpressionError:
        return ExpressionError(f"{what} is not allowed: '{_excerpt(n, code, refs)}'")

    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or (isinstance(v, (int, float)) and not isinstance(v, complex)) or isinstance(v, str):
            if isinstance(v, float) and not math.isfinite(v):
                raise bad("a non-finite number")
            return
        raise bad(f"a {type(v).__name__} literal")
    if isinstance(node, ast.Name):
        if _PLACEHOLDER_RE.match(node.id) or node.id in _CONSTANTS:
            return
        if node.id.startswith("__"):
            raise bad("a dunder name")
        if node.id in FUNCTIONS:
            raise bad(f"function '{node.id}' without a call")
        raise bad(f"name '{node.id}' (use ${{phase.output.field}} references, literals and "
                  f"{', '.join(FUNCTIONS)})")
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v, code, refs)
        return
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
            raise bad("the operator ~")
        _check(node.operand, code, refs)
        return
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise bad(f"the operator {type(node.op).__name__}")
        _check(node.left, code, refs)
        _check(node.right, code, refs)
        return
    if isinstance(node, ast.Compare):
        _check(node.left, code, refs)
        for op, comp in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(comp, (ast.Tuple, ast.List)):
                    raise bad("'in' needs a tuple or list of literals", comp)
                for elt in comp.elts:
                    if not isinstance(elt, ast.Constant):
                        raise bad("only literals inside an 'in' list", elt)
                    _check(elt, code, refs)
            elif type(op) not in _CMPOPS:
                raise bad(f"the comparison {type(op).__name__}")
            else:
                _check(comp, code, refs)
        return
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Attribute):
            raise bad("attribute access", f)
        if not isinstance(f, ast.Name) or f.id not in FUNCTIONS:
            name = f.id if isinstance(f, ast.Name) else _excerpt(f, code, refs)
            raise ExpressionError(f"calling '{name}' is not allowed (functions: {', '.join(FUNCTIONS)}): "
                                  f"'{_excerpt(node, code, refs)}'")
        if node.keywords:
            raise bad("a keyword argument")
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise bad("a starred argument", a)
            _check(a, code, refs)
        return
    if isinstance(node, (ast.Tuple, ast.List)):
        raise bad("a tuple or list outside 'in'")
    raise bad(_NODE_NAMES.get(type(node), f"'{type(node).__name__}'"))


# ------------------------------------------------------------------ evaluation
def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def evaluate(expr: Expression, values: Mapping[Reference, Any]) -> Any:
    """The value of a parsed expression; ``values`` maps every reference to its value."""
    missing = [r.text for r in expr.refs if r not in values]
    if missing:
        raise ExpressionError(f"no value for {', '.join(missing)}")
    env = {i: _py(values[r]) if not isinstance(values[r], list) else [_py(x) for x in values[r]]
           for i, r in enumerate(expr.refs)}
    return _eval(expr._tree.body, env, expr)


def _num(v: Any, node: ast.AST, expr: Expression) -> Any:
    if isinstance(v, list):
        raise ExpressionError(f"'{_excerpt(node, expr._code, list(expr.refs))}' is a list of {len(v)} values; "
                              "use avg(), min(), max() or sum()")
    return v


def _eval(node: ast.AST, env: dict, expr: Expression) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        m = _PLACEHOLDER_RE.match(node.id)
        return env[int(m.group(1))] if m else _CONSTANTS[node.id]
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            out = True
            for v in node.values:
                out = _num(_eval(v, env, expr), v, expr)
                if not out:
                    return out
            return out
        out = False
        for v in node.values:
            out = _num(_eval(v, env, expr), v, expr)
            if out:
                return out
        return out
    if isinstance(node, ast.UnaryOp):
        v = _num(_eval(node.operand, env, expr), node.operand, expr)
        if isinstance(node.op, ast.Not):
            return not v
        if not _is_number(v):
            raise ExpressionError(f"'{_excerpt(node, expr._code, list(expr.refs))}': sign of a non-number")
        return -v if isinstance(node.op, ast.USub) else +v
    if isinstance(node, ast.BinOp):
        a = _num(_eval(node.left, env, expr), node.left, expr)
        b = _num(_eval(node.right, env, expr), node.right, expr)
        where = _excerpt(node, expr._code, list(expr.refs))
        if not (_is_number(a) and _is_number(b)):
            raise ExpressionError(f"'{where}': arithmetic needs numbers (got {a!r} and {b!r})")
        if isinstance(node.op, ast.Pow) and (abs(b) > MAX_EXPONENT or abs(a) > 1e100):
            raise ExpressionError(f"'{where}': exponent too large")
        try:
            return _BINOPS[type(node.op)](a, b)
        except ZeroDivisionError:
            raise ExpressionError(f"'{where}': division by zero") from None
        except OverflowError:
            raise ExpressionError(f"'{where}': overflow") from None
    if isinstance(node, ast.Compare):
        left = _num(_eval(node.left, env, expr), node.left, expr)
        for op, comp in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                options = [e.value for e in comp.elts]
                ok = left in options
                ok = ok if isinstance(op, ast.In) else not ok
                right = left
            else:
                right = _num(_eval(comp, env, expr), comp, expr)
                if isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)) and \
                        not ((_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str))):
                    raise ExpressionError(f"'{_excerpt(node, expr._code, list(expr.refs))}': cannot order "
                                          f"{left!r} and {right!r}")
                ok = _CMPOPS[type(op)](left, right)
            if not ok:
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        args = [_eval(a, env, expr) for a in node.args]
        return FUNCTIONS[node.func.id](*args)
    raise ExpressionError(f"cannot evaluate '{type(node).__name__}'")  # pragma: no cover - checked by parse


def reference_value(ref: Reference, table: Any) -> Any:
    """The value of ``ref`` in an upstream output: the column's value of a one-row table, the
    list of its values otherwise."""
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise ExpressionError(f"{ref.text}: '{ref.phase}.{ref.output}' is not a table")
    if ref.field not in table.columns:
        cols = [str(c) for c in table.columns]
        from admf_assets.suggest import suggest

        raise ExpressionError(f"{ref.text}: output '{ref.phase}.{ref.output}' has no column '{ref.field}'"
                              f"{suggest(ref.field, cols)}; columns: {', '.join(cols[:20])}")
    col = table[ref.field]
    if len(col) == 0:
        raise ExpressionError(f"{ref.text}: output '{ref.phase}.{ref.output}' is empty")
    vals = [_py(v) for v in col.tolist()]
    for v in vals:
        if isinstance(v, float) and math.isnan(v):
            raise ExpressionError(f"{ref.text} is NaN (not available)")
    return vals[0] if len(vals) == 1 else vals


def reference_values(expr: Expression, table_of: Callable[[Reference], Any]) -> dict[Reference, Any]:
    """Every reference's value, reading each upstream table with ``table_of(ref)``."""
    return {r: reference_value(r, table_of(r)) for r in expr.refs}


def condition_metadata(expr: Expression, values: Mapping[Reference, Any], result: Any) -> dict[str, Any]:
    """What a phase records about a condition it evaluated (plain values, for asset metadata)."""
    out: dict[str, Any] = {"condition": expr.text, "condition_value": _py(result) if not isinstance(result, bool)
                           else bool(result)}
    for r in expr.refs:
        v = values.get(r)
        out[f"ref {r.phase}.{r.output}.{r.field}"] = v if not isinstance(v, list) else str(v[:20])
    return out
