"""A misspelt config key, as one line naming it and the closest valid key.

Snakemake's `validate()` reports an unknown key with the schema it failed against: for a block that
is a dozen lines, for the top level the whole schema (some 700 lines) with the key buried in the
first few. The Snakefile asks this first, so a typo reads `config key 'encodr': unknown; did you
mean 'encoder'?` and validate() is left with the value checks.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

Problem = tuple[str, str]


def closed_properties(schema: Mapping[str, Any]) -> list[str] | None:
    """The keys an object schema allows, where it allows no others (additionalProperties: false)."""
    if schema.get("additionalProperties", True) is not False or "properties" not in schema:
        return None
    return list(schema["properties"])


def unknown_key(given: Mapping[str, Any], schema: Mapping[str, Any], prefix: str = "") -> Problem | None:
    """The first key of `given` that `schema` does not allow, at the top level or one block down
    (`shards.max_shard`), with the closest allowed key when one is close. The encoder block is left
    to its family's schema (its own line, with the family's options)."""
    allowed = closed_properties(schema)
    if allowed is not None:
        for key in sorted(given, key=str):
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f"did you mean {prefix + close[0]!r}?" if close else f"the keys here: {', '.join(allowed)}"
                return f"{prefix}{key}", f"unknown; {hint}"
    if prefix:
        return None
    for key, value in given.items():
        block = (schema.get("properties") or {}).get(key) or {}
        if isinstance(value, Mapping) and (problem := unknown_key(value, block, f"{key}.")):
            return problem
    return None


def unknown_key_problem(config: Mapping[str, Any], schema_file: str | Path) -> Problem | None:
    """`config`'s first unknown key against the config schema in `schema_file`, or None."""
    schema = yaml.safe_load(Path(schema_file).read_text(encoding="utf-8"))
    return unknown_key(config, schema)
