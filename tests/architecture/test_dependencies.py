"""Every package the library (and the demo generators installed beside it) imports is declared in
pyproject.toml (an undeclared one works only while another dependency happens to pull it in)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from support.workflow import REPO

FIRST_PARTY = {"embedpipe", "embedpipe_demo"}  # both are this project's packages (src/)


def imported_top_levels() -> set[str]:
    names = set()
    for path in [*(REPO / "src" / "embedpipe").rglob("*.py"), *(REPO / "src" / "embedpipe_demo").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - FIRST_PARTY - {"__future__"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_a_declared_runtime_dependency():
    declared = {normalise(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0])
                for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    owners = packages_distributions()
    missing = {name: owners.get(name) for name in imported_top_levels()
               if not {normalise(d) for d in owners.get(name, [name])} & declared}
    assert not missing, f"imported by src/embedpipe or src/embedpipe_demo but not in [project] dependencies: {missing}"
