"""Report functions over 60 lines and helpers with more than 6 positional parameters (the layout's limits).

.venv/bin/python scripts/check_shape.py    # exits 1 and lists each offender, 0 when there is none
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_LINES, MAX_POSITIONAL = 60, 6


def offenders(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                positional = len(node.args.posonlyargs) + len(node.args.args)
                if lines > MAX_LINES or positional > MAX_POSITIONAL:
                    found.append(f"{path}:{node.lineno} {node.name}: {lines} lines, {positional} positional parameters")
    return found


if __name__ == "__main__":
    problems = offenders(Path("chexbal"))
    print("\n".join(problems) or "every function is within the limits")
    sys.exit(1 if problems else 0)
