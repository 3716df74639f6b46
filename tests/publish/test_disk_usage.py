"""What a run keeps on disk: two copies of each embedding (the shard file and the dataset file), the
published folder and the token sidecars as hard links, and the card's Disk section matching the files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from embedpipe.extract.writer import ShardWriter
from embedpipe.publish.dataset_folder import CARD_NAME, build_dataset_folder
from embedpipe.publish.disk_usage import RunFiles, disk_section, matrix_shape, measure, ratio
from embedpipe.publish.kinds import build_joiner
from embedpipe.publish.staged import write_dataset_shard
from embedpipe.store.merge import merge_all

DIM = 1024
TOKENS = pa.field("tokens", pa.list_(pa.list_(pa.float16(), 8), 4))


def build_run(run: Path, rows: int, shards: int = 2, tokens: bool = False) -> RunFiles:
    """A run's outputs as its rules write them: extract's ShardWriter, staged, and the parquet rule's
    folder with the Disk section in its card (no merged file: a plain run's)."""
    rng = np.random.default_rng(0)
    fields = [pa.field("embedding", pa.list_(pa.float32(), DIM))] + ([TOKENS] if tokens else [])
    files = RunFiles([], [], [], [run / "m_embeddings_all.pt", run / "m_embeddings_all.npy"])
    for s in range(shards):
        shard = f"p{10 + s}"
        writer = ShardWriter(run / "parts" / shard, fields, "fp", sidecar=("tokens",) if tokens else ())
        keys = [f"{shard}/{i:05d}.mp4" for i in range(rows // shards)]
        outputs = {"embedding": rng.standard_normal((len(keys), DIM), dtype=np.float32)}
        if tokens:
            outputs["tokens"] = rng.standard_normal((len(keys), 4, 8)).astype(np.float16)
        half = len(keys) // 2
        for part in (slice(0, half), slice(half, None)):  # two parts
            writer.add_rows(keys[part], {name: values[part] for name, values in outputs.items()})
            writer.flush()
        files.shards.append(run / "embeddings" / f"{shard}.parquet")
        files.errors.append(run / "embeddings" / f"{shard}.errors.parquet")
        files.shards[-1].parent.mkdir(parents=True, exist_ok=True)
        writer.finalize(keys, files.shards[-1], files.errors[-1], {"encoder": "synthetic", "embedding_dim": DIM})
        writer.remove_parts()
        files.staged.append(run / "staged" / f"{shard}.parquet")
        write_dataset_shard(files.shards[-1], files.staged[-1], build_joiner("none", {}), {"shard": shard})
    build_dataset_folder(files.staged, run / "parquet", lambda published: disk_section(
        measure(files, published[0].parent), *matrix_shape(files.staged)))
    return files


def du(paths: list[Path]) -> tuple[int, int]:
    """(files, bytes) of every file below `paths` (or the files themselves), stat'ed here."""
    found = [p for path in paths for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()]
    return len(found), sum(p.stat().st_size for p in found)


def card_rows(card: str) -> dict[str, list[int]]:
    """The Disk table's numbers by label: files, bytes, shared, own."""
    rows = {}
    for line in card.splitlines():
        if line.startswith("| `") or line.startswith("| total"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = [int(c.replace(",", "")) if c else 0 for c in cells[1:]]
    return rows


def test_a_plain_run_keeps_two_copies_and_its_card_counts_the_files_on_disk(tmp_path):
    run = tmp_path / "run"
    files = build_run(run, rows=2000)
    assert not list(run.glob("*_embeddings_all*")) and not list((run / "parts").iterdir())  # no merged file
    # the published dataset files are the staged files, hard-linked: the same inodes
    for i, staged in enumerate(files.staged):
        published = run / "parquet" / f"train-{i:05d}-of-00002.parquet"
        assert published.stat().st_ino == staged.stat().st_ino and staged.stat().st_nlink == 2
    card = (run / "parquet" / CARD_NAME).read_text()
    rows = card_rows(card)
    assert rows["`embeddings/`"][:2] == list(du([run / "embeddings"])) and rows["`embeddings/`"][2] == 0
    assert rows["`staged/`"][:2] == list(du([run / "staged"])) and rows["`staged/`"][2] == 0
    dataset = du([p for p in (run / "parquet").iterdir() if p.name != CARD_NAME])
    assert rows["`parquet/` (without this card)"] == [*dataset, dataset[1], 0]  # every byte shared with staged/
    assert rows["total"][-1] == du([run / "embeddings", run / "staged"])[1]
    # two copies of each vector, Parquet framing and the keys on top: ≤ 2× the float32 matrix
    matrix = 2000 * DIM * 4
    on_disk = rows["total"][-1]
    assert on_disk <= 2.02 * matrix
    shown = float(re.search(r"\*\*([\d.]+)×\*\*", card).group(1))
    assert f"(2,000 × {DIM} × 4 = {matrix:,} bytes)" in card and shown == round(on_disk / matrix, 2)


def test_token_sidecars_are_one_copy_hard_linked_through_staged_and_parquet(tmp_path):
    run = tmp_path / "run"
    files = build_run(run, rows=40, tokens=True)
    for shard in ("p10", "p11"):
        made = sorted((run / "embeddings" / f"{shard}.tokens").glob("*.safetensors"))
        assert len(made) == 2  # two parts, each its sidecar
        for part in made:
            linked = [run / "staged" / "tokens" / shard / part.name, run / "parquet" / "tokens" / shard / part.name]
            assert {p.stat().st_ino for p in [part, *linked]} == {part.stat().st_ino}
    usage = {(u.label, u.sidecars): u for u in measure(files, run / "parquet")}
    sidecar_bytes = du(list(run.glob("embeddings/*.tokens")))[1]
    assert usage["embeddings/", True].own == sidecar_bytes and usage["embeddings/", True].files == 4
    assert usage["staged/", True].shared == usage["parquet/", True].shared == sidecar_bytes
    assert usage["staged/", True].own == usage["parquet/", True].own == 0
    assert "token sidecars, " + f"{sidecar_bytes:,}" in (run / "parquet" / CARD_NAME).read_text()


def test_merged_files_are_counted_where_they_exist_each_a_full_copy(tmp_path):
    run = tmp_path / "run"
    files = build_run(run, rows=200)
    merge_all(files.shards, files.merged[0])  # merge.formats' default: the .pt only
    assert not files.merged[1].exists()
    usage = measure(files, run / "parquet")
    pt = next(u for u in usage if u.label == "m_embeddings_all.pt")
    assert pt.own == files.merged[0].stat().st_size > 200 * DIM * 4
    assert all(u.label != "m_embeddings_all.npy" for u in usage)
    before = ratio([u for u in usage if u is not pt], 200, DIM)
    assert ratio(usage, 200, DIM) == pytest.approx(before + pt.own / (200 * DIM * 4))


def test_a_copy_where_a_link_was_expected_shows_as_bytes_of_its_own(tmp_path):
    run = tmp_path / "run"
    files = build_run(run, rows=100)
    published = run / "parquet" / "train-00000-of-00002.parquet"
    copy = published.read_bytes()
    published.unlink()
    published.write_bytes(copy)  # what a copy across filesystems leaves
    dataset = next(u for u in measure(files, run / "parquet") if u.label == "parquet/")
    assert dataset.own == len(copy) and os.stat(files.staged[0]).st_nlink == 1
