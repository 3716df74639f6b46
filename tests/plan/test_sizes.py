"""Bytes a row measured from a trial's few-row files: the fixed part (footers) is not multiplied."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedpipe.plan.sizes import ROWS, merged_file, parquet_bytes
from embedpipe.store.ptzip import TensorDictWriter


def table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    t = pa.table({"key": [f"p10/p{seed}/{i:06d}.mp4" for i in range(rows)],
                  "embedding": pa.array(list(rng.standard_normal((rows, 32)).astype("float32")),
                                        pa.list_(pa.float32(), 32))})
    # a provenance footer of some kilobytes, as the shard files carry
    return t.replace_schema_metadata({b"embedpipe": b'{"packages": "' + b"x" * 4000 + b'"}'})


def test_a_two_row_parquet_file_predicts_a_hundred_row_one(tmp_path):
    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    pq.write_table(table(2, 1), small, compression="zstd")
    pq.write_table(table(100, 2), large, compression="zstd")
    measured = parquet_bytes(small, "embeddings/", ROWS)
    assert measured.rows == 2 and measured.fixed > 4000  # the footer stays
    predicted = measured.fixed + 100 * measured.per_row
    actual = large.stat().st_size
    assert abs(predicted - actual) / actual < 0.05, (predicted, actual)
    naive = measured.size / 2 * 100  # size over rows: the footer fifty times
    assert naive > 2 * actual


def test_merge_alls_pt_measured_as_merge_all_writes_it(tmp_path):
    def pt(path, rows):
        with TensorDictWriter(path, rows, 32) as writer:
            writer.write(np.ones((rows, 32), "float32"))
            writer.close([f"p10/{i:06d}.mp4" for i in range(rows)])

    pt(tmp_path / "small.pt", 3)
    pt(tmp_path / "large.pt", 60)
    measured = merged_file(tmp_path / "small.pt")
    assert measured.rows == 3
    predicted = measured.fixed + 60 * measured.per_row
    actual = (tmp_path / "large.pt").stat().st_size
    assert abs(predicted - actual) / actual < 0.03, (predicted, actual)
