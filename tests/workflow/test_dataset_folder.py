"""The published folder holds exactly this run's files and loads; hostile folder names run nothing;
every file of the input ends as a row, an error row or a counted exclusion (issue 20: 1, 4, 5, 8)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from support.dataset_runs import link_videos, run_config, videos
from support.workflow import snakemake, unprivileged

from embedpipe.discover.scan import DiscoverError, Exclusions, ShardSpec, discover_shards


def load(folder: Path):
    import datasets

    return datasets.load_dataset("parquet", data_dir=str(folder), split="train")


HOSTILE = ["x;touch INJECTED;#", "$(touch INJECTED2)", "`touch INJECTED3`", "it's \"quoted\"", "with space",
           "-leading-dash", "--help"]


def test_hostile_folder_names_run_no_command_and_each_becomes_a_shard(video_tree, tiny_model, tmp_path):
    data, work = tmp_path / "data", tmp_path / "work"
    work.mkdir()
    for name, src in zip(HOSTILE, videos(video_tree), strict=False):
        link_videos(data / name, [src])
    args = run_config(work, data, tiny_model)
    snakemake(work, *args)
    snakemake(work, "upload", *args)  # the dry-run upload plan, through the shell as well
    assert not [p for p in tmp_path.rglob("INJECTED*")], "a folder name ran as a command"
    metrics = json.loads((work / "results/r/validation/metrics.json").read_text())
    assert [s["shard"] for s in metrics["shards"]] == sorted(HOSTILE)
    assert metrics["totals"]["rows"] == len(HOSTILE)
    ds = load(work / "results/r/parquet")
    assert sorted(k.split("/")[0] for k in ds["key"]) == sorted(HOSTILE)
    plan = json.loads((work / "results/r/upload/plan.json").read_text())
    assert len([f for f in plan["files"] if f["path"].endswith(".parquet")]) == len(HOSTILE)


def test_a_folder_name_with_a_line_break_stops_the_run_naming_it(video_tree, tiny_model, tmp_path):
    data = tmp_path / "data"
    link_videos(data / "p10", videos(video_tree)[:1])
    link_videos(data / "bad\nname", videos(video_tree)[1:2])
    proc = snakemake(tmp_path, "-n", *run_config(tmp_path, data, tiny_model), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "shards.folders" in out and "'bad\\nname'" in out
    assert "rule extract" not in proc.stdout


def test_a_rerun_on_fewer_shards_and_an_all_error_shard_leave_a_folder_that_loads(video_tree, tiny_model, tmp_path):
    data = tmp_path / "data"
    good = videos(video_tree)
    link_videos(data / "p10", good[:3])
    link_videos(data / "p11", good[3:5])
    (data / "p12").mkdir()
    for i in range(2):  # a shard whose every file fails: no dataset file, its errors counted
        (data / "p12" / f"bad{i}.mp4").write_bytes(b"not a video")
    args = run_config(tmp_path, data, tiny_model)
    snakemake(tmp_path, *args)
    folder = tmp_path / "results/r/parquet"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "train-00000-of-00002.parquet",
                                                        "train-00001-of-00002.parquet"]
    metrics = json.loads((tmp_path / "results/r/validation/metrics.json").read_text())
    assert metrics["totals"] == {"files": 7, "rows": 5, "errors": 2, "error_fraction": round(2 / 7, 6)}
    ds = load(folder)
    assert ds.num_rows == 5
    card = (folder / "README.md").read_text()
    assert "| p12 | none (no rows) | 2 | 0 | 2 |" in card and "in 2 Parquet files" in card
    assert "| p11 | train-00001-of-00002.parquet | 2 | 2 | 0 |" in card
    header = yaml.safe_load(card.split("---")[1])
    assert header["dataset_info"]["splits"][0]["num_examples"] == 5
    # the finished-shard links each extract job kept are dropped by that shard's staged job; the previous
    # version a rerun reuses rows from stays (none for p12, which has no rows)
    assert sorted(p.name for p in (tmp_path / "results/r/parts").iterdir()) == [
        "p10.lock", "p10.previous", "p11.lock", "p11.previous", "p12.lock"]

    snakemake(tmp_path, *args, "--config", "shards={'by': 'folder', 'folders': ['p10']}")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "train-00000-of-00001.parquet"]
    listed = json.loads((tmp_path / "results/r/dataset.files.json").read_text())
    assert sorted(f["path"] for f in listed["files"]) == ["README.md", "train-00000-of-00001.parquet"]
    assert load(folder).num_rows == 3
    assert "4 outside the listed shard folders" in (folder / "README.md").read_text()


def test_a_listed_folder_that_does_not_exist_stops_the_run_before_any_job(video_tree, tiny_model, tmp_path):
    data = tmp_path / "data"
    link_videos(data / "p10", videos(video_tree)[:1])
    args = run_config(tmp_path, data, tiny_model, shards={"by": "folder", "folders": ["p10", "p99"]})
    proc = snakemake(tmp_path, "-n", *args, check=False)
    assert proc.returncode != 0 and "shards.folders" in proc.stderr + proc.stdout and "p99" in proc.stderr + proc.stdout


def test_skipped_extensions_are_counted_on_the_console(video_tree, tiny_model, tmp_path):
    data = tmp_path / "data"
    link_videos(data / "p10", videos(video_tree)[:1])
    for name in ("a.avi", "b.avi", "c.dcm", ".hidden.mp4"):
        (data / "p10" / name).write_bytes(b"x")
    proc = snakemake(tmp_path, "discover", *run_config(tmp_path, data, tiny_model))
    assert "skipped 3 files: .avi 2, .dcm 1 — add them to `extensions`" in proc.stdout
    assert "excluded 1 dot-files (hidden), e.g. ['p10/.hidden.mp4']" in proc.stdout


# Discover alone: fast, no workflow.

def tree(root: Path, names: list[str]) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    return root


@pytest.mark.parametrize(("folders", "message"), [
    (("p10", "p99"), "['p99'] not found"),
    (("p10", "p11"), "['p11'] under"),  # exists, but holds no .mp4
])
def test_listed_folders_must_exist_and_hold_files(tmp_path, folders, message):
    root = tree(tmp_path / "in", ["p10/a.mp4", "p11/notes.txt"])
    with pytest.raises(DiscoverError, match=message.replace("[", r"\[").replace("]", r"\]")):
        discover_shards(root, [".mp4"], ShardSpec("folder", folders), tmp_path / "m")


def test_loose_files_stop_folder_sharding_by_every_folder_and_are_listed_otherwise(tmp_path):
    root = tree(tmp_path / "in", ["p10/a.mp4", "p11/b.mp4", "loose.mp4"])
    with pytest.raises(DiscoverError, match=r"1 files lie directly under input_dir .*\['loose.mp4'\]"):
        discover_shards(root, [".mp4"], ShardSpec("folder", ("p10", "p11")), tmp_path / "m", all_folders=True)
    excluded = Exclusions()
    shards = discover_shards(root, [".mp4"], ShardSpec("folder", ("p10",)), tmp_path / "m", exclusions=excluded)
    assert shards == {"p10": ["p10/a.mp4"]}
    assert excluded.outside_shards == ["loose.mp4", "p11/b.mp4"]


def test_every_matching_file_is_a_key_or_a_listed_exclusion(tmp_path):
    names = ["p10/a.mp4", "p10/.hidden.mp4", "p10/._a.mp4", "p10/new\nline.mp4", "p10/x.txt", "p10/y.TXT",
             "p10/noext", "p10/.git/c.mp4", "p11/b.mp4"]
    root = tree(tmp_path / "in", names)
    excluded = Exclusions()
    shards = discover_shards(root, [".mp4"], ShardSpec("hash", num_shards=2), tmp_path / "m", exclusions=excluded)
    keys = sorted(k for v in shards.values() for k in v)
    assert keys == ["p10/a.mp4", "p11/b.mp4"]
    assert excluded.hidden == ["p10/._a.mp4", "p10/.hidden.mp4"]
    assert excluded.line_breaks == ["p10/new\nline.mp4"]
    assert excluded.hidden_folders == ["p10/.git"]
    assert dict(excluded.by_extension) == {".txt": 2, "": 1}
    record = excluded.as_dict()
    assert record["num_excluded"] == 3
    assert json.loads(json.dumps(record))["excluded"]["line_breaks"] == ["p10/new\nline.mp4"]


def test_linked_top_level_folders_are_scanned_deeper_links_listed_and_unreadable_folders_stop(tmp_path):
    elsewhere = tree(tmp_path / "disk2", ["p11/b.mp4", "more/c.mp4"])
    root = tree(tmp_path / "in", ["p10/a.mp4"])
    (root / "p11").symlink_to(elsewhere / "p11", target_is_directory=True)  # a shard on another disk
    (root / "p10" / "more").symlink_to(elsewhere / "more", target_is_directory=True)
    excluded = Exclusions()
    shards = discover_shards(root, [".mp4"], ShardSpec("folder", ("p10", "p11")), tmp_path / "m",
                             all_folders=True, exclusions=excluded)
    assert shards == {"p10": ["p10/a.mp4"], "p11": ["p11/b.mp4"]}
    assert excluded.linked_folders == ["p10/more"]
    assert any("1 links to folders below the top level" in line for line in excluded.summary())
    locked = tree(root / "p10" / "locked", ["d.mp4"])
    locked.chmod(0)
    try:
        with unprivileged(), pytest.raises(DiscoverError, match="cannot read folder .*locked"):
            discover_shards(root, [".mp4"], ShardSpec("folder", ("p10", "p11")), tmp_path / "m")
    finally:
        locked.chmod(0o755)


def test_names_that_are_not_utf8_or_hold_other_line_ends_are_listed_exclusions(tmp_path):
    root = tmp_path / "in"
    (root / "p10").mkdir(parents=True)
    (root / "p10" / "ok.mp4").write_bytes(b"x")
    os.close(os.open(os.path.join(os.fsencode(root / "p10"), b"caf\xe9.mp4"), os.O_CREAT | os.O_WRONLY))
    (root / "p10" / "form\x0cfeed.mp4").write_bytes(b"x")
    (root / "p10" / "para\u2029sep.mp4").write_bytes(b"x")
    excluded = Exclusions()
    shards = discover_shards(root, [".mp4"], ShardSpec("folder", ("p10",)), tmp_path / "m", exclusions=excluded)
    assert shards == {"p10": ["p10/ok.mp4"]}
    assert excluded.not_utf8 == ["p10/caf\\xe9.mp4"]
    assert excluded.line_breaks == ["p10/form\x0cfeed.mp4", "p10/para\u2029sep.mp4"]
    json.dumps(excluded.as_dict(), ensure_ascii=False).encode("utf-8")  # the exclusions file can be written


def test_a_staged_file_with_no_rows_gets_no_dataset_file(tmp_path):
    import pyarrow as pa

    from embedpipe.publish.dataset_folder import EmptyDatasetError, build_dataset_folder

    staged = []
    for shard, n in (("a", 2), ("b", 0), ("c", 1)):
        path = tmp_path / "staged" / f"{shard}.parquet"
        path.parent.mkdir(exist_ok=True)
        pq.write_table(pa.table({"key": [f"{shard}/{i}" for i in range(n)]}, schema=pa.schema([("key", pa.string())])),
                       path)
        staged.append(path)
    folder = tmp_path / "out"
    (folder / "stale").mkdir(parents=True)
    (folder / "train-00000-of-00009.parquet").write_bytes(b"old")
    files = build_dataset_folder(staged, folder, lambda published: f"{[p.name for p in published]}")
    assert files == ["README.md", "train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    assert sorted(p.name for p in folder.iterdir()) == files
    assert pq.read_table(folder / "train-00001-of-00002.parquet").column("key").to_pylist() == ["c/0"]
    assert (folder / "README.md").read_text() == "['train-00000-of-00002.parquet', 'train-00001-of-00002.parquet']"
    with pytest.raises(EmptyDatasetError):
        build_dataset_folder(staged[1:2], folder, str)
    assert sorted(p.name for p in folder.iterdir()) == files  # a failed build leaves the last good folder


@pytest.mark.parametrize("shard", ["taxon [1]*?", "a\\b", ".hidden", "p10"])
def test_sidecar_folders_of_any_shard_name_can_be_uploaded_exactly(tmp_path, shard):
    from embedpipe.publish.file_list import read_file_list, write_file_list
    from embedpipe.publish.staged import hub_safe_name

    name = hub_safe_name(shard)
    assert (name == shard) == (shard == "p10") and name != hub_safe_name(shard + "x")
    rel = f"tokens/{name}/part-000000.safetensors"
    (tmp_path / "ds" / "tokens" / name).mkdir(parents=True)
    (tmp_path / "ds" / rel).write_bytes(b"t")
    write_file_list(tmp_path / "ds", [rel], tmp_path / "files.json")  # refuses pattern characters
    assert read_file_list(tmp_path / "files.json")[1] == {rel: 1}


def test_wfdb_signal_files_are_counted_as_companions_without_advice_to_embed_them(tmp_path):
    """Adding `.dat` to `extensions`, as the plain hint said, would embed every record twice."""
    import shutil

    from support.workflow import fixtures_dir

    root = tmp_path / "in"
    for record in ("mitdb_100", "mimicdb_041s01_multifreq"):
        shutil.copytree(fixtures_dir("ecg/wfdb") / record, root / "p1" / record)
    (root / "p1" / "notes.csv").write_text("x\n")
    excluded = Exclusions()
    shards = discover_shards(root, [".hea"], ShardSpec("folder", ("p1",)), tmp_path / "m", exclusions=excluded)
    assert shards == {"p1": ["p1/mimicdb_041s01_multifreq/041s01.hea", "p1/mitdb_100/100.hea"]}
    assert dict(excluded.companions) == {".dat": 2, ".atr": 1}
    companions, others = excluded.summary()
    assert companions == ("skipped 3 signal and annotation files of WFDB records (.dat 2, .atr 1): read through "
                          "their .hea, not embedded on their own") and "extensions" not in companions
    assert others == "skipped 1 files: .csv 1 — add them to `extensions` to embed them"
    assert excluded.as_dict()["wfdb_companions"] == {".atr": 1, ".dat": 2}


def _rows_file(path: Path, columns: dict) -> Path:
    import pyarrow as pa

    pq.write_table(pa.table(columns), path)
    return path


def test_the_card_counts_in_words_and_speaks_of_the_modality_it_describes(tmp_path):
    from embedpipe.publish.card import counted, decoder_note, truncation_note

    assert (counted(1, "row"), counted(0, "row"), counted(2, "error")) == ("1 row", "0 rows", "2 errors")
    video = _rows_file(tmp_path / "v.parquet", {"frames_decoded": [4, 300], "truncated": [True, False],
                                                "decoder": ["pyav", "decord"]})
    note = truncation_note([video])
    assert "video decoded fewer frames" in note and "(1 row)" in note and "OGG" not in note and "MP3" not in note
    tally = "`decoder`: what decoded the file (decord 1 row, pyav 1 row). Tried in order: decord"
    assert tally in decoder_note([video])
    audio = _rows_file(tmp_path / "a.parquet", {"duration_s": [1.0, 2.0, 3.0], "truncated": [True, True, None],
                                                "decoder": ["soundfile", "soundfile", "pyav"]})
    assert "(2 rows)" in truncation_note([audio]) and "raw AAC" in truncation_note([audio])
    assert "(soundfile 2 rows, pyav 1 row). Tried in order: soundfile" in decoder_note([audio])
    assert decoder_note([_rows_file(tmp_path / "e.parquet", {"source_rate": [500.0]})]) == ""
