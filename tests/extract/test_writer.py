from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedpipe.extract.writer import ShardWriter
from embedpipe.store.footer import read_provenance

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
    assert read_provenance(tmp_path / "s.parquet") == {"model": "m"}


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


def test_parts_also_flush_by_bytes_so_large_rows_do_not_pile_up(tmp_path):
    fields = [pa.field("tokens", pa.list_(pa.float16(), 1000))]
    w = ShardWriter(tmp_path / "parts", fields, "fp1", save_every=10_000, part_bytes=5_000)
    for i in range(5):  # 2,000 bytes a row: a part every third row
        w.add_rows([f"k{i}"], {"tokens": np.full((1, 1000), i, np.float16)})
        w.maybe_flush()
    assert len(w.part_paths()) == 1
    assert w.pending == 2
    assert pq.read_table(w.part_paths()[0]).column("key").to_pylist() == ["k0", "k1", "k2"]


def test_streaming_assembly_equals_manifest_order_across_parts_and_row_groups(tmp_path):
    # Rows embedded in reverse order over many parts; assembled in chunks far smaller than the shard.
    fields = [pa.field("embedding", pa.list_(pa.float32(), 3)),
              pa.field("tokens", pa.list_(pa.list_(pa.float16(), 4), 2))]
    w = ShardWriter(tmp_path / "parts", fields, "fp1", save_every=7)
    keys = [f"f{i:03d}" for i in range(50)]
    for i in reversed(range(50)):
        if i % 9 == 4:
            w.add_error(keys[i], "decode", "OSError", f"bad {i}")
        else:
            w.add_rows([keys[i]], {"embedding": np.full((1, 3), i, np.float32),
                                   "tokens": np.arange(8, dtype=np.float16).reshape(1, 2, 4) + i})
        w.maybe_flush()
    w.flush()
    # A part written twice around a crash: the first copy wins, nothing is duplicated.
    first = w.part_paths()[0]
    (first.parent / "part-000099.parquet").write_bytes(first.read_bytes())
    assert len(w.part_paths()) == 9
    from embedpipe.extract.assemble import assemble_shard

    n, e = assemble_shard(w.part_paths(), keys, fields, tmp_path / "s.parquet", tmp_path / "e.parquet",
                          {"run": "x"}, memory_bytes=400)
    assert (n, e) == (44, 6)
    t = pq.read_table(tmp_path / "s.parquet")
    good = [i for i in range(50) if i % 9 != 4]
    assert t.column("key").to_pylist() == [keys[i] for i in good]
    assert [r[0] for r in t.column("embedding").to_pylist()] == good
    tokens = np.asarray(t.column("tokens").to_pylist(), dtype=np.float16)
    assert tokens.shape == (44, 2, 4)
    assert np.array_equal(tokens[:, 1, 3], np.array(good, np.float16) + 7)
    assert t.schema.field("tokens").type == fields[1].type
    assert pq.ParquetFile(tmp_path / "s.parquet").metadata.num_row_groups > 1
    errors = pq.read_table(tmp_path / "e.parquet")
    assert errors.column("key").to_pylist() == [keys[i] for i in range(50) if i % 9 == 4]
    assert errors.column("message").to_pylist()[0] == "bad 4"
    assert read_provenance(tmp_path / "s.parquet") == {"run": "x"}


def test_a_killed_safetensors_write_leaves_nothing_after_the_next_start(tmp_path):
    """safetensors saves through its own `.tmpXXXXXX` file beside the target; SIGKILL it mid-save
    (as a preempted job would be while saving a part's tokens) and the next writer removes it."""
    parts = tmp_path / "parts"
    parts.mkdir()
    child = multiprocessing.get_context("fork").Process(target=save_large_safetensors, args=(parts / "t.safetensors",))
    child.start()
    deadline = time.monotonic() + 60
    while not (leftover := [p for p in parts.iterdir() if p.name != "t.safetensors"]) and child.is_alive():
        if time.monotonic() > deadline:
            break
        time.sleep(0.0005)
    child.kill()
    child.join()
    if not leftover:
        pytest.skip("this safetensors version wrote no temporary file beside its target")
    assert [p.name for p in parts.iterdir()] == [p.name for p in leftover]  # killed before its rename
    ShardWriter(parts, FIELDS, "fp1")
    assert list(parts.iterdir()) == []


def save_large_safetensors(path) -> None:
    from safetensors.numpy import save_file

    save_file({"tokens": np.ones((1024, 1024, 256), dtype=np.uint8)}, str(path))  # 256 MiB: long enough to catch


def test_a_list_column_whose_every_item_is_empty_keeps_its_type():
    from embedpipe.extract.writer import to_arrow

    for typ in (pa.list_(pa.string()), pa.list_(pa.float32())):
        column = to_arrow([[], []], typ)
        assert column.type == typ and column.to_pylist() == [[], []]
    mixed = to_arrow([[], ["III", "aVR"]], pa.list_(pa.string()))
    assert mixed.to_pylist() == [[], ["III", "aVR"]]


def test_parts_without_a_column_this_job_writes_are_discarded_not_assembled(tmp_path):
    """A part an older embedpipe wrote (no file identity columns) under the same fingerprint."""
    old = ShardWriter(tmp_path / "parts", [pa.field("embedding", pa.list_(pa.float32(), 2))], "fp", save_every=2)
    old.add_rows(["a", "b"], {"embedding": np.ones((2, 2), np.float32)})
    old.flush()
    assert len(old.part_paths()) == 1
    fields = [pa.field("embedding", pa.list_(pa.float32(), 2)), pa.field("file_size", pa.int64())]
    now = ShardWriter(tmp_path / "parts", fields, "fp", save_every=2)
    assert now.part_paths() == [] and now.completed_keys() == set()
