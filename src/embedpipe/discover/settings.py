"""The `shards` and `hf_dataset` config blocks, as discover takes them: the only defaults of these
settings in code. Standard library only: the Snakefile reads them when it builds the DAG."""

from __future__ import annotations

from dataclasses import dataclass

from embedpipe.runtime.step_settings import setting


@dataclass(frozen=True)
class ShardOptions:
    by: str = setting("folder", "folder: one shard per top-level folder of input_dir (p10 … p19); hash: num_shards "
                                "buckets of the keys' hashes")
    folders: list[str] = setting(help="the shard folders; empty: every top-level folder, listed when the DAG is "
                                      "built", factory=list)
    num_shards: int = setting(10, "shards.by hash: how many buckets")
    max_shards: int = setting(200, "shards.by folder: more folders than this (DeepEarth's one per taxon) are grouped "
                                   "into this many shards, folders-NNN, each folder whole in one by a stable hash "
                                   "of its name (a folder added later changes only its shard); the keys keep "
                                   "their folder")


@dataclass(frozen=True)
class HfDatasetOptions:
    path: str | None = setting(None, "instead of scanning input_dir: a Hugging Face dataset (load_from_disk "
                                     "directory or hub name) listing the files, relative to input_dir or absolute")
    split: str = setting("train", "its split")
    column: str = setting("ecg_paths", "its column of paths: str, list[str] or list[list[str]] per row, as the "
                                       "ECGFounder script reads it")
