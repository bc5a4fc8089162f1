"""Condition expressions: an AST whitelist; hostile input is rejected with a one-line message
naming the offending part, valid expressions evaluate like the arithmetic they spell."""

from __future__ import annotations

import pandas as pd
import pytest

from admf_assets.phases.expressions import ExpressionError, Reference, evaluate, parse, reference_value

VOL = "${initial_assessment.market_conditions.volatility}"

HOSTILE = [
    ("__import__('os').system('id')", "attribute access"),
    ("().__class__.__bases__[0].__subclasses__()", "not allowed"),
    ("open('/etc/passwd').read()", "not allowed"),
    (f"{VOL}.real > 0", "attribute access"),
    ("[x for x in (1, 2)]", "comprehension"),
    ("{x for x in (1, 2)}", "comprehension"),
    ("{1: 2}", "dict literal"),
    ("{1, 2}", "set literal"),
    ("(lambda: 1)()", "calling"),
    ("lambda: 1", "lambda"),
    ("f'{1}' == '1'", "f-string"),
    ("(y := 1) > 0", "assignment"),
    ("1 if True else 0", "conditional expression"),
    ("eval('1')", "calling 'eval'"),
    ("exec('x=1')", "calling 'exec'"),
    ("getattr(1, 'real')", "calling 'getattr'"),
    ("len('abc') > 1", "calling 'len'"),
    ("__builtins__", "dunder"),
    ("x > 1", "name 'x'"),
    ("(1, 2)[0] > 0", "subscript"),
    ("'abc'[0] == 'a'", "subscript"),
    ("max(*[1, 2]) > 0", "starred"),
    ("round(1.5, ndigits=1) > 0", "keyword argument"),
    ("~1 == -2", "operator ~"),
    ("1 << 3 == 8", "operator LShift"),
    ("1 is 1", "comparison Is"),
    ("b'x' == b'x'", "bytes literal"),
    ("None == None", "NoneType literal"),
    ("1j == 1j", "complex literal"),
    ("max == min", "without a call"),
    ("${a.b} > 1", "invalid reference"),
    ("${a.b.c.d} > 1", "invalid reference"),
    ("${a.__class__.c} > 1", "dunder"),
    ("$ {a.b.c} > 1", "malformed reference"),
    ("ref_0_admf > 1", "not allowed"),
    ("1 in x", "tuple or list"),
    ("1 in (x, 2)", "only literals"),
    ("(1, 2) == (1, 2)", "tuple or list outside"),
    ("import os", "syntax error"),
    ("1; 2", "syntax error"),
    ("", "empty"),
    ("1 +", "syntax error"),
    ("x" * 3000, "longer than"),
]


@pytest.mark.parametrize("text,why", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_expressions_are_rejected_at_parse(text, why):
    with pytest.raises(ExpressionError) as exc:
        parse(text)
    msg = str(exc.value)
    assert why in msg, msg
    assert "\n" not in msg and len(msg) < 300


def test_there_are_at_least_25_hostile_cases():
    assert len(HOSTILE) >= 25


R = Reference("initial_assessment", "market_conditions", "volatility")
S = Reference("opt", "top_parameter_sets", "sharpe_ratio")


@pytest.mark.parametrize("text,values,expected", [
    (f"{VOL} > 0.25", {R: 0.3}, True),
    (f"{VOL} > 0.25", {R: 0.2}, False),
    (f"{VOL} * 2 + 1 >= 1.5", {R: 0.25}, True),
    (f"abs({VOL} - 0.3) < 0.01 and not {VOL} > 1", {R: 0.305}, True),
    ("avg(${opt.top_parameter_sets.sharpe_ratio}) > 1", {S: [0.5, 1.0, 2.0]}, True),
    ("min(${opt.top_parameter_sets.sharpe_ratio}) > 0.6", {S: [0.5, 1.0, 2.0]}, False),
    ("max(${opt.top_parameter_sets.sharpe_ratio}, 3) == 3", {S: [0.5, 1.0, 2.0]}, True),
    ("sum(${opt.top_parameter_sets.sharpe_ratio}) == 3.5", {S: [0.5, 1.0, 2.0]}, True),
    (f"round({VOL}, 2) == 0.12", {R: 0.1234}, True),
    ("1 < 2 < 3", {}, True),
    ("2 ** 10 == 1024 and 7 // 2 == 3 and 7 % 2 == 1", {}, True),
    ("true and not false", {}, True),
    ("'high' in ('high', 'extreme')", {}, True),
    (f"{VOL} not in (1, 2) or false", {R: 0.5}, True),
    (f"{VOL} == 'high'", {R: "high"}, True),
    (f"-{VOL} < 0", {R: 0.1}, True),
])
def test_valid_expressions_evaluate(text, values, expected):
    expr = parse(text)
    assert evaluate(expr, values) == expected


def test_evaluation_errors_are_one_line():
    for text, values, why in [
        (f"{VOL} > 1", {R: [1.0, 2.0]}, "list of 2 values"),
        (f"{VOL} / 0 > 1", {R: 1.0}, "division by zero"),
        ("2 ** 100000 > 1", {}, "exponent too large"),
        (f"{VOL} * 3 > 1", {R: "high"}, "arithmetic needs numbers"),
        (f"{VOL} > 1", {}, "no value for"),
        (f"{VOL} > 'a'", {R: 1.0}, "cannot order"),
    ]:
        with pytest.raises(ExpressionError, match=why):
            evaluate(parse(text), values)


def test_references_are_listed_once_and_read_from_tables():
    expr = parse(f"{VOL} > 0.2 and {VOL} < 0.5")
    assert expr.refs == (R,)
    one = pd.DataFrame({"volatility": [0.3], "regime": ["high"]})
    assert reference_value(R, one) == 0.3
    many = pd.DataFrame({"sharpe_ratio": [1.0, 2.0]})
    assert reference_value(S, many) == [1.0, 2.0]
    with pytest.raises(ExpressionError, match="has no column 'volatility'.*did you mean 'volatility_20'"):
        reference_value(R, pd.DataFrame({"volatility_20": [1.0]}))
    with pytest.raises(ExpressionError, match="NaN"):
        reference_value(R, pd.DataFrame({"volatility": [float("nan")]}))
