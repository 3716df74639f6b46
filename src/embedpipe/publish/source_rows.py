"""Which rows of a Hugging Face dataset listed each file (hf_dataset input), so that every
embedding row can be joined back to the dataset it came from.

discover de-duplicates and sorts the listed paths into keys; `hf_rows.parquet` beside the manifests
keeps, per key, every row index that listed it (a file listed by two rows has both) and the split.
The staged step adds them to each dataset row as `hf_row_indices` (list<int64>) and `hf_split`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from embedpipe.publish.metadata import Joiner
from embedpipe.store.atomic import atomic_path

FIELDS = [pa.field("hf_row_indices", pa.list_(pa.int64())), pa.field("hf_split", pa.string())]
SPLIT_KEY = b"embedpipe_hf_split"


def write_source_rows(rows: dict[str, list[int]], split: str | None, path: Path) -> bool:
    """Write the table unless it holds these rows already (its mtime then stays: nothing reruns).
    Returns whether it was written."""
    if path.is_file() and read_source_rows(path) == (rows, split):
        return False
    keys = sorted(rows)
    table = pa.table({"key": pa.array(keys, pa.string()),
                      "hf_row_indices": pa.array([rows[k] for k in keys], pa.list_(pa.int64()))})
    table = table.replace_schema_metadata({SPLIT_KEY: (split or "").encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return True


def read_source_rows(path: Path) -> tuple[dict[str, list[int]], str | None]:
    table = pq.read_table(path)
    split = (table.schema.metadata or {}).get(SPLIT_KEY, b"").decode() or None
    keys = table.column("key").to_pylist()
    return dict(zip(keys, table.column("hf_row_indices").to_pylist(), strict=True)), split


class WithSourceRows:
    """A metadata joiner with the two source-row columns after its own."""

    def __init__(self, joiner: Joiner, rows: dict[str, list[int]], split: str | None) -> None:
        self.joiner, self.source, self.split = joiner, rows, split
        self.key_column, self.identifying = joiner.key_column, joiner.identifying
        self.kind, self.naming, self.parses, self.judges = joiner.kind, joiner.naming, joiner.parses, joiner.judges
        self.fields = [*joiner.fields, *FIELDS]

    @property
    def matched_records(self) -> int:
        return self.joiner.matched_records

    @property
    def matched_studies(self) -> int:
        return self.joiner.matched_studies

    def rows(self, keys: list[str]) -> dict[str, list[Any]]:
        missing = [k for k in keys if k not in self.source]
        if missing:  # the manifests came from this table: a key without rows means they are out of step
            raise ValueError(f"{len(missing)} keys have no hf_dataset row, e.g. {missing[0]!r}; rerun discover")
        return self.joiner.rows(keys) | {"hf_row_indices": [self.source[k] for k in keys],
                                         "hf_split": [self.split] * len(keys)}
