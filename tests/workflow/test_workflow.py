"""The workflow itself, through Snakemake: the demo end to end, dry runs, config validation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from support.workflow import REPO, snakemake

from embedpipe.discover.scan import scan_files
from embedpipe.store.merge import shard_pt

ECHO_COLUMNS = [
    "subject_id", "study_id", "dicom_id", "file_path", "acquisition_datetime", "study_datetime",
    "note_id", "note_seq", "note_charttime", "embedding",
    "frames_decoded", "frames_declared", "truncated",  # embedpipe's: was the whole file decoded
    "frame_rate", "height", "width", "transfer_syntax",  # the source's, technical fields only
    "decoder",  # decord for the MP4s, pydicom for the DICOM cines
]


def test_demo_end_to_end_loads_with_datasets(demo_run):
    import datasets

    out = demo_run / "results" / "demo"
    metrics = json.loads((out / "validation" / "metrics.json").read_text())
    assert metrics["passed"] is True
    assert metrics["totals"] == {"files": 30, "rows": 28, "errors": 2, "error_fraction": round(2 / 30, 6)}
    files = sorted(p.name for p in (out / "parquet").glob("*.parquet"))
    assert files == [f"train-{i:05d}-of-00003.parquet" for i in range(3)]
    assert sorted(p.name for p in (out / "parquet").iterdir()) == ["README.md", *files]
    ds = datasets.load_dataset("parquet", data_dir=str(out / "parquet"), split="train")
    assert ds.num_rows == 28
    assert ds.column_names == ECHO_COLUMNS
    row = ds[0]
    assert len(row["embedding"]) == 32 and row["file_path"].startswith("p10/")
    assert row["dicom_id"] == Path(row["file_path"]).stem
    assert set(ds["decoder"]) == {"decord", "pydicom"}  # the demo holds both
    notes = ds["note_id"]
    assert any(n is None for n in notes) and any(n is not None for n in notes)  # per-study nulls survive
    meta = json.loads(pq.read_schema(out / "parquet" / files[0]).metadata[b"embedpipe"])
    assert meta["model"] == "vjepa2-tiny" and meta["embedding_dim"] == 32
    assert meta["preprocessing"]["crop"] == "centre 64x64" and meta["compute_dtype"] == "float32"
    assert "torch" in meta["packages"] and "embedpipe" in meta["packages"]


def test_demo_dicom_cines_are_rows_joined_like_mp4s_and_their_patient_appears_nowhere(demo_run):
    import datasets

    from embedpipe_demo.dicom import DEMO_PATIENT

    out = demo_run / "results" / "demo"
    ds = datasets.load_dataset("parquet", data_dir=str(out / "parquet"), split="train").to_pandas()
    dicom = ds[ds["file_path"].str.endswith(".dcm")]
    assert len(dicom) == 6 and (ds["transfer_syntax"].notna() == ds["file_path"].str.endswith(".dcm")).all()
    assert set(dicom["transfer_syntax"]) == {"RLE Lossless", "Explicit VR Little Endian"}
    assert dicom["acquisition_datetime"].notna().all()  # the record list's .dcm paths meet .dcm keys
    stills = dicom[dicom["frames_decoded"] == 1]
    assert len(stills) == 2 and (dicom[dicom["frames_decoded"] > 1]["frame_rate"] == 25.0).all()
    # The generated DICOMs carry a patient's name, ID and birth date: none of them leaves the input.
    leaked = []
    for root in (out, demo_run / "logs"):
        for path in (p for p in root.rglob("*") if p.is_file() and not p.is_relative_to(out / "data")):
            data = path.read_bytes()
            leaked += [(path, v) for v in DEMO_PATIENT.values() if v.encode() in data or v.encode("utf-16-le") in data]
    assert not leaked


def test_merge_all_matches_the_shards(demo_run):
    out = demo_run / "results" / "demo"
    merged = torch.load(out / "vjepa2-tiny_embeddings_all.pt")
    matrix = np.load(out / "vjepa2-tiny_embeddings_all.npy", mmap_mode="r")
    keys = (out / "vjepa2-tiny_embeddings_all.keys.txt").read_text().splitlines()
    assert len(merged) == len(keys) == matrix.shape[0] == 28
    # the demo asks for them in its plain run (merge.in_default_run): the card counts each, a full copy
    card = (out / "parquet" / "README.md").read_text()
    for name in ("vjepa2-tiny_embeddings_all.pt", "vjepa2-tiny_embeddings_all.npy"):
        size = (out / name).stat().st_size
        assert f"| `{name}` | 1 | {size:,} | 0 | {size:,} |" in card
    for shard in ("p10", "p11", "p12"):
        t = pq.read_table(out / "embeddings" / f"{shard}.parquet")
        for key, emb in zip(t.column("key").to_pylist(), t.column("embedding").to_pylist(), strict=True):
            np.testing.assert_array_equal(merged[key].numpy(), np.array(emb, dtype=np.float32))
            np.testing.assert_array_equal(matrix[keys.index(key)], np.array(emb, dtype=np.float32))


def test_export_folder_pt_writes_the_echojepa_per_folder_files(demo_run, tmp_path):
    snakemake(demo_run, "export_folder_pt", "--cores", "2", "--configfile", str(REPO / "config" / "demo.yaml"))
    out = demo_run / "results" / "demo"
    for shard in ("p10", "p11", "p12"):
        t = pq.read_table(out / "embeddings" / f"{shard}.parquet")
        folder = torch.load(out / "export" / "folder_pt" / f"vjepa2-tiny_embeddings_{shard}.pt", weights_only=True)
        assert list(folder) == t.column("key").to_pylist()
        for key, emb in zip(t.column("key").to_pylist(), t.column("embedding").to_pylist(), strict=True):
            np.testing.assert_array_equal(folder[key].numpy(), np.array(emb, dtype=np.float32))
    # merge.folder_pt_keys: folder gives the keys as the script wrote them, relative to the folder
    keys = pq.read_table(out / "embeddings" / "p10.parquet").column("key").to_pylist()
    shard_pt(out / "embeddings" / "p10.parquet", tmp_path / "p10.pt", "p10/")
    assert list(torch.load(tmp_path / "p10.pt", weights_only=True)) == [k.removeprefix("p10/") for k in keys]
    with pytest.raises(ValueError, match="keys outside 'p11/'"):
        shard_pt(out / "embeddings" / "p10.parquet", tmp_path / "p11.pt", "p11/")
    assert not list(tmp_path.glob("p11.pt*"))  # nothing half-written under any name


def test_embed_from_python_gives_the_workflows_embeddings(demo_run):
    import embedpipe

    out = demo_run / "results" / "demo"
    encoder = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["encoder"]
    table = pq.read_table(out / "embeddings" / "p10.parquet").slice(0, 3)
    keys = table.column("key").to_pylist()
    files = [str(demo_run / "results/demo/data/mp4" / k) for k in keys]
    got = embedpipe.embed([files[0], str(demo_run / "no-such.mp4"), *files[1:]], encoder="vjepa2",
                          **encoder | {"path": str(demo_run / encoder["path"])})
    assert got.keys == files and list(got.errors) == [str(demo_run / "no-such.mp4")]
    assert got.embedding.shape == (3, len(table.column("embedding")[0])) and got.embedding.dtype == np.float32
    np.testing.assert_allclose(got.embedding, np.array(table.column("embedding").to_pylist()), atol=1e-5)


def test_folder_keys_need_folder_shards(tmp_path):
    args = example_args(tmp_path)
    hashed = write_config(tmp_path, "shards:\n  by: hash\n  num_shards: 4\n")
    proc = snakemake(tmp_path, "-n", "export_folder_pt", *args[:2], str(hashed), *args[2:],
                     "merge={'folder_pt_keys': 'folder'}", check=False)
    assert proc.returncode != 0 and "config key 'merge.folder_pt_keys'" in proc.stdout + proc.stderr


def test_second_run_and_unchanged_rescan_do_nothing(demo_run):
    again = snakemake(demo_run, "-n", "--configfile", str(REPO / "config" / "demo.yaml"))
    assert "Nothing to be done" in again.stdout + again.stderr
    # it says that it did not look for new or removed files, and how to make it look
    said = again.stdout + again.stderr
    assert re.search(r"embedpipe: \S+ is not scanned again; its manifests \(last changed [\d-]+ [\d:]+\) list the "
                     r"files\. New or removed files: `snakemake discover --forcerun discover`", said)
    rescan = snakemake(demo_run, "--cores", "1", "--configfile", str(REPO / "config" / "demo.yaml"),
                       "--forcerun", "discover", "--until", "discover")
    assert "is not scanned again" not in rescan.stdout + rescan.stderr
    after = snakemake(demo_run, "-n", "--configfile", str(REPO / "config" / "demo.yaml"))
    assert "Nothing to be done" in after.stdout + after.stderr


def test_rerun_of_one_shard_touches_only_that_shard(demo_run):
    dry = snakemake(demo_run, "-n", "--configfile", str(REPO / "config" / "demo.yaml"),
                    "--forcerun", "results/demo/embeddings/p11.parquet")
    text = dry.stdout
    assert "wildcards: shard=p11" in text and "shard=p10" not in text and "shard=p12" not in text


def mimic_input(tmp_path: Path) -> Path:
    data = tmp_path / "mimic-iv-echo-mp4"
    for i in range(10, 20):
        (data / f"p{i}").mkdir(parents=True, exist_ok=True)
    for name in ("echo-record-list.csv", "echo-study-list.csv"):
        (tmp_path / name).write_text("subject_id,study_id\n")
    return data


def example_args(tmp_path: Path) -> list[str]:
    data = mimic_input(tmp_path)
    return [
        "--configfile", str(REPO / "config" / "examples" / "mimic_iv_echo.yaml"), "--config",
        f"input_dir={data}",
        f"metadata={{'kind': 'mimic_iv_echo', 'record_list': '{tmp_path}/echo-record-list.csv', "
        f"'study_list': '{tmp_path}/echo-study-list.csv'}}",
    ]


def test_real_config_dry_run_has_every_shard_and_no_demo_job(tmp_path):
    dry = snakemake(tmp_path, "-n", *example_args(tmp_path))
    text = dry.stdout
    assert "demo" not in text.lower()
    for i in range(10, 20):
        assert f"wildcards: shard=p{i}" in text
    assert "staged/p19.parquet" in text and "embeddings_all" not in text  # merged copies: `snakemake merge_all`
    dag = snakemake(tmp_path, "--dag", *example_args(tmp_path)).stdout
    assert dag.lstrip().startswith("digraph") and dag.count("extract") >= 10


def test_folders_listed_at_dag_time_when_not_configured(tmp_path):
    dry = snakemake(tmp_path, "-n", *example_args(tmp_path), "shards={'by': 'folder', 'folders': []}")
    assert "wildcards: shard=p19" in dry.stdout


def test_folders_past_max_shards_plan_grouped_shards_and_refuse_per_folder_keys(tmp_path):
    args = example_args(tmp_path)
    grouped = str(write_config(tmp_path, "shards:\n  by: folder\n  folders: []\n  max_shards: 4\n"))
    args = [*args[:2], grouped, *args[2:]]  # one --configfile with both files
    dry = snakemake(tmp_path, "-np", *args).stdout
    planned = set(re.findall(r"wildcards: shard=(\S+)", dry))
    assert planned and planned <= {f"folders-00{i}" for i in range(4)}
    assert "--max_shards=4" in dry and f"embedpipe run mimic-iv-echo-vitl: {len(planned)} shards" in dry
    proc = snakemake(tmp_path, "-n", "export_folder_pt", *args, "merge={'folder_pt_keys': 'folder'}", check=False)
    assert proc.returncode != 0 and "config key 'merge.folder_pt_keys'" in proc.stdout + proc.stderr
    assert "grouped into shards (shards.max_shards: 4)" in proc.stdout + proc.stderr


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("extract:\n  num_worker: 4\n", "num_worker"),
        ("extract:\n  save_every: ten\n", "save_every"),
        ("encoder:\n  name: vjepa2\n  model: vitl\n  poolng: mean\n", "poolng"),
        ("shards:\n  by: rows\n", "rows"),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, text, named):
    args = example_args(tmp_path)
    # One --configfile with both files: a second --configfile flag would replace the first.
    proc = snakemake(tmp_path, "-n", *args[:2], str(write_config(tmp_path, text)), *args[2:], check=False)
    assert proc.returncode != 0
    assert named in proc.stdout + proc.stderr
    assert "rule extract" not in proc.stdout


def test_missing_input_dir_is_named(tmp_path):
    args = example_args(tmp_path)
    proc = snakemake(tmp_path, "-n", *args[:3], f"input_dir={tmp_path}/nope", check=False)
    assert proc.returncode != 0 and "input_dir" in proc.stdout + proc.stderr


def test_workflow_passes_snakemake_lint(tmp_path):
    for args in (["--configfile", str(REPO / "config" / "demo.yaml")], example_args(tmp_path)):
        proc = snakemake(tmp_path, "--lint", *args)
        assert "Congratulations" in proc.stdout + proc.stderr


def test_slurm_profile_dry_run_plans_one_gpu_job_per_shard_without_a_cluster(tmp_path):
    dry = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"), *example_args(tmp_path)).stdout
    assert dry.count("rule extract:") == 10
    assert dry.count("mem_mb=250000, mem=250 GB") == 10 and dry.count("runtime=2880, gpu=1, gpu_model=l40s, "
                                                                    "cpus_per_gpu=16") == 10
    assert dry.count("mem_mb=4000, mem=4 GB") >= 13  # discover, joined, 10 staged, validate: small CPU jobs


def test_a_thousand_shards_pass_their_lists_in_a_file_not_on_the_command_line(tmp_path):
    args = example_args(tmp_path)
    many = str(write_config(tmp_path, "shards:\n  by: hash\n  num_shards: 1000\n"))
    dry = snakemake(tmp_path, "-np", "validate", *args[:2], many, *args[2:]).stdout
    command = next(line for line in dry.splitlines() if "scripts/validate.py" in line)
    assert len(command) < 20_000 and "@logs/mimic-iv-echo-vitl/args/validate.txt" in command
    listed = (tmp_path / "logs" / "mimic-iv-echo-vitl" / "args" / "validate.txt").read_text().splitlines()
    assert listed.count("--manifests") == 1 and len(listed) == 3 + 3 * 1000
    assert "results/mimic-iv-echo-vitl/manifests/shard-999.txt" in listed


def test_hash_shards_are_known_at_dag_time(tmp_path):
    args = example_args(tmp_path)
    hashed = write_config(tmp_path, "shards:\n  by: hash\n  num_shards: 4\n")
    dry = snakemake(tmp_path, "-n", *args[:2], str(hashed), *args[2:]).stdout
    assert [f"wildcards: shard=shard-00{i}" in dry for i in range(5)] == [True] * 4 + [False]
    assert "staged/shard-003.parquet" in dry


def test_added_and_removed_files_rerun_only_their_shards_with_exact_counts(video_tree, tiny_model, tmp_path):
    """README's rescan: `snakemake discover --forcerun discover`, then the usual command."""
    videos = [k for k in scan_files(video_tree, [".mp4"]) if "broken" not in k]
    data = tmp_path / "data"

    def link(shard: str, i: int) -> Path:
        (data / shard).mkdir(parents=True, exist_ok=True)
        (data / shard / f"v{i}.mp4").symlink_to(video_tree / videos[i])
        return data / shard / f"v{i}.mp4"

    for i, shard in enumerate(["p10", "p10", "p11", "p11", "p12", "p12"]):
        link(shard, i)
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config.update(run="changes", input_dir=str(data), metadata={"kind": "none"})
    config["encoder"].update(path=str(tiny_model), batch_size=2)
    config["extract"].update(num_workers=0)
    config["demo"]["enabled"] = False
    config["merge"].update(in_default_run=False, formats=["pt"])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    args = ("--cores", "2", "--configfile", str(tmp_path / "config.yaml"))
    shards = tmp_path / "results" / "changes" / "embeddings"
    targets = [f"results/changes/embeddings/{s}.parquet" for s in ("p10", "p11", "p12")]
    snakemake(tmp_path, "merge_all", *args)
    before = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.parquet")}

    link("p11", 6)  # a file added to p11
    (data / "p12" / "v5.mp4").unlink()  # and one removed from p12
    snakemake(tmp_path, "discover", "--forcerun", "discover", *args)
    # As at the users' scale: a manifest past 1 MB (some 20,000 files) is not checksummed by Snakemake,
    # so every rewritten manifest is newer than its shard; only the shards whose files changed rerun.
    rerun = snakemake(tmp_path, *targets, *args, "--max-checksum-file-size", "1")
    log = rerun.stdout + rerun.stderr
    assert "shard=p11" in log and "shard=p12" in log and "shard=p10" not in log
    assert (shards / "p10.parquet").stat().st_mtime_ns == before["p10.parquet"]
    for shard, expected in {"p10": ["v0", "v1"], "p11": ["v2", "v3", "v6"], "p12": ["v4"]}.items():
        keys = pq.read_table(shards / f"{shard}.parquet", columns=["key"]).column("key").to_pylist()
        manifest = (tmp_path / "results" / "changes" / "manifests" / f"{shard}.txt").read_text().split()
        assert keys == manifest == [f"{shard}/{v}.mp4" for v in expected]
        assert pq.read_table(shards / f"{shard}.errors.parquet").num_rows == 0
    # merge_all's .pt, made before the change and not part of a plain run, is said to be out of date
    said = snakemake(tmp_path, "-n", *args)
    assert "results/changes/vjepa2-tiny_embeddings_all.pt predate the newest shard: `snakemake merge_all`" in (
        said.stdout + said.stderr)
