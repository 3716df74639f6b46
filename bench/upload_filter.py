#!/usr/bin/env python
"""What upload's file selection costs at N files: the list as patterns (before) against the whole checked
folder and one deletion pattern (now), through huggingface_hub's own filter, the one upload_folder runs.

    python bench/upload_filter.py --files 4000 8000 16000

Before: allow_patterns = every listed file and delete_patterns = every stale remote file, so
huggingface_hub matches each file against each pattern (files × patterns fnmatch calls). Now:
verify_folder (lstat of each listed file and one walk of the folder), no allow_patterns, and
delete_patterns "*" over the remote files (one pattern). A re-upload is modelled: the remote holds the
same number of old files under other names, all stale. Prints one JSON line per size, with the growth
exponent of each approach between sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from huggingface_hub.utils import filter_repo_objects

from embedpipe.publish.file_list import verify_folder


def make_folder(root: Path, n: int) -> dict[str, int]:
    sizes = {}
    for i in range(n):
        rel = f"tokens/t{i % 100:03d}/part-{i:06d}.safetensors"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
        sizes[rel] = 1
    return sizes


def measure(n: int) -> tuple[float, float]:
    """(seconds before, seconds now) of selecting n files to push and n stale remote files to delete."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sizes = make_folder(root, n)
        listed = sorted(sizes)
        remote = [f"old/{name}" for name in listed]  # a re-upload: every remote file is stale
        start = time.perf_counter()
        list(filter_repo_objects(listed, allow_patterns=listed))
        list(filter_repo_objects(remote, allow_patterns=remote))
        before = time.perf_counter() - start
        start = time.perf_counter()
        verify_folder(root, sizes)
        list(filter_repo_objects(remote, allow_patterns="*"))
        return before, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[4000, 8000, 16000])
    args = parser.parse_args()
    previous = None
    for n in args.files:
        before, now = measure(n)
        row = {"files": n, "before_s": round(before, 3), "now_s": round(now, 3), "ratio": round(before / now, 1)}
        if previous:
            scale = math.log(n / previous["files"])
            row["before_exponent"] = round(math.log(before / previous["before_s"]) / scale, 2)
            row["now_exponent"] = round(math.log(now / previous["now_s"]) / scale, 2)
        print(json.dumps(row), flush=True)
        previous = row
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
