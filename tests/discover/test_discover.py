from __future__ import annotations

import os
import time

import pytest

from embedpipe.discover.exclusions import Exclusions
from embedpipe.discover.scan import (
    DiscoverError,
    ShardSpec,
    assign_shards,
    discover_shards,
    read_manifest,
    scan_files,
    scan_tree,
)


def make_tree(root, names):
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_scan_finds_configured_extensions_sorted_and_relative(tmp_path):
    make_tree(tmp_path, ["p11/b.mp4", "p10/z/a.MP4", "p10/a.mp4", "p10/notes.txt", "p10/.hidden.mp4"])
    assert scan_files(tmp_path, [".mp4"]) == ["p10/a.mp4", "p10/z/a.MP4", "p11/b.mp4"]
    assert scan_files(tmp_path, ["mp4"], subdir="p11") == ["p11/b.mp4"]


def test_snakemakes_own_folder_marker_is_neither_a_file_nor_a_skipped_one(tmp_path):
    # a directory() output (the demo's input folder) holds Snakemake's .snakemake_timestamp
    make_tree(tmp_path, [".snakemake_timestamp", "p10/a.mp4", "p10/.snakemake_timestamp", "p10/notes"])
    exclusions = Exclusions()
    assert scan_tree(tmp_path, [".mp4", ".dcm"], exclusions=exclusions) == ["p10/a.mp4"]
    assert exclusions.as_dict()["skipped_by_extension"] == {"": 1}  # `notes` alone
    assert exclusions.hidden == [] and exclusions.summary() == [
        "skipped 1 files: (no extension) 1 — add them to `extensions` to embed them"]


def test_dicom_files_without_an_extension_are_found_by_their_preamble_when_dcm_is_asked_for(tmp_path):
    preamble = bytes(128) + b"DICM" + b"\x02\x00"
    make_tree(tmp_path, ["s1/a.dcm", "s1/notes", "s1/x.txt"])
    for name in ("s1/1.2.840.113619.2.1", "s1/IM0001", "s1/DICOMDIR"):
        (tmp_path / name).write_bytes(preamble)
    (tmp_path / "s1/short").write_bytes(b"DICM")  # shorter than a preamble: not a DICOM
    os.mkfifo(tmp_path / "s1/fifo")  # not opened: it would block the scan
    assert scan_files(tmp_path, [".dcm"]) == ["s1/1.2.840.113619.2.1", "s1/IM0001", "s1/a.dcm"]
    assert scan_files(tmp_path, [".mp4"]) == []  # only where the input is DICOM


def test_folder_shards_and_files_outside_them(tmp_path):
    make_tree(tmp_path, ["p10/x/1.mp4", "p11/2.mp4", "p12/3.mp4", "loose.mp4"])
    spec = ShardSpec("folder", ("p10", "p11"))
    shards, outside = assign_shards(scan_files(tmp_path, [".mp4"]), spec)
    assert shards == {"p10": ["p10/x/1.mp4"], "p11": ["p11/2.mp4"]}
    assert outside == ["loose.mp4", "p12/3.mp4"]


def test_hash_shards_are_stable_and_cover_every_file(tmp_path):
    keys = [f"d{i % 7}/f{i}.mp4" for i in range(500)]
    spec = ShardSpec("hash", num_shards=4)
    shards, outside = assign_shards(sorted(keys), spec)
    assert outside == []
    assert sorted(k for v in shards.values() for k in v) == sorted(keys)
    assert list(shards) == ["shard-000", "shard-001", "shard-002", "shard-003"]
    assert all(len(v) > 80 for v in shards.values())  # sha1 spreads the keys
    again, _ = assign_shards(sorted(keys), ShardSpec("hash", num_shards=4))
    assert again == shards


def test_unchanged_rescan_keeps_manifest_mtime_changed_shard_rewritten(tmp_path):
    data, out = tmp_path / "data", tmp_path / "manifests"
    make_tree(data, ["p10/a.mp4", "p11/b.mp4"])
    spec = ShardSpec("folder", ("p10", "p11"))
    discover_shards(data, [".mp4"], spec, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    time.sleep(0.02)
    discover_shards(data, [".mp4"], spec, out)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    make_tree(data, ["p11/c.mp4"])
    discover_shards(data, [".mp4"], spec, out)
    assert (out / "p10.txt").stat().st_mtime_ns == before["p10.txt"]
    assert read_manifest(out / "p11.txt") == ["p11/b.mp4", "p11/c.mp4"]
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # no temp files left


def test_many_folders_are_grouped_whole_and_a_new_folder_changes_only_its_shard(tmp_path):
    data, out = tmp_path / "data", tmp_path / "manifests"
    folders = [f"taxon_{i}" for i in range(60)]
    make_tree(data, [f"{f}/gbif_{j}.jpg" for f in folders for j in range(2)])
    spec = ShardSpec("folder", tuple(folders), max_shards=8)
    assert spec.grouped and set(spec.shard_ids()) <= {f"folders-{i:03d}" for i in range(8)}
    shards = discover_shards(data, [".jpg"], spec, out, all_folders=True)
    assert sorted(shards) == spec.shard_ids() and all(shards.values())  # no group without a folder is a shard
    home = {key.split("/")[0]: shard for shard, keys in shards.items() for key in keys}
    assert len(home) == 60  # each folder whole in one shard, every file kept under its folder's name
    assert sum(map(len, shards.values())) == 120 and max(map(len, shards.values())) < 40
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    time.sleep(0.02)
    make_tree(data, ["taxon_60/gbif_0.jpg"])
    grown = ShardSpec("folder", (*folders, "taxon_60"), max_shards=8)
    discover_shards(data, [".jpg"], grown, out, all_folders=True)
    changed = {p.name for p in out.iterdir() if p.stat().st_mtime_ns != before.get(p.name)}
    assert changed == {f"{grown.group_of('taxon_60')}.txt"}
    assert ShardSpec("folder", tuple(folders), max_shards=60).shard_ids() == sorted(folders)  # not past the limit


def test_a_folder_without_files_is_named_when_folders_are_grouped(tmp_path):
    make_tree(tmp_path, [f"t{i}/a.jpg" for i in range(5)])
    (tmp_path / "t5").mkdir()
    spec = ShardSpec("folder", tuple(f"t{i}" for i in range(6)), max_shards=2)
    with pytest.raises(DiscoverError, match=r"\['t5'\] under .* hold no file"):
        discover_shards(tmp_path, [".jpg"], spec, tmp_path / "m", all_folders=True)
