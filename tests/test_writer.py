from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedpipe.writer import ShardWriter, read_embedpipe_metadata

FIELDS = [pa.field("embedding", pa.list_(pa.float32(), 3))]


def emb(*values):
    return {"embedding": np.array(values, dtype=np.float32).reshape(-1, 3)}


def test_parts_are_written_every_save_every_rows_and_resume_skips_them(tmp_path):
    w = ShardWriter(tmp_path / "parts", FIELDS, "fp1", save_every=2)
    w.add_rows(["b"], emb(1, 2, 3))
    w.maybe_flush()
    assert w.part_paths() == []
    w.add_error("c", "decode", "RuntimeError", "bad file")
    w.maybe_flush()
    assert len(w.part_paths()) == 1
    again = ShardWriter(tmp_path / "parts", FIELDS, "fp1", save_every=2)
    assert again.completed_keys() == {"b", "c"}


def test_finalize_orders_by_manifest_and_splits_errors(tmp_path):
    w = ShardWriter(tmp_path / "parts", FIELDS, "fp1", save_every=100)
    w.add_rows(["c", "a"], emb(3, 3, 3, 1, 1, 1))
    w.add_error("b", "decode", "RuntimeError", "moov atom not found")
    n, e = w.finalize(["a", "b", "c"], tmp_path / "s.parquet", tmp_path / "s.errors.parquet", {"model": "m"})
    assert (n, e) == (2, 1)
    t = pq.read_table(tmp_path / "s.parquet")
    assert t.column("key").to_pylist() == ["a", "c"]
    assert t.schema.field("embedding").type == pa.list_(pa.float32(), 3)
    assert t.column("embedding").to_pylist() == [[1, 1, 1], [3, 3, 3]]
    assert pq.read_table(tmp_path / "s.errors.parquet").to_pylist() == [
        {"key": "b", "stage": "decode", "error_type": "RuntimeError", "message": "moov atom not found"}
    ]
    assert read_embedpipe_metadata(tmp_path / "s.parquet") == {"model": "m"}


def test_finalize_refuses_an_incomplete_shard(tmp_path):
    w = ShardWriter(tmp_path / "parts", FIELDS, "fp1")
    w.add_rows(["a"], emb(1, 1, 1))
    with pytest.raises(RuntimeError, match="1 manifest file"):
        w.finalize(["a", "b"], tmp_path / "s.parquet", tmp_path / "e.parquet", {})
    assert not (tmp_path / "s.parquet").exists()


def test_parts_of_another_model_are_discarded_and_temp_files_removed(tmp_path):
    w = ShardWriter(tmp_path / "parts", FIELDS, "old-model", save_every=1)
    w.add_rows(["a"], emb(1, 1, 1))
    w.maybe_flush()
    (tmp_path / "parts" / ".part-000001.parquet.tmp-123").write_bytes(b"half")
    fresh = ShardWriter(tmp_path / "parts", FIELDS, "new-model")
    assert fresh.completed_keys() == set()
    assert list((tmp_path / "parts").iterdir()) == []
