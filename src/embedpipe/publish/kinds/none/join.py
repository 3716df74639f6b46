"""Kind none's join: the key only."""

from __future__ import annotations

from typing import Any

import pyarrow as pa


class KeyOnly:
    """No dataset metadata: the row is the key and the embedding."""

    key_column = "key"
    fields = [pa.field("key", pa.string())]
    # The keys are file paths of unknown origin: judge_keys finds them identifying or not judgeable.
    identifying: tuple[str, ...] = ()
    kind, naming = "none", ""
    parses = judges = None  # no naming to follow
    matched_records = matched_studies = 0

    def rows(self, keys: list[str]) -> dict[str, list[Any]]:
        return {"key": list(keys)}
