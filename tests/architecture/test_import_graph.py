"""The library's import graph: no circle, and no import from a package the steps share up into a step.

Every import counts, the ones inside functions and under TYPE_CHECKING too: a lazy import hides a
circle from Python, not from a reader."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
SHARED = {"store", "runtime", "encoders", "readers"}  # used by several steps; they import no step
STEPS = {"discover", "extract", "publish", "validate", "evaluate", "pretrain", "plan"}


def module_names() -> dict[str, Path]:
    names = {}
    for path in (SRC / "embedpipe").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_the_library_has_no_import_circle():
    edges = graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                loop = trail[trail.index(nxt):] if nxt in trail else []
                circles.append(" → ".join([*loop, node, nxt]))
            elif nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_shared_packages_import_no_step():
    wrong = []
    for name, targets in graph().items():
        parts = name.split(".")
        if len(parts) > 1 and parts[1] in SHARED:
            wrong += [f"{name} imports {t}" for t in targets if t.split(".")[1:2] and t.split(".")[1] in STEPS]
    assert not wrong, "\n".join(wrong)


def test_every_module_is_in_a_package_or_the_front_door():
    flat = sorted(n for n, p in module_names().items() if n.count(".") == 1 and p.name != "__init__.py")
    assert flat == ["embedpipe.__main__", "embedpipe.api"], flat


def test_the_architecture_map_has_a_row_for_every_package():
    page = (SRC.parent / "docs" / "architecture.md").read_text()
    packages = sorted(p.name for p in (SRC / "embedpipe").iterdir() if (p / "__init__.py").is_file())
    missing = [name for name in packages if f"| `{name}/` |" not in page]
    assert not missing, f"docs/architecture.md's package table lacks {missing}"


def test_what_the_snakefile_imports_needs_no_numpy_pyarrow_pandas_or_torch():
    """Snakemake's own environment need not have them: the DAG is built from stdlib-only modules."""
    import re
    import subprocess
    import sys

    common = (SRC.parent / "rules" / "common.smk").read_text()
    modules = sorted(set(re.findall(r"^from (embedpipe[\w.]*) import", common, re.M)))
    assert modules, "rules/common.smk imports no embedpipe module"
    probe = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numpy", "pyarrow", "pandas", "torch"):
            raise ImportError(f"{{name}} is blocked: the DAG must not need it")
sys.meta_path.insert(0, Block())
import {", ".join(modules)}
"""
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
