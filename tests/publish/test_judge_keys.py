"""No identifying data through a side door: the keys are judged whatever the declared metadata kind. A
kind that does not fit the file names stops the staged step; identifier shapes in any key make its
column identifying; paths nobody can judge are said to be so, and a public upload must name them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from support.upload import dataset_file
from support.workflow import REPO, run_script, snakemake

from embedpipe.extract.writer import ShardWriter
from embedpipe.publish.card import identifying_section
from embedpipe.publish.identifying import KeyScan, shapes_with
from embedpipe.publish.judge_keys import KindMismatch
from embedpipe.publish.kinds.deepearth.join import DeepEarthNames
from embedpipe.publish.kinds.mimic_iv_ecg.join import EcgRecordList
from embedpipe.publish.kinds.none.join import KeyOnly
from embedpipe.store.footer import read_provenance

MIMIC_KEYS = [f"p10/p1000003{i}/s5000000{i}/5000000{i}_0001.mp4" for i in range(6)]
PHOTOS = [f"taxon_{i}/gbif_{4000000000 + i}_taxon_{i}_Quercus_alba_img_1.jpg" for i in range(6)]


def footer(path: Path) -> tuple[list[str], list[str], dict[str, list[str]]]:
    meta = read_provenance(path)
    return meta["identifying_columns"], meta["unjudged_columns"], meta["identifier_shapes"]


@pytest.mark.parametrize(("key", "shapes"), [
    ("p10/p10000032/s50000001/50000001_0001.mp4", ["MIMIC subject/study ids"]),
    ("scans/1.2.840.113619.2.55.3.604688119.868.1234567890.123.dcm", ["DICOM UIDs"]),
    ("uid/2.25.329800735698586629295641978511506172918.dcm", ["DICOM UIDs"]),
    ("visits/2023-01-15/clip.wav", ["dates"]), ("rec_20230115.wav", ["dates"]), ("a/2019_12_31.jpg", ["dates"]),
    ("visit_15.01.2023.wav", ["dates"]), ("us/1-31-1999/a.wav", ["dates"]),
    ("net/10.0.0.1/a.wav", []), ("torch-2.1.0/a.wav", []),
    # long numbers and version-like names hold no date and no UID; the group folder p10 is no subject
    ("taxon_7/gbif_2019031234_taxon_7_Aa_bb_img_1.jpg", []), ("model.1.2.3.4/x.wav", []), ("p10/s1/a.wav", []),
    ("speaker1/20231345.wav", []),  # month 13
])
def test_identifier_shapes_are_found_in_any_key(key, shapes):
    scan = KeyScan(shapes_with([]))
    scan.add([key])
    assert sorted(scan.found) == shapes


def test_deepearth_on_mimic_paths_stops_the_parquet_step_and_writes_nothing(tmp_path):
    with pytest.raises(KindMismatch, match=r"^metadata\.kind: deepearth names 0 of 6 files in shard all \(e\.g\. "
                                           r"p10/p10000030/s50000000/50000000_0001\.mp4 is not gbif_<id>_taxon_"):
        dataset_file(tmp_path, tmp_path / "out.parquet", DeepEarthNames(), MIMIC_KEYS)
    assert not (tmp_path / "out.parquet").exists()
    # and the reverse: photo names under a MIMIC kind
    (tmp_path / "r.csv").write_text("subject_id,study_id,ecg_time,path\n")
    with pytest.raises(KindMismatch, match=r"mimic_iv_ecg names 0 of 6 files"):
        dataset_file(tmp_path, tmp_path / "out.parquet", EcgRecordList(str(tmp_path / "r.csv")), PHOTOS)


def test_a_few_names_outside_the_kind_pass_but_leave_the_paths_unjudged(tmp_path):
    out = dataset_file(tmp_path, tmp_path / "out.parquet", DeepEarthNames(), [*PHOTOS, "taxon_9/IMG_0001.jpg"])
    assert footer(out) == ([], ["file_path"], {})
    assert "`file_path`: file paths of unknown origin" in identifying_section([out])
    clean = dataset_file(tmp_path, tmp_path / "clean.parquet", DeepEarthNames(), PHOTOS)
    assert footer(clean) == ([], [], {})
    # DeepEarth names under a folder of someone's name: the names parse, the paths are not judged
    named = dataset_file(tmp_path, tmp_path / "named.parquet", DeepEarthNames(), [f"JaneDoe/{p}" for p in PHOTOS])
    assert footer(named) == ([], ["file_path"], {})


def test_identifier_shapes_make_the_key_column_identifying_whatever_the_kind(tmp_path):
    dated = ["2021-06-15/" + PHOTOS[0].split("/")[1], *PHOTOS[1:]]  # a date folder above a DeepEarth name
    photos = dataset_file(tmp_path, tmp_path / "photos.parquet", DeepEarthNames(), dated)
    assert footer(photos) == (["file_path"], [], {"file_path": ["dates"]})
    mimic = dataset_file(tmp_path, tmp_path / "mimic.parquet", KeyOnly(), MIMIC_KEYS)
    assert footer(mimic) == (["key"], [], {"key": ["MIMIC subject/study ids"]})
    section = identifying_section([mimic])
    assert "`key`: these identify people" in section and "MIMIC subject/study ids" in section
    assert "None:" not in section


def write_embeddings(path: Path, keys: list[str]) -> None:
    w = ShardWriter(path.parent / "parts", [pa.field("embedding", pa.list_(pa.float32(), 4))], "fp")
    w.add_rows(keys, {"embedding": np.ones((len(keys), 4), np.float32)})
    w.finalize(sorted(keys), path, path.with_suffix(".errors.parquet"), {"embedding_dim": 4})


def test_the_config_s_own_patterns_are_looked_for_and_named_by_position(tmp_path):
    emb = tmp_path / "emb" / "p10.parquet"
    write_embeddings(emb, ["clinic/MRN0012345/a.wav", "clinic/other/b.wav"])
    out = tmp_path / "out.parquet"
    (tmp_path / "patterns.json").write_text(json.dumps([r"MRN\d{7}"]))
    run_script("staged.py", "--embeddings", emb, "--output", out, "--shard", "p10",
               "--identifying_patterns_file", tmp_path / "patterns.json")
    assert footer(out) == (["key"], [], {"key": ["metadata.identifying_patterns[0]"]})
    assert "MRN" not in json.dumps(read_provenance(out))  # the pattern itself is not published
    proc = run_script("staged.py", "--embeddings", emb, "--output", tmp_path / "x.parquet", "--shard", "p10",
                      "--metadata", "deepearth", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "metadata.kind: deepearth names 0 of 2 files in shard p10" in proc.stderr
    assert not (tmp_path / "x.parquet").exists()


def dry_run(tmp_path: Path, settings: dict) -> tuple[int, str]:
    extra = tmp_path / "extra.yaml"
    extra.write_text(json.dumps(settings))
    proc = snakemake(tmp_path, "upload", "-n", "--configfile", str(REPO / "config" / "demo.yaml"), str(extra),
                     check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.workflow
def test_a_public_upload_of_plain_paths_needs_the_key_named_before_any_job(tmp_path):
    none = {"metadata": {"kind": "none"}, "upload": {"public": True, "repo_id": "lab/x"}}
    code, out = dry_run(tmp_path, none)
    assert code != 0 and "'upload.public'" in out and "does not name: key." in out and "rule " not in out
    none["upload"]["public_identifying_columns"] = ["key"]
    code, out = dry_run(tmp_path, none)
    assert code == 0, out


@pytest.mark.workflow
def test_a_bad_identifying_pattern_is_named_before_any_job(tmp_path):
    code, out = dry_run(tmp_path, {"metadata": {"kind": "none", "identifying_patterns": ["MRN(\\d+"]}})
    assert code != 0 and "'metadata.identifying_patterns'" in out and "entry 0 ('MRN(\\\\d+')" in out
    assert "Traceback" not in out
