"""What embedpipe records in a Parquet file's footer (the schema metadata), and how it is read back.

The one place that owns the footer format: the provenance JSON under `META_KEY` (shard files and
the published dataset) and the fingerprint under `FINGERPRINT_KEY` (part files). Steps downstream
of extract read provenance from here, without importing the extract writer.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

META_KEY = b"embedpipe"
FINGERPRINT_KEY = b"embedpipe.fingerprint"


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance a file records under META_KEY; {} when it records none."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[META_KEY]) if META_KEY in meta else {}


def with_provenance(fields: pa.Schema | Iterable[pa.Field], metadata: dict[str, Any]) -> pa.Schema:
    """A schema of these fields whose footer records `metadata` as provenance (JSON, sorted keys)."""
    return pa.schema(list(fields), metadata={META_KEY: json.dumps(metadata, sort_keys=True).encode()})


def fingerprint_of(provenance: dict[str, Any]) -> str:
    """Identifies model + preprocessing: parts written under another fingerprint are not reused."""
    return hashlib.sha256(json.dumps(provenance, sort_keys=True, default=str).encode()).hexdigest()[:16]


def with_fingerprint(fields: pa.Schema | Iterable[pa.Field], fingerprint: str) -> pa.Schema:
    """A schema of these fields whose footer records `fingerprint` (a part file's)."""
    return pa.schema(list(fields), metadata={FINGERPRINT_KEY: fingerprint.encode()})


def read_fingerprint(path: str | os.PathLike) -> str | None:
    """The fingerprint a part file records; None when it records none."""
    value = (pq.read_schema(path).metadata or {}).get(FINGERPRINT_KEY)
    return None if value is None else value.decode(errors="replace")
