#!/usr/bin/env python
"""The demo's rows, as one digest per table: a refactor must leave every one of them unchanged.

    python bench/demo_rows.py results > before.json      # on the old commit, after `make demo`
    python bench/demo_rows.py results > after.json       # on the new one
    python bench/demo_rows.py results --against before.json

Every `results/*/embeddings/*.parquet` (shards and error tables) and every table under
`results/*/parquet/` is read whole; its rows (all columns, in order) are hashed, its schema metadata
is not: the footer records a run's clock times, hosts and the embedpipe version, which differ by
design. A table whose rows differ, or that exists on one side only, is printed and fails the run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def table_digest(path: Path) -> str:
    table = pq.read_table(path).combine_chunks()
    table = table.replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        for batch in table.to_batches():
            stream.write_batch(batch)
    digest = hashlib.sha256(sink.getvalue().to_pybytes())
    return f"{table.num_rows} rows {digest.hexdigest()[:32]}"


def digests(results: Path) -> dict[str, str]:
    paths = sorted(results.glob("*/embeddings/*.parquet")) + sorted(results.glob("*/parquet/**/*.parquet"))
    return {str(p.relative_to(results)): table_digest(p) for p in paths}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the results folder of `make demo`")
    parser.add_argument("--against", type=Path, help="a digest file from before the change")
    args = parser.parse_args()
    now = digests(args.results)
    if args.against is None:
        json.dump(now, sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    before = json.loads(args.against.read_text())
    differ = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    for name in differ:
        print(f"DIFFERS {name}: before {before.get(name, 'absent')}, now {now.get(name, 'absent')}")
    print(f"{len(now)} tables, {len(now) - len(differ)} identical, {len(differ)} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
