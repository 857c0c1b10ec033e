"""Fail if any module imports an underscored name from another module (``from m import _x``).

A name used across modules is part of its module's interface, so it gets a public name; ruff's
PLC2701 checks imports from other distributions, this checks ours (it skips first-party ones).
Usage: ``python scripts/check_private_imports.py app indexer bench tests`` (``make lint``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    module = "." * node.level + (node.module or "")
                    found.append(f"{path}:{node.lineno}: from {module} import {alias.name}")
    return found


def main(roots: list[str]) -> int:
    problems = [
        problem
        for root in roots
        for path in sorted(Path(root).rglob("*.py"))
        for problem in private_imports(path)
    ]
    for problem in problems:
        print(problem)
    if problems:
        print(
            f"{len(problems)} import(s) of an underscored name from another module: make the "
            "name public in its module, or keep its use inside that module"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
