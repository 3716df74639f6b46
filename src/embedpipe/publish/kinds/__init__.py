"""Metadata kinds: one package each under publish/kinds/<kind>/, registered here by one line.

A kind package exports `KIND` (kind.py): the config keys naming the files its join reads, the columns
that identify people, and its join (`join.py`, imported when a job joins rows). Nothing here imports
pandas or pyarrow: rules/common.smk reads kinds when it builds the DAG.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from embedpipe.publish.kinds.kind import Kind, KindError

if TYPE_CHECKING:
    from embedpipe.publish.metadata import Joiner

# The registry: kind name → its package.
KINDS = {
    "none": "embedpipe.publish.kinds.none",
    "mimic_iv_echo": "embedpipe.publish.kinds.mimic_iv_echo",
    "mimic_iv_ecg": "embedpipe.publish.kinds.mimic_iv_ecg",
    "deepearth": "embedpipe.publish.kinds.deepearth",
}


def kind(name: str) -> Kind:
    if name not in KINDS:
        raise KindError(f"metadata.kind: unknown kind {name!r}; known: {', '.join(KINDS)}")
    return importlib.import_module(KINDS[name]).KIND


def build_joiner(name: str, files: dict[str, str | None]) -> Joiner:
    """The join of kind `name` over the files it reads ({metadata key: path}); each one it needs is set."""
    chosen = kind(name)
    if missing := [key for key in chosen.files if not files.get(key)]:
        raise KindError(f"metadata.kind {name} needs metadata.{' and metadata.'.join(missing)}")
    return chosen.joiner({key: files[key] for key in chosen.files})
