"""Which rows of a shard's previous version a new run of the shard reuses (extract/reuse.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedpipe.extract.reuse import Previous, keep_previous, previous_dir, reuse_previous
from embedpipe.extract.writer import ShardWriter
from embedpipe.store.file_identity import file_identity, identity_fields
from embedpipe.store.sidecar import read_tensor

DIM = 4
VALUES = [pa.field("embedding", pa.list_(pa.float32(), DIM)), pa.field("frames_decoded", pa.int32())]
TOKENS = pa.field("tokens", pa.list_(pa.float16()))  # a sidecar column: its values live in safetensors files
MADE_WITH = {"encoder.num_frames": 8}
PACKAGES = {"embedpipe": "0.1", "torch": "2.5.1"}


def vector(key: str) -> np.ndarray:
    return np.random.default_rng(abs(hash(key)) % 2**32).normal(size=DIM).astype(np.float32)


def tokens(key: str) -> np.ndarray:
    return np.full((2, 3), len(key), np.float16)


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "input"
    keys = [f"p10/f{i}.mp4" for i in range(6)]
    for i, key in enumerate(keys):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(bytes(100 + i))
    return root, keys


def make_shard(root: Path, keys: list[str], parts: Path, *, fingerprint: str = "fp", identity: bool = True) -> Path:
    """A finished shard as the extract job leaves it, kept in <parts>.previous/; rows' facts stat'd now."""
    fields = [*VALUES, TOKENS] + (identity_fields() if identity else [])
    w = ShardWriter(parts, fields, fingerprint, save_every=2, sidecar=("tokens",))
    facts = [file_identity(root / k) for k in keys]
    outputs = {"embedding": np.stack([vector(k) for k in keys]), "frames_decoded": np.arange(len(keys), dtype=np.int32),
               "tokens": [tokens(k) for k in keys]}
    if identity:
        outputs |= {n: [f[n] for f in facts] for n in ("file_size", "file_mtime_ns")}
    w.add_rows(keys, outputs)
    shard = parts.parent.parent / "embeddings" / "p10.parquet"
    shard.parent.mkdir(parents=True, exist_ok=True)
    rows, _ = w.finalize(keys, shard, shard.with_name("p10.errors.parquet"),
                         {"fingerprint": fingerprint, "made_with": MADE_WITH, "packages": PACKAGES})
    w.remove_parts()
    assert keep_previous(parts, shard, root, rows) == previous_dir(parts)
    for p in shard.parent.iterdir():  # what Snakemake deletes before the job: only the kept links are left
        if p.is_file():
            p.unlink()
    return shard


def rerun(root: Path, keys: list[str], parts: Path, *, fingerprint: str = "fp", input_dir: Path | None = None,
          packages: dict[str, str] = PACKAGES) -> tuple[int, str, ShardWriter]:
    fields = [*VALUES, TOKENS, *identity_fields()]
    w = ShardWriter(parts, fields, fingerprint, save_every=2, sidecar=("tokens",))
    wanted = Previous(fingerprint, MADE_WITH, os.path.realpath(input_dir or root), w.row_fields, packages)
    reused, why = reuse_previous(w, keys, root, wanted)
    return reused, why, w


def test_unchanged_files_are_reused_and_changed_new_or_removed_ones_are_not(inputs, tmp_path):
    root, keys = inputs
    parts = tmp_path / "results" / "parts" / "p10"
    make_shard(root, keys[:5], parts)
    (root / keys[1]).write_bytes(bytes(500))  # another size
    st = (root / keys[2]).stat()  # the same bytes, a newer modification time (1 ns is enough)
    os.utime(root / keys[2], ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    new = [keys[0], keys[1], keys[2], keys[3], keys[5]]  # keys[4] removed, keys[5] added
    reused, why, w = rerun(root, new, parts)
    assert (reused, why) == (2, "")
    assert w.completed_keys() == {keys[0], keys[3]}
    assert w.reused_rows(new) == 2 and w.reused_rows([keys[0]]) == 1
    assert len(w.part_paths()) == 1  # save_every 2: one part of the two rows
    out = tmp_path / "out" / "p10.parquet"
    out.parent.mkdir()
    embedded = [keys[1], keys[2], keys[5]]
    w.add_rows(embedded, {
        "embedding": np.stack([vector(k) for k in embedded]), "frames_decoded": np.array([1, 2, 5], np.int32),
        "tokens": [tokens(k) for k in embedded],
        **{n: [file_identity(root / k)[n] for k in embedded] for n in ("file_size", "file_mtime_ns")}})
    w.finalize(new, out, out.with_name("p10.errors.parquet"), {"fingerprint": "fp"})
    table = pq.read_table(out)
    assert table.column("key").to_pylist() == new  # manifest order, reused and new rows merged
    assert table.column("frames_decoded").to_pylist() == [0, 1, 2, 3, 5]
    for row in table.to_pylist():
        assert np.array_equal(np.array(row["embedding"], np.float32), vector(row["key"]))
        assert np.array_equal(read_tensor(out, row["tokens_file"], row["key"]), tokens(row["key"]))
        assert (row["file_size"], row["file_mtime_ns"]) == tuple(file_identity(root / row["key"]).values())


def test_a_rerun_after_a_kill_reuses_only_what_no_part_holds(inputs, tmp_path):
    root, keys = inputs
    parts = tmp_path / "results" / "parts" / "p10"
    make_shard(root, keys, parts)
    first, _, _ = rerun(root, keys[:3], parts)  # a job killed after its reused parts were written
    again, why, w = rerun(root, keys, parts)
    assert (first, again, why) == (3, 3, "")
    assert w.reused_rows(keys) == 6 and len(w.completed_keys()) == 6


@pytest.mark.parametrize(("change", "says"), [
    ("fingerprint", "made with another model, weights or preprocessing"),
    ("made_with", "made with another model, weights or preprocessing"),
    ("input_dir", "made from another input_dir"),
    ("packages", "made by other package versions (torch)"),
    ("no identity", "it records no file sizes and modification times (made by an earlier embedpipe)"),
    ("none kept", "none kept"),
])
def test_no_row_is_reused_from_a_shard_made_otherwise(inputs, tmp_path, change, says):
    root, keys = inputs
    parts = tmp_path / "results" / "parts" / "p10"
    shard = make_shard(root, keys, parts, identity=change != "no identity")
    if change == "made_with":  # the footer's settings, the fingerprint left as it was
        kept = previous_dir(parts) / shard.name
        table = pq.read_table(kept)
        meta = {b"embedpipe": table.schema.metadata[b"embedpipe"].replace(b'"encoder.num_frames": 8', b'"x": 1')}
        kept.unlink()
        pq.write_table(table.replace_schema_metadata(meta), kept)
    if change == "none kept":
        (previous_dir(parts) / "previous.json").unlink()
    other = tmp_path / "copy"
    reused, why, w = rerun(root, keys, parts, fingerprint="other" if change == "fingerprint" else "fp",
                           input_dir=other if change == "input_dir" else None,
                           packages=PACKAGES | {"torch": "2.6.0"} if change == "packages" else PACKAGES)
    assert reused == 0 and why.startswith(says), why
    assert w.part_paths() == []


def test_a_shard_without_rows_keeps_no_previous_version(inputs, tmp_path):
    root, keys = inputs
    parts = tmp_path / "parts" / "p10"
    make_shard(root, keys, parts)
    shard = tmp_path / "p10.parquet"
    pq.write_table(pa.table({"key": pa.array([], pa.string())}), shard)
    assert keep_previous(parts, shard, root, 0) is None
    assert not previous_dir(parts).exists()
