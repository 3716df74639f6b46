"""merge.formats: merge_all writes the .pt, the .npy with its key index, or both, each only when asked
(each is one more full copy of the embeddings); a merged file no longer asked for is removed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from support.workflow import run_script

from embedpipe.store.merge import load_merged, merge_all
from embedpipe.store.merge_settings import MergeOptions

SCHEMA = pa.schema([("key", pa.string()), ("embedding", pa.list_(pa.float32(), 3))])


@pytest.fixture
def shards(tmp_path):
    paths = []
    for s in range(2):
        rows = np.arange(12, dtype=np.float32).reshape(4, 3) + 100 * s
        table = pa.table({"key": [f"p{s}/{i}" for i in range(4)], "embedding": rows.tolist()}, schema=SCHEMA)
        paths.append(tmp_path / f"p{s}.parquet")
        pq.write_table(table, paths[-1])
    return paths


def test_the_default_is_the_pt_alone_and_npy_brings_its_key_index():
    assert MergeOptions().files() == ["pt"] and MergeOptions().in_default_run is False
    assert MergeOptions(formats=["npy"]).files() == ["npy", "index"]
    assert MergeOptions(formats=["npy", "pt"]).files() == ["pt", "npy", "index"]


def test_merge_all_writes_the_pt_alone(tmp_path, shards):
    out = tmp_path / "out"
    out.mkdir()
    assert merge_all(shards, out / "m.pt") == 8
    assert [p.name for p in out.iterdir()] == ["m.pt"]
    merged = torch.load(out / "m.pt", weights_only=True)
    assert list(merged) == [f"p{s}/{i}" for s in range(2) for i in range(4)]
    assert merged["p1/3"].tolist() == [109.0, 110.0, 111.0]


def test_merge_all_writes_the_npy_and_its_keys_alone(tmp_path, shards):
    out = tmp_path / "out"
    out.mkdir()
    merge_all(shards, None, out / "m.npy", out / "m.keys.txt")
    assert sorted(p.name for p in out.iterdir()) == ["m.keys.txt", "m.npy"]
    matrix, keys = load_merged(out / "m.npy", out / "m.keys.txt")
    assert matrix.shape == (8, 3) and keys[-1] == "p1/3" and matrix[-1].tolist() == [109.0, 110.0, 111.0]


def test_merge_all_refuses_no_output_and_a_matrix_without_its_index(tmp_path, shards):
    with pytest.raises(ValueError, match="nothing to merge into"):
        merge_all(shards, None)
    with pytest.raises(ValueError, match="written together"):
        merge_all(shards, None, tmp_path / "m.npy")
    assert not list(tmp_path.glob("m.*"))


def test_the_script_writes_what_it_is_given_and_removes_merged_files_no_longer_asked_for(tmp_path, shards):
    out = tmp_path / "out"
    out.mkdir()
    run_script("merge_all.py", "--shards", *shards, "--pt", out / "m.pt", "--npy", out / "m.npy",
               "--keys", out / "m.keys.txt")
    assert sorted(p.name for p in out.iterdir()) == ["m.keys.txt", "m.npy", "m.pt"]
    # merge.formats back to [pt]: the rule passes the others to --remove, so none is left stale
    done = run_script("merge_all.py", "--shards", *shards, "--pt", out / "m.pt", "--remove", out / "m.npy",
                      out / "m.keys.txt")
    assert [p.name for p in out.iterdir()] == ["m.pt"] and "no longer asks for it" in done.stderr
    refused = run_script("merge_all.py", "--shards", *shards, "--npy", out / "m.npy", check=False)
    assert refused.returncode == 2 and "--npy and --keys go together" in refused.stderr
