"""Issue 32 (6-8): a killed step's temporaries removed by its next run (only its own), names no tool
can carry stopped or shown as plain text, and the last tracebacks made one line naming the file or key."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import torch
from support.dataset_runs import link_videos, run_config, videos
from support.integrity import assert_one_line
from support.pretrain import settings
from support.small_shards import write_shard
from support.validation import script_args
from support.workflow import fill, metis_encoder, run_script, snakemake

from embedpipe.encoders import OptionError, family
from embedpipe.encoders.errors import ModelLoadError
from embedpipe.pretrain.train import PretrainStep
from embedpipe.publish.dataset_folder import build_dataset_folder

HOSTILE_SHARD = r"m$\undefinedcmd$"


def shards(tmp_path, names=("p10", "p11")):
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        write_shard(tmp_path, name, [f"{name}/{j}.mp4" for j in range(20 + i)], rng.normal(size=(20 + i, 4)))


def plant(folder, *names):
    """Temporaries as a kill -9 leaves them (atomic.py's `.<name>.tmp-<pid>`)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f".{name}.tmp-4194305").write_bytes(b"half-written")
    return {f".{n}.tmp-4194305" for n in names}


def test_each_step_removes_its_own_stale_temporaries_and_no_other(tmp_path):
    shards(tmp_path)
    out = tmp_path / "out"
    # another job writing into the same folder right now: its temporaries must survive
    others = plant(out, "vjepa2_embeddings_p10.pt", "train-00001-of-00002.parquet", "roc.png")
    mine = plant(out, "m.pt", "m.npy", "m.keys.txt")
    run_script("merge_all.py", "--shards", tmp_path / "p10.parquet", tmp_path / "p11.parquet", "--pt", out / "m.pt",
               "--npy", out / "m.npy", "--keys", out / "m.keys.txt")
    mine |= plant(out, "train-00000-of-00002.parquet")
    run_script("staged.py", "--embeddings", tmp_path / "p10.parquet", "--output",
               out / "train-00000-of-00002.parquet", "--shard", "p10")
    mine |= plant(out, "pca.npz")
    run_script("pca_fit.py", "--shards", tmp_path / "p10.parquet", "--components", "2", "--out", out / "pca.npz")
    mine |= plant(out, "report.html", "metrics.json", "norms.png")
    run_script("validate.py", *script_args(tmp_path, ["p10", "p11"], out))
    left = {p.name for p in out.iterdir() if ".tmp-" in p.name}
    assert left == others, f"kept {left & mine}, removed {others - left}"


def test_names_with_mathtext_reach_the_plots_as_plain_text(tmp_path):
    shards(tmp_path, [HOSTILE_SHARD, "p11"])
    out = tmp_path / "validation"
    args = script_args(tmp_path, [HOSTILE_SHARD, "p11"], out)
    args[args.index("--shards"):args.index("--manifests")] = ["--shards_json", json.dumps([HOSTILE_SHARD, "p11"])]
    proc = run_script("validate.py", *args, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert (out / "report.html").exists() and (out / "norms.png").stat().st_size > 5000


@pytest.mark.workflow
@pytest.mark.parametrize("name", ["a<x>b", "a{x}b"])
def test_a_folder_name_snakemake_cannot_carry_stops_the_dry_run_naming_it(video_tree, tiny_model, tmp_path, name):
    data = tmp_path / "data"
    link_videos(data / "p10", videos(video_tree)[:1])
    link_videos(data / name, videos(video_tree)[1:2])
    proc = snakemake(tmp_path, "-n", *run_config(tmp_path, data, tiny_model), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Pathvar" not in out and "rule extract" not in proc.stdout
    assert re.search(rf"config key 'shards.folders': .*\['{re.escape(name)}'\]; rename them, or use shards.by: hash",
                     out), out


def test_validate_on_a_full_disk_logs_one_line(tmp_path, small_disk):
    shards(tmp_path)
    out = small_disk / "validation"
    filler = fill(small_disk)
    proc = run_script("validate.py", *script_args(tmp_path, ["p10", "p11"], out), check=False)
    assert_one_line(proc, rf"could not write {re.escape(str(out))}\S*: No space left on device.*"
                          r"free space and rerun validate\.$")
    filler.unlink()
    assert run_script("validate.py", *script_args(tmp_path, ["p10", "p11"], out)).returncode == 0


def test_the_dataset_folder_on_a_full_disk_names_the_folder(tmp_path, small_disk):
    shards(tmp_path)
    folder = small_disk / "parquet"
    fill(small_disk)
    with pytest.raises(OSError, match=rf"^\[Errno 28\] could not write {re.escape(str(folder))}: No space left"):
        build_dataset_folder([tmp_path / "p10.parquet"], folder, lambda published: "card " * 100000)
    assert not list(small_disk.glob(".parquet*")) and not folder.exists()


@pytest.mark.parametrize("content", [b"not a checkpoint", "dict"])
def test_resuming_from_a_hostile_checkpoint_is_one_line_naming_it(tmp_path, caplog, content):
    out = tmp_path / "run"
    bad = out / "checkpoints" / "step_0000002.pt"
    bad.parent.mkdir(parents=True)
    if content == "dict":  # ours in name and format, not in content
        torch.save({"format": "embedpipe.myjepa/1", "model": [1, 2]}, bad)
    else:
        bad.write_bytes(content)
    dump = tmp_path / "ecg.npy"
    np.save(dump, np.zeros((8, 12, 1200), np.float32))
    with caplog.at_level(logging.ERROR):
        assert PretrainStep(settings(out, [str(dump)], steps=3)).run() == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(f"{bad}: cannot resume from it") and "\n" not in errors[0]


def test_a_bad_metis_stats_file_is_blamed_on_stats_path(tiny_metis, tmp_path):
    stats = tmp_path / "wav2vec2bert_stats.pt"
    stats.write_bytes(b"\x80\x02not torch")
    with pytest.raises(OptionError) as caught:
        metis_encoder(tiny_metis, stats_path=str(stats))
    try:
        raise ModelLoadError(str(caught.value)) from caught.value
    except ModelLoadError as exc:
        line = str(family("metis").model_error(str(tiny_metis), "metis", exc))
    assert line.startswith(f"encoder.stats_path: {stats}: not a statistics file") and "encoder.path" not in line


def test_an_encoder_path_that_is_a_file_fails_the_start_up_checks(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\xff" * 64)
    vjepa2 = family("vjepa2")
    with pytest.raises(OptionError, match=rf"^encoder\.path: {re.escape(str(weights))} \(a 64-byte binary file\): "
                                          "cannot load the vjepa2 encoder from it: not a folder"):
        vjepa2.check(vjepa2.options({"model": "custom", "path": str(weights)}))
    vjepa2.check(vjepa2.options({"model": "custom", "path": str(weights)}), files=False)  # the demo makes it
