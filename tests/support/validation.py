"""The validate script's arguments for a set of shards."""

from __future__ import annotations


def script_args(tmp_path, shards, out_dir):
    return ["--shards", *shards, "--manifests", *(tmp_path / f"{s}.txt" for s in shards),
            "--dataset_files", *(tmp_path / f"{s}.parquet" for s in shards),
            "--error_files", *(tmp_path / f"{s}.errors.parquet" for s in shards), "--out_dir", out_dir]
