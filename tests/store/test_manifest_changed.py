"""A shard is out of date when its manifest's files changed, told by content, not by mtime (discover
gives every manifest a new mtime, and Snakemake checksums no manifest past 1 MB)."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
from support.integrity import write_shard

from embedpipe.extract.writer import ShardWriter
from embedpipe.store.made_with import keys_digest, manifest_changed


def test_a_shard_recording_its_manifest_s_digest_is_judged_by_it(tmp_path):
    keys = ["p10/a.mp4", "p10/b.mp4"]
    writer = ShardWriter(tmp_path / "parts", [pa.field("embedding", pa.list_(pa.float32(), 2))], "fp")
    writer.add_rows(keys, {"embedding": np.ones((2, 2), np.float32)})
    shard = tmp_path / "p10.parquet"
    writer.finalize(keys, shard, tmp_path / "p10.errors.parquet", {"manifest_sha1": keys_digest(keys)})
    manifest = tmp_path / "p10.txt"
    manifest.write_text("p10/a.mp4\np10/b.mp4\n")
    os.utime(manifest, ns=(shard.stat().st_mtime_ns + 10**9,) * 2)  # rewritten by a rescan: newer
    assert not manifest_changed(str(shard), str(manifest))
    manifest.write_text("p10/a.mp4\np10/b.mp4\np10/c.mp4\n")
    assert manifest_changed(str(shard), str(manifest))


def test_a_shard_made_before_digests_is_judged_by_its_keys(tmp_path):
    write_shard(tmp_path, "p10", ["p10/a.mp4", "p10/b.mp4"], ["p10/broken.mp4"])  # writes p10.txt too
    shard, manifest = tmp_path / "p10.parquet", tmp_path / "p10.txt"
    os.utime(manifest, ns=(shard.stat().st_mtime_ns + 10**9,) * 2)
    assert not manifest_changed(str(shard), str(manifest))  # newer, same files: not embedded again
    manifest.write_text("p10/a.mp4\np10/broken.mp4\n")  # b.mp4 removed
    assert manifest_changed(str(shard), str(manifest))
