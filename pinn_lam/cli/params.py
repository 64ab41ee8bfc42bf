"""``--param NAME=VALUE`` for every command: numbers, tuples and arithmetic with ``pi``."""
from __future__ import annotations

import argparse
import ast
import math
import operator
from typing import Any

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


def parse_value(text: str) -> Any:
    """A parameter value: a number, tuple or list (Python syntax, lists become tuples), arithmetic
    with ``pi`` (``0.01/pi``), or else the text itself (stripped)."""
    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
            return node.value
        if isinstance(node, ast.Name) and node.id == "pi":
            return math.pi
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(walk(e) for e in node.elts)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.operand))
        raise ValueError
    try:
        return walk(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError):
        return text.strip()


def param(text: str) -> tuple[str, Any]:
    """``argparse`` type of ``--param``: ``"nu=0.01/pi"`` -> ``("nu", 0.0031830...)``."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. nu=0.01/pi), got {text!r}")
    return name.strip(), parse_value(value)
