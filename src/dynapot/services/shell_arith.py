"""bash's arithmetic expansion, `$(( ... ))`, for the fake shell: 64-bit integers, C's operators.

`evaluate(expression, lookup)`: variables by name (their value as a number, 0 when unset or not a
number), `$NAME` too; + - * / % ** << >> & | ^ ~ ! && || and comparisons, parentheses. Division
truncates toward zero and wraps at 64 bits as bash's does; `**` and shifts are bounded. Python's
own parser reads the expression, and only the node types listed here are evaluated (never
`eval`). A bad expression raises `SyntaxError` with bash's text. Pure.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

__all__ = ["ArithmeticFailure", "evaluate"]

MAX_LENGTH = 1000
_BITS = 1 << 64


def _wrap(value: int) -> int:
    value %= _BITS
    return value - _BITS if value >= 1 << 63 else value


def _number(text: str) -> int:
    text = text.strip()
    try:
        return int(text, 0) if re.fullmatch(r"[+-]?(0[xX][0-9a-fA-F]+|[1-9][0-9]*|0)", text) else 0
    except ValueError:
        return 0


class ArithmeticFailure(SyntaxError):
    """An expression bash refuses: it says why and gives up the whole command line."""


class _Evaluator:
    def __init__(self, lookup: Callable[[str], str], source: str) -> None:
        self.lookup = lookup
        self.source = source

    def value(self, node: ast.AST) -> int:  # one case per node type
        if isinstance(node, ast.Expression):
            return self.value(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return _wrap(node.value)
        if isinstance(node, ast.Name):
            return _number(self.lookup(node.id))
        if isinstance(node, ast.UnaryOp):
            operand = self.value(node.operand)
            if isinstance(node.op, ast.USub):
                return _wrap(-operand)
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(node.op, ast.Invert):
                return _wrap(~operand)
            if isinstance(node.op, ast.Not):
                return int(not operand)
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return int(all(self.value(v) for v in node.values))
            return int(any(self.value(v) for v in node.values))
        if isinstance(node, ast.Compare):
            left = self.value(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self.value(right_node)
                ok = {
                    ast.Eq: left == right,
                    ast.NotEq: left != right,
                    ast.Lt: left < right,
                    ast.LtE: left <= right,
                    ast.Gt: left > right,
                    ast.GtE: left >= right,
                }.get(type(op))
                if not ok:
                    return 0
                left = right
            return 1
        if isinstance(node, ast.BinOp):
            a, b = self.value(node.left), self.value(node.right)
            op = node.op
            if isinstance(op, (ast.Div, ast.FloorDiv, ast.Mod)):
                if b == 0:
                    token = ast.get_source_segment(self.source, node.right) or "0"
                    raise SyntaxError(f'division by 0 (error token is "{token.strip()}")')
                quotient = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
                return _wrap(quotient if not isinstance(op, ast.Mod) else a - b * quotient)
            if isinstance(op, ast.Pow):
                if b < 0:
                    raise SyntaxError("exponent less than 0")
                return _wrap(pow(a, b, _BITS))  # modular: a huge exponent costs a few steps
            if isinstance(op, (ast.LShift, ast.RShift)):
                b &= 63
                return _wrap(a << b if isinstance(op, ast.LShift) else a >> b)
            simple = {
                ast.Add: lambda: a + b,
                ast.Sub: lambda: a - b,
                ast.Mult: lambda: a * b,
                ast.BitAnd: lambda: a & b,
                ast.BitOr: lambda: a | b,
                ast.BitXor: lambda: a ^ b,
            }.get(type(op))
            if simple is not None:
                return _wrap(simple())
        raise SyntaxError("syntax error in expression")


def evaluate(expression: str, lookup: Callable[[str], str]) -> str:
    """The value of `$(( expression ))` as bash prints it."""
    text = expression.strip()
    if not text:
        return "0"
    if len(text) > MAX_LENGTH:
        raise ArithmeticFailure(f"{text[:40]}: expression too long")
    python = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", r"\1", text)
    python = python.replace("&&", " and ").replace("||", " or ").replace("/", "//")
    python = re.sub(r"!(?!=)", " not ", python)
    try:
        tree = ast.parse(python, mode="eval")
        return str(_Evaluator(lookup, python).value(tree))
    except (SyntaxError, RecursionError, ValueError) as exc:
        known = isinstance(exc, SyntaxError) and exc.msg.startswith(("division", "exponent"))
        reason = exc.msg if known else ""
        raise ArithmeticFailure(f"{text}: {reason or 'syntax error: invalid arithmetic operator'}") from None
