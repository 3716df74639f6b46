"""A shard is this config's only if it was made with this config's model, weights and preprocessing:
checked when the DAG is built (a shard made otherwise is embedded again, whatever the rerun triggers)
and in validate (a dataset mixing shards fails, naming the shard and the setting)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from support.integrity import check, validate, write_shard
from support.workflow import REPO, snakemake

from embedpipe.store.footer import META_KEY, read_provenance
from embedpipe.store.made_with import DigestCache, content_digest, differences, made_with, model_problems, stamp_path


def test_made_with_keeps_what_decides_a_row_and_digests_model_files(tmp_path):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"a" * 3_000_000)
    options = {"name": "vjepa2", "model": "m", "path": str(weights), "num_frames": 16, "batch_size": 8,
               "device": "cpu", "compile": False, "revision": None, "crop": 256}
    defaults = {"crop": 256, "num_frames": 64}
    made = made_with(options, defaults)
    # crop is at its default: an option a newer embedpipe adds at its default changes nothing recorded
    assert made == {"encoder.model": "m", "encoder.num_frames": 16, "encoder.path content": content_digest(weights)}
    assert made_with(options | {"batch_size": 64, "device": "cuda"}, defaults) == made  # speed, not content
    moved = tmp_path / "elsewhere.pt"
    shutil.copy(weights, moved)
    assert made_with(options | {"path": str(moved)}, defaults) == made  # the same model wherever it lies
    # a model a rule of this run makes: left out whether or not it is there yet (Snakemake compares it)
    skipped = made_with(options, defaults, skip_files=[str(weights)])
    assert skipped == made_with(options | {"path": str(tmp_path / "later")}, defaults)
    assert "encoder.path content" not in skipped


@pytest.mark.parametrize("offset", [0, 1_500_000, 2_999_999])
def test_replacing_any_part_of_the_weights_changes_the_digest(tmp_path, offset):
    weights = tmp_path / "model"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"a" * 3_000_000)
    (weights / "config.json").write_text("{}")
    before = content_digest(weights)
    (weights / ".cache").mkdir()  # a download's records, a lock: not the model
    (weights / ".cache" / "model.safetensors.lock").write_text("")
    assert content_digest(weights) == before
    data = bytearray((weights / "model.safetensors").read_bytes())
    data[offset] ^= 1
    (weights / "model.safetensors").write_bytes(bytes(data))
    assert content_digest(weights) != before
    (weights / "config.json").write_text('{"depth": 2}')
    assert content_digest(weights) != before


def test_the_digest_cache_reads_a_file_again_only_when_it_changed(tmp_path):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"a" * 1000)
    cache = DigestCache(str(tmp_path / "cache.json"))
    first = content_digest(weights, cache)
    cache.save()
    again = DigestCache(str(tmp_path / "cache.json"))
    assert again.known == cache.known and content_digest(weights, again) == first and not again.changed
    weights.write_bytes(b"b" * 1000)  # replaced: another mtime (and content)
    os.utime(weights, ns=(1, 1))
    assert content_digest(weights, again) != first and again.changed


def test_differences_name_each_setting_both_ways():
    wanted = {"encoder.num_frames": 8, "encoder.model": "m"}
    assert differences({"encoder.num_frames": 8, "encoder.model": "m"}, wanted) == []
    assert differences({"encoder.num_frames": 16, "encoder.model": "m", "encoder.crop": 224}, wanted) == [
        "encoder.crop: 224 in the shard, the default in this config",
        "encoder.num_frames: 16 in the shard, 8 in this config"]
    assert differences(None, wanted) == ["no settings recorded (written by an earlier embedpipe)"]
    # a model file that a rule of this run makes is not read when the DAG is built: Snakemake compares it
    assert differences(wanted | {"encoder.path content": "abc"}, wanted) == []


def test_model_problems_name_the_odd_shard_and_setting():
    wanted = {"encoder.num_frames": 16}
    same = {"a": (wanted, "f1"), "b": (wanted, "f1")}
    assert model_problems(same, wanted) == []
    mixed = same | {"c": ({"encoder.num_frames": 8}, "f2")}
    assert model_problems(mixed, wanted) == [
        "c: encoder.num_frames: 8 in the shard, 16 in this config",
        "fingerprints differ: 2 shard(s) have f1, but c (f2)"]
    assert model_problems(mixed, None) == ["fingerprints differ: 2 shard(s) have f1, but c (f2)"]


def stamp(path: Path, made: dict, fingerprint: str) -> None:
    """Rewrite a shard's footer as if it had been made with `made` (fingerprint `fingerprint`)."""
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[META_KEY]) | {"made_with": made, "fingerprint": fingerprint}
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta)}), path)


def test_validate_fails_a_dataset_whose_shards_were_made_with_other_settings(tmp_path):
    write_shard(tmp_path, "p10", ["p10/a.mp4", "p10/b.mp4", "p10/c.mp4"], [])
    write_shard(tmp_path, "p11", ["p11/a.mp4", "p11/b.mp4"], [], seed=1)
    for shard in ("p10", "p11"):
        stamp(tmp_path / f"{shard}.parquet", {"encoder.num_frames": 16}, "f16")
    passed = check(validate(tmp_path, ["p10", "p11"]), "same_model")
    assert passed["passed"] and "f16" in passed["detail"]
    stamp(tmp_path / "p11.parquet", {"encoder.num_frames": 8}, "f8")
    failed = check(validate(tmp_path, ["p10", "p11"]), "same_model")
    assert not failed["passed"]
    assert "p11 (f8)" in failed["detail"] and "--forcerun extract" in failed["detail"]


@pytest.fixture
def small_run(video_tree, tiny_model, tmp_path) -> tuple[Path, Path, Path]:
    """Two shards of two videos each embedded with a copy of the tiny model; the config, its model."""
    videos = sorted(p for p in video_tree.rglob("*.mp4") if "broken" not in p.name)
    for i, shard in enumerate(["p10", "p10", "p11", "p11"]):
        (tmp_path / "data" / shard).mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / shard / f"v{i}.mp4").symlink_to(videos[i])
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config.update(run="same", input_dir=str(tmp_path / "data"), metadata={"kind": "none"})
    config["shards"]["folders"] = ["p10", "p11"]
    config["encoder"].update(path=str(model), batch_size=2)
    config["extract"].update(num_workers=0)
    config["demo"]["enabled"] = False
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path, *targets(), "--cores", "2", "--configfile", str(tmp_path / "config.yaml"))
    return tmp_path, tmp_path / "config.yaml", model


def targets() -> list[str]:
    return [f"results/same/embeddings/{s}.parquet" for s in ("p10", "p11")]


def test_a_config_with_other_frames_re_embeds_under_mtime_triggers(small_run):
    work, config, _ = small_run
    frames8 = work / "frames8.yaml"
    frames8.write_text("encoder:\n  num_frames: 8\n")
    args = ("--cores", "2", "--configfile", str(config), str(frames8), "--rerun-triggers", "mtime")
    shutil.rmtree(work / "logs" / "same" / "settings_changed")  # as a run folder from before the stamps
    dry = snakemake(work, "-n", *targets(), *args)
    out = dry.stdout + dry.stderr
    for shard in ("p10", "p11"):
        assert (f"results/same/embeddings/{shard}.parquet was made with other settings than this config's "
                "(encoder.num_frames: the default in the shard, 8 in this config)") in out
        assert f"shard={shard}" in dry.stdout  # planned again, not reused
    # that dry run rewrote the stamps: the first config's own shards are still its own
    assert "Nothing to be done" in snakemake(work, "-n", *targets(), "--configfile", str(config)).stdout
    snakemake(work, *targets(), *args)
    for shard in ("p10", "p11"):
        made = read_provenance(work / "results" / "same" / "embeddings" / f"{shard}.parquet")["made_with"]
        assert made["encoder.num_frames"] == 8
    assert "Nothing to be done" in snakemake(work, "-n", *targets(), *args).stdout
    # and under the default triggers too: the stamp is one fixed input, so the input list never changes
    assert "Nothing to be done" in snakemake(work, "-n", *targets(), *args[:-2]).stdout
    # and back: the first config's shards are not the second's either
    back = snakemake(work, "-n", *targets(), "--configfile", str(config), "--rerun-triggers", "mtime")
    assert "encoder.num_frames: 8 in the shard, the default in this config" in back.stdout + back.stderr


def test_weights_replaced_under_the_same_path_re_embed(small_run):
    from embedpipe_demo.video import make_tiny_vjepa2

    work, config, model = small_run
    shutil.rmtree(model)
    make_tiny_vjepa2(model, seed=1)
    dry = snakemake(work, "-n", *targets(), "--cores", "2", "--configfile", str(config))
    out = dry.stdout + dry.stderr
    assert "encoder.path content:" in out and "shard=p10" in dry.stdout and "shard=p11" in dry.stdout
    stamp = Path(stamp_path(str(work / "logs" / "same" / "settings_changed"), "p10"))
    assert "encoder.path content" in stamp.read_text()


def test_a_moved_model_is_the_same_model(small_run):
    work, config, model = small_run
    moved = work / "moved-model"
    model.rename(moved)
    text = config.read_text().replace(str(model), str(moved))
    config.write_text(text)
    dry = snakemake(work, "-n", *targets(), "--cores", "2", "--configfile", str(config), "--rerun-triggers", "mtime")
    assert "Nothing to be done" in dry.stdout, dry.stdout + dry.stderr
    # one shard made again from the moved model: both record one fingerprint (validate's same_model)
    snakemake(work, *targets(), "--cores", "2", "--configfile", str(config), "--forcerun",
              "results/same/embeddings/p11.parquet")
    shards = work / "results" / "same" / "embeddings"
    prints = {read_provenance(shards / f"{s}.parquet")["fingerprint"] for s in ("p10", "p11")}
    assert len(prints) == 1
