"""Each shard's keys with what a run-wide table joins to them, written once per run.

A metadata kind that joins a record list (MIMIC's 525,000-row echo list, 800,000-row ECG list) or a
run listed by a Hugging Face dataset (hf_rows.parquet) would otherwise have every staged job read and
index the whole table to join its own rows: shards × records. The `joined` rule reads the tables once
and writes `joined/<shard>.parquet`: the kind's columns for exactly the shard's manifest keys, plus
what the staged step's judgement needs of each key (does it follow the kind's naming, can it be
judged to name no one) and whether it matched a record and a study row. The staged job then reads its
own slice only, so the whole run costs records + rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from embedpipe.publish.metadata import Joiner
from embedpipe.store.atomic import atomic_path

# Per key, beside the kind's columns: matched a record row, a study row; follows the kind's naming;
# judged to name no one (null where the kind has no such test).
FLAGS = [pa.field(name, pa.bool_()) for name in ("_record", "_study", "_parses", "_judges")]
_META = b"embedpipe_joined"


def write_joined(joiner: Joiner, keys: Iterable[str], path: Path) -> int:
    """The slice of one shard: the kind's columns and FLAGS for each key, in manifest order."""
    names = [f.name for f in joiner.fields]
    columns: dict[str, list[Any]] = {name: [] for name in [*names, *(f.name for f in FLAGS)]}
    for key in keys:
        records, studies = joiner.matched_records, joiner.matched_studies
        row = joiner.rows([key])  # one key at a time: which of them matched is the slice's to record
        for name in names:
            columns[name].append(row[name][0])
        columns["_record"].append(joiner.matched_records > records)
        columns["_study"].append(joiner.matched_studies > studies)
        columns["_parses"].append(None if joiner.parses is None else joiner.parses(key))
        columns["_judges"].append(None if joiner.judges is None else joiner.judges(key))
    about = {"kind": joiner.kind, "naming": joiner.naming, "key_column": joiner.key_column,
             "identifying": list(joiner.identifying), "parses": joiner.parses is not None,
             "judges": joiner.judges is not None}
    schema = pa.schema([*joiner.fields, *FLAGS], metadata={_META: json.dumps(about).encode()})
    table = pa.table({f.name: pa.array(columns[f.name], f.type) for f in schema}, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return table.num_rows


class JoinedSlice:
    """A Joiner over one shard's slice: the rows the `joined` rule joined, looked up by key. A key the
    slice lacks means the slice was made from another manifest: an error, never a row without metadata."""

    def __init__(self, path: Path) -> None:
        table = pq.read_table(path)
        about = json.loads((table.schema.metadata or {})[_META])
        self.path, self.kind, self.naming = path, about["kind"], about["naming"]
        self.key_column, self.identifying = about["key_column"], tuple(about["identifying"])
        flag_names = {f.name for f in FLAGS}
        self.fields = [f.remove_metadata() for f in table.schema if f.name not in flag_names]
        self.table = table.select([f.name for f in self.fields])
        keys = table.column(self.key_column).to_pylist()
        self.row_of = {key: i for i, key in enumerate(keys)}
        self._record, self._study = table.column("_record").to_pylist(), table.column("_study").to_pylist()
        parses, judges = table.column("_parses").to_pylist(), table.column("_judges").to_pylist()
        self.parses = partial(self._flag, parses) if about["parses"] else None
        self.judges = partial(self._flag, judges) if about["judges"] else None
        self.matched_records = self.matched_studies = 0

    def _index(self, keys: list[str]) -> list[int]:
        if missing := [k for k in keys if k not in self.row_of]:
            raise ValueError(f"{self.path}: {len(missing)} keys are not in this joined slice, e.g. {missing[0]!r}; "
                             "it was made from another manifest: rerun the joined rule")
        return [self.row_of[k] for k in keys]

    def _flag(self, flags: list[bool], key: str) -> bool:
        return flags[self._index([key])[0]]

    def rows(self, keys: list[str]) -> dict[str, list[Any]]:
        index = self._index(keys)
        self.matched_records += sum(self._record[i] for i in index)
        self.matched_studies += sum(self._study[i] for i in index)
        return self.table.take(pa.array(index, pa.int64())).to_pydict()
