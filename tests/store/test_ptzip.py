"""merge_all's .pt written without torch: torch.load reads exactly what torch.save would have written."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from embedpipe.store.key_hashes import repeated_keys
from embedpipe.store.merge import merge_all
from embedpipe.store.ptzip import TensorDictWriter, _int


def test_streamed_pt_equals_torch_save_of_the_same_dict(tmp_path):
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((1203, 24)).astype(np.float32)
    keys = [f"p1{i % 3}/p{i:08d}/s{i}/ünïcode {i}.mp4" for i in range(len(matrix))]
    with TensorDictWriter(tmp_path / "ours.pt", *matrix.shape) as writer:
        for start in range(0, len(matrix), 500):  # rows arrive in batches, as shards are read
            writer.write(matrix[start:start + 500])
        writer.close(keys)
    reference = torch.from_numpy(matrix.copy())
    torch.save({k: reference[i] for i, k in enumerate(keys)}, tmp_path / "torch.pt")
    theirs = torch.load(tmp_path / "torch.pt")
    for kwargs in ({}, {"mmap": True}, {"weights_only": False}):
        ours = torch.load(tmp_path / "ours.pt", **kwargs)
        assert list(ours) == list(theirs)
        for k in keys[:50] + keys[-50:]:
            assert torch.equal(ours[k], theirs[k]) and ours[k].dtype == torch.float32 and ours[k].shape == (24,)
        # one storage behind every row, as torch.save writes a dict of views of one matrix
        assert len({ours[k].untyped_storage().data_ptr() for k in keys}) == 1


@pytest.mark.parametrize("value", [0, 255, 256, 2**31 - 1, 2**31, 2**40 + 7, -5])
def test_offsets_beyond_int32_are_pickled_exactly(value):
    # A 2-million-row ViT-g merge has offsets past 2^31: they need LONG1, not BININT.
    assert pickle.loads(b"\x80\x02" + _int(value) + b".") == value


def test_merge_refuses_duplicate_keys_and_leaves_no_output(tmp_path):
    schema = pa.schema([("key", pa.string()), ("embedding", pa.list_(pa.float32(), 2))])
    for shard in ("a", "b"):
        table = pa.table({"key": ["same"], "embedding": [[1.0, 2.0]]}, schema=schema)
        pq.write_table(table, tmp_path / f"{shard}.parquet")
    with pytest.raises(ValueError, match="duplicate keys"):
        merge_all([tmp_path / "a.parquet", tmp_path / "b.parquet"], tmp_path / "m.pt", tmp_path / "m.npy",
                  tmp_path / "m.keys.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "b.parquet"]


def test_the_duplicate_check_compares_keys_whose_hashes_collide_as_text():
    collide = [np.array([hash("a"), hash("a"), hash("c")], np.int64)]  # as if "b" hashed like "a"
    assert list(repeated_keys(collide, ["a", "b", "c"])) == []
    twice = [np.array([hash("a"), hash("b")], np.int64), np.array([hash("a"), hash("a")], np.int64)]
    assert list(repeated_keys(twice, ["a", "b", "a", "a"])) == ["a", "a"]


def test_a_pt_with_fewer_keys_than_rows_is_refused(tmp_path):
    with (pytest.raises(ValueError, match="3 rows declared and written, 2 keys"),
          TensorDictWriter(tmp_path / "x.pt", 3, 2) as writer):
        writer.write(np.zeros((3, 2), np.float32))
        writer.close(iter(["a", "b"]))
