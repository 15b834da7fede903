"""Rules of the source tree: tests use public names, the package names no machine's paths."""
import ast
import re
from pathlib import Path

import aigif

ROOT = Path(aigif.__file__).parent
TESTS = Path(__file__).parent


def test_no_test_imports_a_private_name_from_aigif():
    private = []
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aigif"):
                private += [f"{path.name}:{node.lineno} {a.name}" for a in node.names if a.name.startswith("_")]
    assert private == []


def test_no_machine_path_in_the_package():
    pattern = re.compile(r"""["'`](/work/|/home/|/root/|/Users/|[A-Z]:\\\\)""")
    hits = [f"{p.relative_to(ROOT)}" for p in ROOT.rglob("*.py") if pattern.search(p.read_text("utf-8"))]
    assert hits == []
