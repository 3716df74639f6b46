"""A shard's keys judged before its dataset file is written: does the metadata kind describe them, and
which columns identify people (by the kind, or by an identifier shape found in the keys whatever the
kind), or cannot be judged (file paths of unknown origin). The dataset file records the verdict; the
card states it and a public upload needs every identifying or unjudged column named."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from embedpipe.publish.identifying import KeyScan, shapes_with
from embedpipe.publish.metadata import Joiner

# A kind that names fewer than this share of a shard's files is not the dataset's kind: its columns
# would be mostly null, and the identifying columns it declares would describe other data.
MIN_PARSED = 0.5
BATCH_KEYS = 65_536


class KindMismatch(ValueError):
    """metadata.kind does not describe the shard's file names."""


@dataclass(frozen=True)
class Judgement:
    identifying: list[str]
    unjudged: list[str]
    shapes: dict[str, list[str]]  # column → identifier shapes found in it

    def record(self) -> dict[str, Any]:
        """The dataset file's footer entries (identifying.recorded reads them back)."""
        return {"identifying_columns": self.identifying, "unjudged_columns": self.unjudged,
                "identifier_shapes": self.shapes}


def judge_keys(joiner: Joiner, source: pq.ParquetFile, shard: str, patterns: Iterable[str] = ()) -> Judgement:
    """One pass over the shard's keys (the embeddings are not read). Raises KindMismatch when the kind's
    naming fits fewer than MIN_PARSED of them."""
    scan = KeyScan(shapes_with(patterns))
    rows = parsed = judged = 0
    stray = None  # a key outside the kind's naming, for the message
    for batch in source.iter_batches(batch_size=BATCH_KEYS, columns=["key"]):
        keys = batch.column("key").to_pylist()
        scan.add(keys)
        rows += len(keys)
        if joiner.judges is not None:
            judged += sum(map(joiner.judges, keys))
        if joiner.parses is not None:
            for key in keys:
                if joiner.parses(key):
                    parsed += 1
                elif stray is None:
                    stray = key
    if joiner.parses is not None and rows and parsed < MIN_PARSED * rows:
        raise KindMismatch(
            f"metadata.kind: {joiner.kind} names {parsed} of {rows} files in shard {shard} (e.g. {stray} is not "
            f"{joiner.naming}): set metadata.kind to this dataset's kind (none for another naming)")
    column = joiner.key_column
    identifying = list(joiner.identifying)
    if scan.found and column not in identifying:
        identifying.append(column)
    # Judged only where every whole path follows a naming that identifies no one (DeepEarth's).
    unjudged = column not in identifying and (joiner.judges is None or judged < rows)
    return Judgement(identifying, [column] if unjudged else [], {column: sorted(scan.found)} if scan.found else {})
