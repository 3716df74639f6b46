"""The docs stay true: the generated configuration reference is fresh, the README stays a front door,
every page is in the site's nav, and the site builds with `mkdocs build --strict`.

Self-contained on purpose (no conftest helpers): it only reads files and runs two commands.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
README_MAX_LINES = 200


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def nav_pages(entry: Any) -> list[str]:
    """Every file a mkdocs nav names: entries are "page.md", {title: "page.md"} or {title: [entries]}."""
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return [page for item in entry for page in nav_pages(item)]
    if isinstance(entry, dict):
        return [page for value in entry.values() for page in nav_pages(value)]
    return []


def test_configuration_reference_is_fresh() -> None:
    result = run(str(DOCS / "gen_reference.py"), "--check")
    assert result.returncode == 0, result.stderr.strip() or result.stdout.strip()


def test_readme_is_a_front_door() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    lines = len(readme.splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move the detail into a docs/ page")
    assert re.search(r"\]\(docs/architecture\.md\)", readme), "README.md does not link docs/architecture.md"


def test_every_page_is_in_the_nav() -> None:
    # safe_load: mkdocs.yml holds no !!python tags, and a plain read keeps the test free of mkdocs
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = set(nav_pages(config.get("nav", [])))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert not pages - listed, f"docs pages missing from mkdocs.yml's nav: {sorted(pages - listed)}"
    assert not listed - pages, f"mkdocs.yml's nav names pages that do not exist: {sorted(listed - pages)}"


def test_site_builds_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("mkdocs is not installed: it is in the dev extras (pip install -e '.[dev]')")
    result = run("-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"),
                 "--site-dir", str(tmp_path / "site"))
    assert result.returncode == 0, result.stderr[-4000:]
