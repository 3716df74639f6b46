"""A dataset's next release: only new and changed files are embedded, and the shard equals a fresh run's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from support.dataset_runs import videos
from support.workflow import REPO, snakemake

from embedpipe.store.footer import read_provenance


def config_args(tmp_path: Path, data: Path, model: Path, run: str) -> tuple[str, ...]:
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config.update(run=run, input_dir=str(data), extensions=[".mp4"], metadata={"kind": "none"},
                  shards={"by": "folder", "folders": []})
    # batch 1: each file's numbers cannot depend on its batch, whatever the CPU's kernels (the tiny
    # model gave identical rows at batches 1 to 8 where this was written: docs/reliability.md)
    config["encoder"].update(path=str(model), batch_size=1)
    config["extract"].update(num_workers=0)
    config["validate"].update(max_error_fraction=0.5, min_effective_rank=1)
    config["demo"]["enabled"] = False
    path = tmp_path / f"{run}.yaml"
    path.write_text(yaml.safe_dump(config))
    return "--cores", "2", "--configfile", str(path)


def test_a_grown_dataset_embeds_only_new_and_changed_files_and_equals_a_fresh_run(video_tree, tiny_model, tmp_path):
    good = videos(video_tree)
    data = tmp_path / "data"
    for shard, picks in {"p10": [0, 1, 2, 3], "p11": [4, 5]}.items():
        (data / shard).mkdir(parents=True)
        for i in picks:  # copies, not links: a file's bytes are changed in place below
            shutil.copyfile(good[i], data / shard / f"v{i}.mp4")
    (data / "p10" / "bad.mp4").write_bytes(b"not a video")  # an error row: tried again on the rerun
    args = config_args(tmp_path, data, tiny_model, "r")
    snakemake(tmp_path, *args)  # the whole run: staged drops the finished copies, the previous version stays
    results = tmp_path / "results" / "r"
    assert sorted(p.name for p in (results / "parts").iterdir()) == [
        "p10.lock", "p10.previous", "p11.lock", "p11.previous"]
    p11 = (results / "embeddings" / "p11.parquet").stat().st_mtime_ns

    shutil.copyfile(good[6], data / "p10" / "v6.mp4")  # added
    (data / "p10" / "v1.mp4").write_bytes(good[7].read_bytes())  # its bytes changed (size and mtime)
    (data / "p10" / "v2.mp4").unlink()  # removed
    snakemake(tmp_path, "discover", "--forcerun", "discover", *args)
    rerun = snakemake(tmp_path, *args)
    assert "shard=p10" in rerun.stderr + rerun.stdout and "shard=p11" not in rerun.stderr + rerun.stdout
    assert (results / "embeddings" / "p11.parquet").stat().st_mtime_ns == p11
    log = (tmp_path / "logs" / "r" / "extract" / "p10.log").read_text()
    # v0 and v3 reused; v1 (changed), v6 (new) and bad.mp4 (an error before) embedded
    assert "reused 2 rows of the previous shard (same model, unchanged files); embedding 3" in log, log
    assert "p10: 5 files, 2 already in parts, 3 to embed" in log, log
    shard = results / "embeddings" / "p10.parquet"
    assert read_provenance(shard)["reused_rows"] == 2
    assert pq.read_table(shard, columns=["key"]).column("key").to_pylist() == [
        "p10/v0.mp4", "p10/v1.mp4", "p10/v3.mp4", "p10/v6.mp4"]
    card = (results / "parquet" / "README.md").read_text()
    assert "2 rows were reused when their shard was last made" in card
    published = pq.read_schema(next((results / "parquet").glob("train-*.parquet"))).names
    assert "file_size" not in published and "file_mtime_ns" not in published  # the job's, not the dataset's

    # A fresh run over the new input, in a run folder of its own: the same shard, bit for bit.
    snakemake(tmp_path, "results/fresh/embeddings/p10.parquet", *config_args(tmp_path, data, tiny_model, "fresh"))
    fresh = tmp_path / "results" / "fresh" / "embeddings" / "p10.parquet"
    got, want = (pq.read_table(p) for p in (shard, fresh))
    assert got.schema.remove_metadata() == want.schema.remove_metadata()
    for name in want.column_names:  # every column, the embeddings exactly (no tolerance)
        assert got.column(name).equals(want.column(name)), name
    errors = [pq.read_table(p.with_name("p10.errors.parquet")) for p in (shard, fresh)]
    assert errors[0].equals(errors[1]) and errors[0].column("key").to_pylist() == ["p10/bad.mp4"]
    same = {k: v for k, v in read_provenance(fresh).items() if k not in ("created", "reused_rows")}
    assert {k: v for k, v in read_provenance(shard).items() if k in same} == same
    assert read_provenance(fresh)["reused_rows"] == 0
