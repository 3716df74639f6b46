"""The image demo through Snakemake: DeepEarth metadata, tokens beside the Parquet, the .pt export."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from support.workflow import REPO, planned_settings, snakemake

from embedpipe.extract.writer import ShardWriter
from embedpipe.publish.kinds.deepearth.join import parse_deepearth_name
from embedpipe.store.sidecar import read_tensor, sidecar_path

CONFIG = str(REPO / "config" / "demo_image.yaml")


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("image-demo")
    snakemake(work, "--cores", "2", "--configfile", CONFIG)
    snakemake(work, "export_pt", "--cores", "2", "--configfile", CONFIG)
    return work / "results" / "demo-image"


def test_deepearth_names_parse_into_ids():
    row = parse_deepearth_name("taxon_2650927/gbif_1291162453_taxon_2650927_nephrolepis_exaltata_img_2.jpg")
    assert row == {"file_path": "taxon_2650927/gbif_1291162453_taxon_2650927_nephrolepis_exaltata_img_2.jpg",
                   "gbif_id": 1291162453, "taxon_id": 2650927, "species": "nephrolepis_exaltata",
                   "image_number": 2, "image_id": "gbif_1291162453_taxon_2650927_nephrolepis_exaltata_img_2"}
    other = parse_deepearth_name("taxon_77/IMG_0001.JPG")
    assert other["taxon_id"] == 77 and other["gbif_id"] is None and other["image_id"] == "IMG_0001"


def test_dataset_rows_carry_deepearth_metadata_and_their_tokens(image_run):
    files = sorted((image_run / "parquet").glob("train-*.parquet"))
    assert len(files) == 3  # one per taxon folder
    table = pq.read_table(files[0])
    assert table.column_names[:6] == ["file_path", "gbif_id", "taxon_id", "species", "image_number", "image_id"]
    assert set(table.column("taxon_id").to_pylist()) == {2650927}
    assert table.schema.field("spatial").type == pa.list_(pa.list_(pa.list_(pa.float16(), 32), 4), 4)
    assert table.schema.field("temporal").type == pa.list_(pa.list_(pa.float32(), 32), 8)
    for row in table.to_pylist():
        tokens = read_tensor(files[0], row["tokens_file"], row["file_path"])
        assert tokens.shape == (8, 4, 4, 32) and tokens.dtype == np.float16
        np.testing.assert_allclose(tokens.astype(np.float32).mean(axis=0), np.asarray(row["spatial"]), atol=2e-3)
    # Every photo is a row or an error row; the truncated JPEG is the only error.
    errors = [pq.read_table(p) for p in sorted((image_run / "embeddings").glob("*.errors.parquet"))]
    assert [k for e in errors for k in e.column("key").to_pylist()] == [
        "taxon_2650927/gbif_1291169999_taxon_2650927_nephrolepis_exaltata_img_1.jpg"]
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    manifests = sum(len(p.read_text().split()) for p in (image_run / "manifests").glob("*.txt"))
    assert rows + 1 == manifests == 19
    arrays = json.loads((image_run / "validation" / "metrics.json").read_text())["arrays"]  # validate read them all
    assert {c: (a["rows"], a["nonfinite_rows"], a["wrong_shape_rows"]) for c, a in arrays.items()} == {
        "temporal": (18, 0, 0), "spatial": (18, 0, 0), "tokens": (18, 0, 0)}
    card = (image_run / "parquet" / "README.md").read_text()
    assert "`tokens_file` names a safetensors file" in card and "`[8, 4, 4, 32]` (t, i, j, feature)" in card


def test_pt_export_has_deepearth_keys_and_layout(image_run):
    shard = image_run / "embeddings" / "taxon_2651707.parquet"
    rows = pq.read_table(shard).to_pylist()
    out = image_run / "export" / "deepearth_pt" / "taxon_2651707"
    assert len(list(out.glob("*_features.pt"))) == len(rows) == 6
    for row in rows:
        stem = row["key"].split("/")[-1].split(".")[0]
        doc = torch.load(out / f"{stem}_features.pt")
        assert set(doc) == {"features", "shape", "dtype", "source_chunk", "image_id"}
        assert doc["features"].shape == doc["shape"] == torch.Size([8 * 4 * 4, 32])
        assert doc["features"].dtype == torch.float16 and doc["dtype"] == "float16"
        assert doc["image_id"] == stem and doc["source_chunk"].endswith(".safetensors")
        # DeepEarth's view(8, 24, 24, 1408) — here (8, 4, 4, 32) — is the grid embedpipe stored
        grid = read_tensor(shard, row["tokens_file"], row["key"])
        assert torch.equal(doc["features"].view(8, 4, 4, 32), torch.from_numpy(grid))


def test_a_sidecar_without_its_part_is_removed_and_rewritten(tmp_path):
    fields = [pa.field("embedding", pa.list_(pa.float32(), 2)), pa.field("tokens", pa.list_(pa.float16(), 3))]
    w = ShardWriter(tmp_path / "parts", fields, "fp", save_every=1, sidecar=("tokens",))
    w.add_rows(["a"], {"embedding": np.ones((1, 2), np.float32), "tokens": np.ones((1, 3), np.float16)})
    w.maybe_flush()
    part = w.part_paths()[0]
    assert sidecar_path(part, "tokens").is_file()
    # A kill after the sidecar's rename and before the part's: the sidecar alone is not a part.
    shutil.copy(sidecar_path(part, "tokens"), tmp_path / "parts" / "part-000001.tokens.safetensors")
    again = ShardWriter(tmp_path / "parts", fields, "fp", save_every=1, sidecar=("tokens",))
    assert not (tmp_path / "parts" / "part-000001.tokens.safetensors").exists()
    assert again.completed_keys() == {"a"}
    n, _ = again.finalize(["a"], tmp_path / "s.parquet", tmp_path / "e.parquet", {})
    assert n == 1 and read_tensor(tmp_path / "s.parquet", "s.tokens/part-000000.safetensors", "a").tolist() == [1, 1, 1]
    # Finalizing twice (a rerun after a kill before the shard file landed) republishes in place.
    again.finalize(["a"], tmp_path / "s.parquet", tmp_path / "e.parquet", {})
    assert pq.read_table(tmp_path / "s.parquet").column("tokens_file").to_pylist() == [
        "s.tokens/part-000000.safetensors"]


def test_exports_refuse_runs_without_tokens(demo_run):
    proc = snakemake(demo_run, "export_pt", "--cores", "1", "--configfile", str(REPO / "config" / "demo.yaml"),
                     check=False)
    assert proc.returncode != 0 and "encoder.outputs" in proc.stdout + proc.stderr


def test_deepearth_example_plans_a_job_per_taxon_and_checks_outputs(tmp_path):
    images = tmp_path / "images"
    for taxon in ("taxon_1", "taxon_2"):
        (images / taxon).mkdir(parents=True)
    example = str(REPO / "config" / "examples" / "deepearth_images.yaml")
    plan = snakemake(tmp_path, "-np", "export_pt", "--configfile", example, "--config", f"input_dir={images}")
    for taxon in ("taxon_1", "taxon_2"):
        assert f"shard={taxon}" in plan.stdout
    assert {job["part_mb"] for job in planned_settings(plan.stdout, "extract.py")} == {2048}
    assert "--target=export_pt" in plan.stdout
    (tmp_path / "ecg.pth").write_bytes(b"not read by a dry run")
    bad = snakemake(tmp_path, "-n", "--configfile", example, "--config", f"input_dir={images}",
                    f"encoder={{'name': 'ecgfounder', 'path': '{tmp_path / 'ecg.pth'}', 'media': 'video'}}",
                    check=False)
    assert bad.returncode != 0 and "encoder.outputs" in bad.stdout + bad.stderr
