"""Plant one small bug at a time in a cnnviz module and see whether the fast tests catch it (mutation testing).

    python scripts/mutation_score.py cnnviz/selection.py cnnviz/output/files.py [--tests tests/test_cli.py ...]
    python scripts/mutation_score.py cnnviz/methods/extract.py --list            # the mutants, without running them

Each mutant is one change of the kind real bugs are made of: a comparison off by one (``<`` for ``<=``), a
flipped ``==``, ``and`` for ``or``, a dropped ``not``, a number off by one, ``True`` for ``False``, an ``if``
whose branch never runs, ``+`` for ``-``. The module file is rewritten in place for each run and always restored.
A mutant is caught when pytest fails (``-x``, the ``slow`` tests left out) within ``--timeout`` seconds.
Docstrings and messages are left alone. Prints one line per surviving mutant and the score per module.
"""

from __future__ import annotations

import argparse
import ast
import copy
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.And: ast.Or,
    ast.Or: ast.And,
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.Div: ast.Mult,
}


@dataclass(frozen=True)
class Mutant:
    """One planted change: where, what, and the module's source with it."""

    line: int
    description: str
    source: str


def _docstring_ids(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _changes(node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """The mutated copies of one node, each with a description."""
    if isinstance(node, ast.Compare):
        for index, op in enumerate(node.ops):
            if type(op) in _SWAPS:
                compare = copy.deepcopy(node)
                compare.ops[index] = _SWAPS[type(op)]()
                yield f"{type(op).__name__} -> {_SWAPS[type(op)].__name__}", compare
    elif isinstance(node, (ast.BoolOp, ast.BinOp)) and type(node.op) in _SWAPS:
        operation = copy.deepcopy(node)
        operation.op = _SWAPS[type(node.op)]()
        yield f"{type(node.op).__name__} -> {type(operation.op).__name__}", operation
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "drop not", copy.deepcopy(node.operand)
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield f"{node.value} -> {not node.value}", ast.Constant(not node.value)
    elif isinstance(node, ast.Constant) and isinstance(node.value, int):
        yield f"{node.value} -> {node.value + 1}", ast.Constant(node.value + 1)
    elif isinstance(node, ast.If):
        branch = copy.deepcopy(node)
        branch.test = ast.Constant(False)
        yield "if-branch never taken", branch


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, replacement: ast.AST) -> None:
        self.target, self.replacement = target, replacement

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if node is self.target:
            return self.replacement
        return super().generic_visit(node)


def mutants(path: Path) -> list[Mutant]:
    """Every mutant of the module at ``path``, in source order."""
    text = path.read_text()
    tree = ast.parse(text)
    skip = _docstring_ids(tree)
    found: list[Mutant] = []
    for node in ast.walk(tree):
        if id(node) in skip or isinstance(node, ast.Constant) and isinstance(node.value, str):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for description, replacement in _changes(node):
            mutated = _mutate_at(text, node, replacement)
            if mutated is not None:
                found.append(Mutant(getattr(node, "lineno", 0), description, mutated))
    return sorted(found, key=lambda mutant: mutant.line)


def _mutate_at(text: str, node: ast.AST, replacement: ast.AST) -> str | None:
    """The source with the node at ``node``'s position (and of its type) replaced, in a fresh parse so that
    every mutant starts from the original."""
    tree = ast.parse(text)
    key = (type(node), getattr(node, "lineno", None), getattr(node, "col_offset", None))
    for candidate in ast.walk(tree):
        if (type(candidate), getattr(candidate, "lineno", None), getattr(candidate, "col_offset", None)) == key:
            new = _Replace(candidate, replacement).visit(tree)
            ast.fix_missing_locations(new)
            return ast.unparse(new)
    return None


def run_tests(tests: list[str], timeout: float, show: bool = False) -> bool:
    """Whether the fast tests pass (True) or fail or time out (False); ``show`` prints pytest's last lines."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow", *tests]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    if show and done.returncode != 0:
        print("\n".join(done.stdout.splitlines()[-15:]), file=sys.stderr)
    return done.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="+", type=Path)
    parser.add_argument("--tests", nargs="*", default=["tests"], help="test files or folders to run (default: tests)")
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--list", action="store_true", help="list the mutants only")
    args = parser.parse_args(argv)

    if not args.list and not run_tests(args.tests, args.timeout, show=True):
        print("Error: the tests fail without any mutant; fix them first", file=sys.stderr)
        return 1
    totals: list[tuple[Path, int, int]] = []
    for module in args.modules:
        path = (ROOT / module).resolve() if not module.is_absolute() else module
        original = path.read_text()
        found = mutants(path)
        caught = 0
        try:
            for number, mutant in enumerate(found, 1):
                if args.list:
                    print(f"{module}:{mutant.line}: {mutant.description}")
                    continue
                path.write_text(mutant.source)
                start = time.monotonic()
                killed = not run_tests(args.tests, args.timeout)
                caught += killed
                verdict = "caught" if killed else "SURVIVED"
                print(
                    f"[{number}/{len(found)}] {module}:{mutant.line}: {mutant.description}: {verdict} "
                    f"({time.monotonic() - start:.0f} s)",
                    flush=True,
                )
        finally:
            path.write_text(original)
        totals.append((module, caught, len(found)))
    if not args.list:
        for module, caught, count in totals:
            print(f"{module}: {caught}/{count} caught ({100 * caught / max(1, count):.0f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
