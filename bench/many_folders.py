#!/usr/bin/env python
"""What a run of many small folders costs before any job: the dry run's DAG (on every `-n`, every
rerun, every status) and discover's one scan, one shard per folder against folders grouped past
shards.max_shards (DeepEarth's layout: one folder per taxon, tens of thousands of them).

    python bench/many_folders.py --folders 4000 40000 --files 1000000

Empty files in DeepEarth's naming (taxon_<id>/gbif_<n>_taxon_<id>_<species>_img_<k>.jpg), the
example config config/examples/deepearth_images.yaml. For each folder count: the dry run's wall and CPU
seconds grouped (the default max_shards) and, up to --per_folder_limit folders, with one shard per
folder (max_shards = the folder count); discover's scan of every file once, grouped. One JSON line each.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "examples" / "deepearth_images.yaml"


def make_tree(root: Path, folders: int, files: int) -> None:
    for i in range(folders):
        folder = root / f"taxon_{100000 + i}"
        folder.mkdir(parents=True)
        for k in range(files // folders + (i < files % folders)):
            (folder / f"gbif_{i * 1000 + k}_taxon_{100000 + i}_Species_name_img_{k}.jpg").touch()


def timed(cmd: list[str], cwd: Path) -> dict:
    """Wall and CPU seconds of a child (its own, from the children's rusage before and after)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{cmd[:3]} failed: {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "stdout": done.stdout}


def dry_run(work: Path, data: Path, model: Path, max_shards: int) -> dict:
    config = work / f"max{max_shards}.yaml"
    config.write_text(f"input_dir: {data}\nshards:\n  by: folder\n  folders: []\n  max_shards: {max_shards}\n"
                      f"encoder:\n  path: {model}\n")
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), "--configfile", str(EXAMPLE),
           str(config), "--rerun-triggers", "mtime"]
    out = timed(cmd, work)
    shards = out.pop("stdout").count("\nrule extract:") + 0
    return out | {"extract_jobs": shards}


def main() -> int:
    # The model folder is a stand-in without weights (only the DAG is built): the preflight would stop on it.
    os.environ["EMBEDPIPE_PREFLIGHT"] = "warn"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, nargs="+", default=[4000, 40000])
    parser.add_argument("--files", type=int, default=1_000_000, help="files in all, spread over the folders")
    parser.add_argument("--per_folder_limit", type=int, default=4000,
                        help="dry-run one shard per folder only up to this many folders (≈9 ms CPU a shard)")
    parser.add_argument("--dir", help="a folder for the generated tree (default: a temporary one)")
    args = parser.parse_args()
    for folders in args.folders:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            work, data, model = Path(tmp), Path(tmp) / "images", Path(tmp) / "model"
            model.mkdir()
            (model / "config.json").write_text('{"model_type": "vjepa2"}')
            make_tree(data, folders, args.files)
            row: dict = {"folders": folders, "files": args.files, "grouped": dry_run(work, data, model, 200)}
            if folders <= args.per_folder_limit:
                row["one_shard_per_folder"] = dry_run(work, data, model, folders)
            manifests, listing = work / "manifests", work / "folders.json"
            listing.write_text(json.dumps(sorted(p.name for p in data.iterdir())))
            scan = timed([sys.executable, str(REPO / "workflow" / "scripts" / "discover.py"), "--input_dir", str(data),
                          "--manifest_dir", str(manifests), "--extensions", ".jpg", "--by", "folder", "--folders_file",
                          str(listing), "--all_folders",
                          "--max_shards", "200"], work)
            scan.pop("stdout")
            row["discover_grouped"] = scan | {"manifests": len(list(manifests.glob("*.txt")))}
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
