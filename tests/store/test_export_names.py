"""Hostile keys and names (issue 32, items 1 and 5): no key, model name or shard folder writes outside
the folder it belongs in, and no two keys of a one-file-per-key export share a file."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.workflow import REPO, run_script, snakemake

from embedpipe.encoders import OptionError, family
from embedpipe.store.export_names import ExportError, inside, unique_names


def ecg_shard(path, keys):
    """A shard as extract writes it, as far as export_ecg_json reads it: the key and a [T, C] map."""
    frames = [[[float(i), float(i) + 0.5]] for i in range(len(keys))]
    pq.write_table(pa.table({"key": keys, "features": frames}), path)
    return path


def photo_shard(folder, shard, keys):
    """A shard with its token sidecar, as far as export_pt reads them: one [1, 2, 2, 3] grid per key."""
    import torch
    from safetensors.torch import save_file

    save_file({k: torch.full((1, 2, 2, 3), float(i), dtype=torch.float16) for i, k in enumerate(keys)},
              folder / f"{shard}.tokens.safetensors")
    pq.write_table(pa.table({"key": keys, "tokens_file": [f"{shard}.tokens.safetensors"] * len(keys)}),
                   folder / f"{shard}.parquet")
    return folder / f"{shard}.parquet"


def written(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_a_listed_path_with_dot_dot_is_a_counted_exclusion_not_a_key(tmp_path):
    from datasets import Dataset

    data = tmp_path / "cohort"
    (data / "p1").mkdir(parents=True)
    (data / "p1" / "deid_3.xml").write_text("<x/>")
    hostile = ["../../escape/deid_3.xml", "p1/./deid_3.xml", "p1//deid_3.xml", "/abs/../etc/deid_3.xml"]
    Dataset.from_dict({"ecg_paths": [["p1/deid_3.xml", *hostile]]}).save_to_disk(tmp_path / "hfds")
    run_script("discover.py", "--input_dir", data, "--manifest_dir", tmp_path / "manifests", "--extensions", ".xml",
               "--by", "hash", "--num_shards", "1", "--hf_dataset", tmp_path / "hfds",
               "--exclusions", tmp_path / "exclusions.json")
    assert (tmp_path / "manifests" / "shard-000.txt").read_text() == "p1/deid_3.xml\n"
    record = json.loads((tmp_path / "exclusions.json").read_text())
    assert sorted(record["excluded"]["unsafe_paths"]) == sorted(hostile) and record["num_excluded"] == 4


def test_export_ecg_json_refuses_a_key_that_would_write_outside_its_folder(tmp_path):
    # two deid_3 stems: each is named by its whole key, and the hostile one would climb out
    shard = ecg_shard(tmp_path / "shard-000.parquet", ["../../escape/deid_3.xml", "p1/deid_3.xml"])
    out = tmp_path / "run" / "export" / "ecgfounder_json"
    proc = run_script("export_ecg_json.py", "--out_dir", out, shard, check=False)
    assert proc.returncode == 1 and "key '../../escape/deid_3.xml'" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "escape").exists() and not (tmp_path / "run" / "escape").exists()
    assert not out.exists()  # nothing half-written either


def test_the_one_helper_refuses_every_way_out(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path)
    for name in ("../x.json", "/etc/x.json", "a//x.json", "./x.json", "", "link/x.json"):
        with pytest.raises(ExportError, match="key 'k'"):
            inside(tmp_path / "out", name, "k")
    assert inside(tmp_path / "out", "a/x.json", "k") == tmp_path / "out" / "a" / "x.json"
    with pytest.raises(ExportError, match="keys 'a.xml' and '/a.xml'"):
        unique_names(["a.xml", "/a.xml", "b/a.xml"], lambda k: k.rsplit("/", 1)[-1].split(".")[0], ".json")


def test_export_ecg_json_keeps_the_scripts_name_where_unique_and_the_whole_key_where_two_collide(tmp_path):
    keys = ["p1/rec.hea", "p1/rec.xml", "p2/deid_3.xml", "p3/other.xml", "p4/other.xml"]
    out = tmp_path / "ecgfounder_json"
    proc = run_script("export_ecg_json.py", "--out_dir", out, ecg_shard(tmp_path / "s.parquet", keys))
    assert written(out) == ["deid_3.json", "p1/rec.hea.json", "p1/rec.xml.json", "p3/other.xml.json",
                            "p4/other.xml.json"]
    assert json.loads((out / "p1" / "rec.xml.json").read_text())["embedding"] == [[1.0, 1.5]]
    assert "5 files" in proc.stderr + proc.stdout


def test_export_pt_writes_one_file_per_photo_when_stems_collide(tmp_path):
    import torch

    keys = ["taxon_1/x.jpg", "taxon_1/x.png", "taxon_1/a/y.jpg", "taxon_1/b/y.jpg", "taxon_1/gbif_9_img_1.jpg"]
    out = tmp_path / "export" / "taxon_1"
    proc = run_script("export_pt.py", "--out_dir", out, photo_shard(tmp_path, "taxon_1", keys))
    assert written(out) == ["a/y.jpg_features.pt", "b/y.jpg_features.pt", "gbif_9_img_1_features.pt",
                            "x.jpg_features.pt", "x.png_features.pt"]
    saved = torch.load(out / "x.png_features.pt")
    assert saved["image_id"] == "x.png" and saved["features"].shape == (4, 3) and float(saved["features"][0, 0]) == 1
    assert torch.load(out / "gbif_9_img_1_features.pt")["image_id"] == "gbif_9_img_1"  # the DeepEarth name kept
    assert "5 files" in proc.stderr + proc.stdout


@pytest.mark.parametrize("model", ["../x", "a/b", "{shard}", "", ".hidden"])
def test_encoder_model_must_be_a_plain_name(model):
    with pytest.raises(OptionError) as err:
        family("metis").options({"model": model})
    assert err.value.key == "encoder.model"


@pytest.mark.workflow
def test_an_encoder_model_that_is_a_path_stops_the_run_naming_the_key(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("encoder:\n  model: ../x\n")
    proc = snakemake(tmp_path, "-n", "merge_all", "--configfile", str(REPO / "config" / "demo_audio.yaml"),
                     str(overlay), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "config key 'encoder.model': '../x' must be a plain name" in out
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*embeddings_all*"))
