"""ECG: real Philips XML and WFDB files, broken ones, Net1D's checkpoint names, batching, exports, HF lists."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from support.workflow import REPO, fixtures_dir, run_script, snakemake

from embedpipe.discover.scan import read_manifest
from embedpipe.encoders import build_encoder
from embedpipe.encoders.batch import Batch
from embedpipe.encoders.ecgfounder.net1d import Net1D
from embedpipe.encoders.ecgfounder.sizes import output_length
from embedpipe.publish.pca import Pca
from embedpipe.readers.ecg import LEADS, read_ecg
from embedpipe_demo.ecg import MIMIC_ORDER, synthetic_ecg, write_mimic_record, write_sierra_xml


@pytest.fixture
def ecg_tree(tmp_path):
    """The real Philips and WFDB fixtures, good and broken, linked into one shard folder (the GE MUSE,
    HL7 aECG and DICOM ECG fixtures are read in test_ecg_formats.py and test_inputs.py)."""
    ecg = fixtures_dir("ecg")
    shard = tmp_path / "in" / "real"
    shard.mkdir(parents=True)
    for f in (p for sub in ("sierra_xml", "wfdb", "broken") for p in (ecg / sub).rglob("*")):
        if f.is_file():
            dest = shard / f.parent.name / f.name
            dest.parent.mkdir(exist_ok=True)
            dest.symlink_to(f)
    return tmp_path / "in"


def test_real_files_read_into_twelve_leads_at_500_hz():
    ecg = fixtures_dir("ecg")
    for xml in sorted((ecg / "sierra_xml").iterdir()):
        record = read_ecg(str(xml))
        assert record.signal.shape == (12, 5000) and record.n_samples == 5000 and record.source_rate == 500
        assert record.leads_found == list(LEADS) and 0.05 < np.abs(record.signal).max() < 10  # millivolts
    mit = read_ecg(str(ecg / "wfdb" / "mitdb_100" / "100.hea"))
    assert (mit.source_rate, mit.n_samples, mit.leads_found) == (360, 5000, ["II", "V5"])
    assert not mit.signal[LEADS.index("I")].any() and mit.signal[LEADS.index("II")].any()
    ptb = read_ecg(str(ecg / "wfdb" / "ptbdb_s0010_re" / "s0010_re.hea"))
    assert (ptb.source_rate, ptb.n_samples, ptb.leads_found) == (1000, 5000, list(LEADS))  # vx, vy, vz dropped


def test_leads_are_picked_by_name_and_short_records_keep_their_length(tmp_path):
    leads = synthetic_ecg(7.3, 500, np.random.default_rng(1))
    header = write_mimic_record(tmp_path, 10000032, 40689238, leads, 500)
    assert header.read_text().split("\n")[5].split()[-1] == "aVF"  # stored in MIMIC's order
    record = read_ecg(str(header))
    assert record.n_samples == 3650 and record.signal.shape == (12, 3650)  # never padded
    for i, name in enumerate(LEADS):
        np.testing.assert_allclose(record.signal[i, :3650], leads[name][:3650], atol=1e-3)
    assert MIMIC_ORDER != LEADS


def test_philips_xml_written_with_xli_reads_back_exactly(tmp_path):
    leads = synthetic_ecg(11.0, 500, np.random.default_rng(2))
    for version in ("1.03", "1.04", "1.04.01"):
        path = tmp_path / f"ecg-{version}.xml"
        write_sierra_xml(path, leads, 500, version, resolution_uv=5.0)
        record = read_ecg(str(path))
        for i, name in enumerate(LEADS):  # quantised to 5 µV: within half a step
            np.testing.assert_allclose(record.signal[i], leads[name][:5000], atol=2.6e-3)


def test_net1d_has_the_released_geometry_and_reloads_strictly(tmp_path):
    net = Net1D()  # ECGFounder: 64 base filters, [64,160,160,400,400,1024,1024], [2,2,2,3,3,4,4], k 16
    assert round(sum(p.numel() for p in net.parameters()) / 1e6, 1) == 30.8
    names = set(net.state_dict())
    assert {"first_conv.conv.weight", "stage_list.0.block_list.0.conv1.conv.weight", "dense.weight",
            "stage_list.6.block_list.3.se_fc1.weight", "stage_list.6.block_list.3.se_fc2.bias"} <= names
    torch.save({"state_dict": net.state_dict()}, tmp_path / "ecgfounder.pth")
    loaded = Net1D(**Net1D.geometry(torch.load(tmp_path / "ecgfounder.pth")["state_dict"]))
    loaded.load_state_dict(torch.load(tmp_path / "ecgfounder.pth")["state_dict"], strict=True)
    x = torch.randn(2, 12, 5000)
    with torch.no_grad():
        out = loaded.features(x)
        assert out.shape == (2, 1024, 20) == (2, 1024, output_length(5000))
        torch.testing.assert_close(out, net.features(x))


@pytest.mark.parametrize("kind", ["ecgfounder", "ecg_jepa"])
def test_batched_equals_one_at_a_time(tiny_ecg, kind):
    files = [p for p in sorted((fixtures_dir("ecg") / "sierra_xml").iterdir())]
    files.append(fixtures_dir("ecg") / "wfdb" / "ptbdb_s0010_re" / "s0010_re.hea")
    if kind == "ecgfounder":
        encoder = build_encoder("ecgfounder", {"model": "t", "path": str(tiny_ecg / "ecgfounder.pth"), "device": "cpu"})
    else:
        encoder = build_encoder("ecg_jepa", {"model": "t", "path": str(tiny_ecg / "ecg_jepa.pt"), "num_heads": 2,
                                             "device": "cpu"})
    encoder.model.ensure_loaded(torch.device("cpu"))
    samples = [encoder.reader.prepare(str(f)) for f in files]
    batched = encoder.model.encode(Batch([p.sample for p in samples]))
    for i, sample in enumerate(samples):
        alone = encoder.model.encode(Batch([sample.sample]))
        np.testing.assert_allclose(batched["embedding"][i], alone["embedding"][0], rtol=1e-4, atol=1e-5)
        if kind == "ecgfounder":
            np.testing.assert_allclose(batched["features"][i], alone["features"][0], rtol=1e-4, atol=1e-5)


def test_extract_real_and_broken_ecgs_then_export_ecgfounder_json(tiny_ecg, ecg_tree, tmp_path):
    out = tmp_path / "out" / "real.parquet"
    options = {"path": str(tiny_ecg / "ecgfounder.pth"), "batch_size": 2}
    run_script("extract.py", "--encoder", "ecgfounder", "--model", "ecgfounder-tiny", "--encoder_options",
               json.dumps(options), "--input_dir", ecg_tree, "--shard", "real", "--extensions", ".xml", ".hea",
               "--output", out, "--device", "cpu", "--num_workers", "1")
    rows = {r["key"].split("/", 2)[-1]: r for r in pq.read_table(out).to_pylist()}
    errors = {e["key"].split("/", 2)[-1]: e for e in pq.read_table(out.with_name("real.errors.parquet")).to_pylist()}
    assert sorted(rows) == ["041s01.hea", "100.hea", "s0010_re.hea", "v1_03_129DYPRG.XML",
                            "v1_04_01_2020-5-18_15-48-11.xml", "v1_04_3191723_ZZDEMOPTONLY_1-04_orig.xml"]
    assert sorted(errors) == ["100.hea", "sierra_invalid-doc-type.xml", "sierra_v1_04_TRUNCATED_30000B_malformed.xml"]
    assert "truncated" in errors["100.hea"]["message"]
    # the whole record by default, as the ECGFounder script: 11 s Philips, 38.4 s PTB, 30 min MIT-BIH
    assert {k: r["n_samples"] for k, r in rows.items()} == {
        "041s01.hea": 4000, "100.hea": 902778, "s0010_re.hea": 19200, "v1_03_129DYPRG.XML": 5500,
        "v1_04_01_2020-5-18_15-48-11.xml": 5500, "v1_04_3191723_ZZDEMOPTONLY_1-04_orig.xml": 5500}
    for r in rows.values():
        assert len(r["features"]) == output_length(r["n_samples"]) and len(r["embedding"]) == 32
        np.testing.assert_allclose(np.mean(r["features"], axis=0), r["embedding"], rtol=1e-5, atol=1e-6)
    assert rows["100.hea"]["leads_found"] == ["II", "V5"] and rows["100.hea"]["source_rate"] == 360
    # ECG at 4 samples a 125 Hz frame: read at its own 500 Hz, not averaged to 125 Hz and upsampled
    assert rows["041s01.hea"]["leads_found"] == ["I", "III"] and rows["041s01.hea"]["source_rate"] == 500

    exported = tmp_path / "ecgfounder_json"
    run_script("export_ecg_json.py", "--out_dir", exported, out)
    for key, row in rows.items():
        doc = json.loads((exported / (key.rsplit(".", 1)[0] + ".json")).read_text())
        assert doc["shape"] == [output_length(row["n_samples"]), 32] and doc["modality"] == "ecg"
        assert key in doc["description"]
        assert np.array_equal(np.asarray(doc["embedding"], np.float32), np.asarray(row["features"], np.float32))


def test_one_lead_mode_needs_lead_one(tiny_ecg, tmp_path):
    from embedpipe.encoders.ecgfounder.net1d import Net1D

    net = Net1D(in_channels=1, base_filters=8, filter_list=(8, 16, 16, 24, 24, 32, 32),
                m_blocks_list=(1,) * 7, groups_width=8, n_classes=5)
    torch.save({"state_dict": net.state_dict()}, tmp_path / "1lead.pth")
    encoder = build_encoder("ecgfounder", {"model": "t", "path": str(tmp_path / "1lead.pth"), "mode": "1lead",
                                           "device": "cpu"})
    encoder.model.ensure_loaded(torch.device("cpu"))
    ptb = encoder.reader.prepare(str(fixtures_dir("ecg") / "wfdb" / "ptbdb_s0010_re" / "s0010_re.hea"))
    signal = ptb.sample.numpy()
    assert signal.shape == (1, 19200) and abs(signal[0].mean()) < 1e-5 and abs(signal[0].std() - 1) < 1e-3
    assert encoder.model.encode(Batch([ptb.sample]))["embedding"].shape == (1, 32)
    with pytest.raises(ValueError, match="none of the leads"):
        encoder.reader.prepare(str(fixtures_dir("ecg") / "wfdb" / "mitdb_100" / "100.hea"))  # MLII and V5 only
    with pytest.raises(ValueError, match="takes 12 lead"):
        build_encoder("ecgfounder", {"model": "t", "path": str(tiny_ecg / "ecgfounder.pth"), "mode": "1lead",
                                     "device": "cpu"}).model.load(torch.device("cpu"))


def test_files_listed_by_a_hf_dataset_are_discovered_and_rows_keep_their_dataset_rows(tmp_path, tiny_ecg):
    from datasets import Dataset

    from embedpipe.publish.source_rows import read_source_rows

    data = tmp_path / "cohort"
    leads = synthetic_ecg(10.0, 500, np.random.default_rng(3))
    for i in range(3):
        write_sierra_xml(data / f"patient_{i:03d}" / f"ecg_{i}.xml", leads, 500)
    elsewhere = tmp_path / "elsewhere" / "ecg_x.xml"
    write_sierra_xml(elsewhere, leads, 500)
    # row 3 lists ecg_1 again (a patient's ECG in two dataset rows): one key, both rows kept
    Dataset.from_dict({"ecg_paths": [["patient_000/ecg_0.xml", "patient_001/ecg_1.xml"],
                                     [str(data / "patient_002" / "ecg_2.xml")], [str(elsewhere)],
                                     ["patient_001/ecg_1.xml"]]}
                      ).save_to_disk(tmp_path / "hfds")
    manifests = tmp_path / "manifests"
    run_script("discover.py", "--input_dir", data, "--manifest_dir", manifests, "--extensions", ".xml",
               "--by", "hash", "--num_shards", "2", "--hf_dataset", tmp_path / "hfds")
    keys = sorted(line for m in manifests.glob("*.txt") for line in m.read_text().split())
    assert keys == sorted(["patient_000/ecg_0.xml", "patient_001/ecg_1.xml", "patient_002/ecg_2.xml", str(elsewhere)])
    hf_rows = manifests / "hf_rows.parquet"  # the hf_rows rule's job
    hf_rows_args = ("--hf_rows_only", hf_rows, "--input_dir", data, "--hf_dataset", tmp_path / "hfds")
    run_script("discover.py", *hf_rows_args)
    written = hf_rows.stat().st_mtime_ns
    run_script("discover.py", *hf_rows_args)  # unchanged, so not rewritten: nothing after it reruns
    assert hf_rows.stat().st_mtime_ns == written
    rows, split = read_source_rows(hf_rows)
    expected = {"patient_000/ecg_0.xml": [0], "patient_001/ecg_1.xml": [0, 3], "patient_002/ecg_2.xml": [1],
                str(elsewhere): [2]}
    assert rows == expected and split is None  # a saved Dataset has no split
    # Through extract and the staged step, each dataset row carries them: joined by key, not by position
    got = {}
    for manifest in sorted(manifests.glob("shard-*.txt")):
        shard = manifest.stem
        emb = tmp_path / "embeddings" / f"{shard}.parquet"
        run_script("extract.py", "--encoder", "ecgfounder", "--model", "t", "--model_path",
                   tiny_ecg / "ecgfounder.pth", "--input_dir", data, "--shard", shard, "--manifest", manifest,
                   "--output", emb, "--device", "cpu", "--num_workers", "0")
        out = tmp_path / "dataset" / f"{shard}.parquet"
        run_script("joined.py", "--manifests", manifest, "--output_dir", tmp_path / "joined",
                   "--hf_rows", manifests / "hf_rows.parquet")
        run_script("staged.py", "--embeddings", emb, "--output", out, "--shard", shard,
                   "--joined", tmp_path / "joined" / f"{shard}.parquet")
        table = pq.read_table(out)
        assert table.column_names[:3] == ["key", "hf_row_indices", "hf_split"]
        got |= {r["key"]: r["hf_row_indices"] for r in table.select(["key", "hf_row_indices"]).to_pylist()}
    assert got == expected


def test_ecg_demo_workflow_and_export_target(tmp_path):
    config = str(REPO / "config" / "demo_ecg.yaml")
    snakemake(tmp_path, "--cores", "2", "--configfile", config)
    run = tmp_path / "results" / "demo-ecg"
    assert not list(run.glob("*_embeddings_all*"))  # a plain run writes no merged copy (merge.in_default_run)
    keys = [k for s in ("p1000", "p1001", "philips")
            for k in pq.read_table(run / "embeddings" / f"{s}.parquet", columns=["key"]).column("key").to_pylist()]
    assert len(keys) == 14 and json.loads((run / "validation" / "metrics.json").read_text())["passed"] is True
    errors = [e for s in ("p1000", "p1001", "philips") for e in pq.read_table(run / "embeddings" /
                                                                               f"{s}.errors.parquet").to_pylist()]
    assert sorted(e["error_type"] for e in errors) == ["EcgReadError", "ExpatError"]
    snakemake(tmp_path, "export_ecg_json", "--cores", "1", "--configfile", config)
    assert len(list((run / "export" / "ecgfounder_json").glob("*.json"))) == 14

    # A trial run beside it (extract.limit, as --config passes it: a string): the first 2 files of
    # each shard through the whole DAG, in a folder of its own; the full run is not touched.
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    # 5 rows of a tiny random model: their raw cosine (0.9904) is over the demo's collapse threshold.
    # The trial also fits a PCA of its rows (pca.components), published beside its dataset.
    loose = tmp_path / "loose.yaml"
    loose.write_text("validate: {max_mean_cosine: 0.999}\npca: {components: 3}\n")
    config = [config, str(loose)]
    snakemake(tmp_path, "--cores", "2", "--configfile", *config, "--config", "extract={limit: 2}")
    trial = tmp_path / "results" / "demo-ecg-trial2"
    for shard in ("p1000", "p1001", "philips"):
        first = read_manifest(run / "manifests" / f"{shard}.txt")[:2]
        assert read_manifest(trial / "manifests" / f"{shard}.txt") == first
        rows = pq.read_table(trial / "embeddings" / f"{shard}.parquet").column("key").to_pylist()
        failed = pq.read_table(trial / "embeddings" / f"{shard}.errors.parquet").column("key").to_pylist()
        assert sorted(rows + failed) == first  # every trial file is a row or an error row
    exclusions = json.loads((trial / "manifests" / "exclusions.json").read_text())
    assert exclusions["trial"] == {"limit": 2, "beyond_limit": {"p1000": 3, "p1001": 3, "philips": 4}}
    assert "10 past the first 2 of each shard (a trial run, `extract.limit`)" in (trial / "parquet" / "README.md"
                                                                                  ).read_text()
    assert json.loads((trial / "validation" / "metrics.json").read_text())["totals"]["files"] == 6
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before
    pca = Pca.load(trial / "parquet" / "pca.npz")
    ds = datasets.load_dataset(str(trial / "parquet"), split="train").with_format("numpy")
    embedding, projected = np.stack(ds["embedding"]), np.stack(ds["embedding_pca"])
    assert pca.components.shape == (3, embedding.shape[1]) and pca.n_rows == 5
    assert "pca.npz" in [f["path"] for f in json.loads((trial / "dataset.files.json").read_text())["files"]]
    np.testing.assert_allclose(projected, pca.transform(embedding), atol=1e-5)
    assert "the 3 components keep" in (trial / "parquet" / "README.md").read_text()
    refused = snakemake(tmp_path, "upload", "-n", "--configfile", *config, "--config", "extract={limit: 2}",
                        "upload={repo_id: me/ecg}", check=False)
    assert refused.returncode != 0 and "config key 'extract.limit'" in refused.stdout + refused.stderr


def test_ecg_example_configs_plan_their_shards(tmp_path):
    checkpoint = tmp_path / "12_lead_ECGFounder.pth"
    checkpoint.write_bytes(b"not read by a dry run")
    files = tmp_path / "files"
    for group in ("p1000", "p1001"):
        (files / group).mkdir(parents=True)
    listing = tmp_path / "record list.csv"  # a space: the path reaches the shell quoted
    listing.write_text("subject_id,study_id,file_name,ecg_time,path\n")
    mimic = snakemake(tmp_path, "-np", "--configfile", str(REPO / "config" / "examples" / "mimic_iv_ecg.yaml"),
                      "--config", f"input_dir={files}", f"encoder={{'path': '{checkpoint}'}}",
                      f"metadata={{'kind': 'mimic_iv_ecg', 'record_list': '{listing}'}}")
    assert "wildcards: shard=p1000" in mimic.stdout and "wildcards: shard=p1001" in mimic.stdout
    # the record list read once, by the joined rule; each staged job reads its shard's slice
    assert f"--metadata=mimic_iv_ecg --record_list='{listing}'" in mimic.stdout
    assert mimic.stdout.count("rule joined:") + mimic.stdout.count("localrule joined:") == 1
    assert "--joined=results/" in mimic.stdout and "--record_list" not in mimic.stdout.split("rule staged:")[1]
    hf = snakemake(tmp_path, "-np", "--configfile", str(REPO / "config" / "examples" / "ecgfounder_hf_dataset.yaml"),
                   "--config", f"input_dir={files}", f"encoder={{'path': '{checkpoint}'}}")
    assert hf.stdout.count("rule extract:") + hf.stdout.count("localrule extract:") == 8
    assert "--hf_dataset=/abs/path/to/my_ecg_hfds" in hf.stdout
    # the dataset rows of each file: their own job, which only the staged step waits for
    assert hf.stdout.count("rule hf_rows:") == 1
    assert "--hf_rows=results/cohort-ecgfounder/manifests/hf_rows.parquet" in hf.stdout
    folder = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "examples" / "ecgfounder_hf_dataset.yaml"),
                       "--config", f"input_dir={files}", f"encoder={{'path': '{checkpoint}'}}",
                       "shards={'by': 'folder'}", check=False)
    assert folder.returncode != 0 and "shards.by" in folder.stdout + folder.stderr
