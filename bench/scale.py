#!/usr/bin/env python
"""Every stage after the encoder at the users' sizes: CPU seconds, peak RSS and bytes written per stage
at several row counts, each stage's growth exponent, and the naive seed approach beside it.

    python bench/scale.py --rows 50000 200000 525328
    python bench/scale.py --rows 500 1000 --dim 64          # what CI runs: it works, nothing timed

A run of N synthetic MIMIC-IV-Echo videos in ten group folders (empty files under
pNN/p<subject>/s<study>/, the echo record and study lists beside them), the shard files written as
extract writes them (the project's ShardWriter: parts, then the assembled shard) with random float32
rows, no model. The stages run as the workflow runs them: the commands are the ones `snakemake -np`
prints for this config, each in a fresh process whose CPU time and peak RSS the OS reports (a wrapper
process with nothing loaded, so no high-water mark is inherited). Stages: discover, joined (the record
lists, once), staged (per shard, summed; RSS the largest), merge_all, validate, parquet, upload (its
plan: dry_run), and the DAG itself (`snakemake -n` over the finished run). Disk: every file under the
run folder once per inode, against the float32 matrix (rows × dim × 4), without and with the files
`snakemake merge_all` adds (a plain run does not write them).

The naive seed approach at the same size, in the same run: `torch.save` of a `{key: tensor}` dict and
one pandas DataFrame written to Parquet. One JSON line per size, then one with the exponents.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARDS = 10
# Runs one shell command; prints the CPU seconds and peak RSS (KiB) of that child alone, as JSON.
MEASURE = ("import json, resource, subprocess, sys; r = subprocess.run(sys.argv[1], shell=True, executable='/bin/bash',"
           " cwd=sys.argv[2]); u = resource.getrusage(resource.RUSAGE_CHILDREN); print(json.dumps({'rc': r.returncode,"
           " 'cpu_s': u.ru_utime + u.ru_stime, 'rss_kib': u.ru_maxrss}))")
STAGES = ("discover", "joined", "staged", "merge_all", "pca_fit", "validate", "parquet", "upload")


def measure(command: str, cwd: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, command, str(cwd)], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if got["rc"]:
        log = re.search(r"> (\S+) 2>&1", command)
        tail = (cwd / log.group(1)).read_text()[-3000:] if log and (cwd / log.group(1)).is_file() else ""
        raise RuntimeError(f"{command[:300]} failed ({got['rc']}):\n{tail}")
    return {"cpu_s": got["cpu_s"], "rss_mb": got["rss_kib"] / 1024}


def make_input(root: Path, rows: int) -> Path:
    """The input tree and MIMIC-IV-Echo's two lists; returns the config file."""
    data = root / "data"
    records, studies = [], set()
    for i in range(rows):
        subject, study = 10_000_000 + i // 7, 90_000_000 + i // 70
        where = f"p{10 + i % SHARDS}/p{subject}/s{study}/{study}_{i % 70:04d}"
        (data / where).parent.mkdir(parents=True, exist_ok=True)
        (data / f"{where}.mp4").touch()
        records.append(f"{subject},{study},2180-01-01 10:00:00,files/{where}.dcm\n")
        studies.add((subject, study))
    (root / "records.csv").write_text("subject_id,study_id,acquisition_datetime,dicom_filepath\n" + "".join(records))
    (root / "studies.csv").write_text("subject_id,study_id,study_datetime,note_id,note_seq,note_charttime\n" + "".join(
        f"{s},{t},2180-01-01 09:00:00,{s}-EC-1,1,\n" for s, t in sorted(studies)))
    model = root / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "vjepa2"}')
    config = root / "config.yaml"
    config.write_text(json.dumps({
        "run": "scale", "input_dir": str(data), "extensions": [".mp4"],
        "shards": {"by": "folder", "folders": []},
        "encoder": {"name": "vjepa2", "model": "vitl", "path": str(model), "device": "cpu"},
        "metadata": {"kind": "mimic_iv_echo", "record_list": str(root / "records.csv"),
                     "study_list": str(root / "studies.csv")},
        "upload": {"repo_id": "bench/scale", "dry_run": True},
    }))
    return config


def planned_commands(root: Path, config: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """rule → [(shell command, its log and output paths)] as `snakemake -np` prints them for this run."""
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(root),
                          "all", "upload", "merge_all", "-np", "--forceall", "--configfile", str(config)],
                         capture_output=True, text=True, check=True).stdout
    plan: dict[str, list[tuple[str, list[str]]]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry):
        if not (head := re.match(r"(?:local)?rule (\w+):", block)) or "Shell command: " not in block:
            continue
        paths = [p for line in re.findall(r"^    (?:log|output): (.*)$", block, re.M) for p in line.split(", ")]
        plan.setdefault(head.group(1), []).append((block.split("Shell command: ", 1)[1].split("\n", 1)[0], paths))
    return plan


def write_shards(root: Path, dim: int, made_with: dict) -> None:
    """Each manifest's rows as extract leaves them: parts, then the assembled shard and its errors file,
    recording what this config's rows are made with (validate checks every shard was made alike)."""
    import numpy as np
    import pyarrow as pa

    from embedpipe.discover.scan import read_manifest
    from embedpipe.extract.writer import ShardWriter

    rng = np.random.default_rng(0)
    run = root / "results" / "scale"
    for manifest in sorted((run / "manifests").glob("*.txt")):
        keys, shard = read_manifest(manifest), manifest.stem
        writer = ShardWriter(run / "parts" / shard, [pa.field("embedding", pa.list_(pa.float32(), dim))], "scale")
        for start in range(0, len(keys), 8192):
            block = keys[start:start + 8192]
            writer.add_rows(block, {"embedding": rng.standard_normal((len(block), dim), dtype=np.float32)})
        (run / "embeddings").mkdir(parents=True, exist_ok=True)
        writer.finalize(keys, run / "embeddings" / f"{shard}.parquet", run / "embeddings" / f"{shard}.errors.parquet",
                        {"embedding_dim": dim, "key_column": "key", "encoder": "vjepa2", "made_with": made_with})
        writer.remove_parts()


def disk_bytes(folder: Path) -> dict[str, int]:
    """Bytes under each top-level folder of the run (and its top-level files), each inode once."""
    seen: set[tuple[int, int]] = set()
    out: dict[str, int] = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        if path.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            top = path.relative_to(folder).parts[0]
            out[top] = out.get(top, 0) + st.st_size
    return out


def naive(rows: int, dim: int, root: Path) -> dict[str, dict]:
    """The seed scripts' way at this size: a torch.save dict of tensors, one DataFrame to Parquet."""
    code = {
        "torch_save_dict": ("import numpy as np, torch; m = torch.from_numpy(np.random.default_rng(0).standard_normal("
                            f"({rows}, {dim}), dtype=np.float32)); torch.save({{f'k{{i}}': m[i].clone() for i in "
                            f"range({rows})}}, {str(root / 'naive.pt')!r})"),
        "pandas_to_parquet": ("import numpy as np, pandas as pd; m = np.random.default_rng(0).standard_normal("
                              f"({rows}, {dim}), dtype=np.float32); pd.DataFrame({{'key': [f'k{{i}}' for i in "
                              f"range({rows})], 'embedding': list(m)}}).to_parquet({str(root / 'naive.parquet')!r})"),
    }
    out = {name: measure(f"{sys.executable} -c {json.dumps(c)}", root) for name, c in code.items()}
    for name in ("naive.pt", "naive.parquet"):
        (root / name).unlink()
    return out


def one_size(rows: int, dim: int, parent: str | None) -> dict:
    with tempfile.TemporaryDirectory(dir=parent) as tmp:
        root = Path(tmp)
        config = make_input(root, rows)
        plan = planned_commands(root, config)
        stages: dict[str, dict] = {}
        for stage in STAGES:
            for command, paths in plan.get(stage, []):
                for path in paths:
                    (root / path).parent.mkdir(parents=True, exist_ok=True)
                got = measure(command, root)
                seen = stages.setdefault(stage, {"cpu_s": 0.0, "rss_mb": 0.0, "jobs": 0})
                seen |= {"cpu_s": seen["cpu_s"] + got["cpu_s"], "rss_mb": max(seen["rss_mb"], got["rss_mb"]),
                         "jobs": seen["jobs"] + 1}
            if stage == "discover":
                validate = plan["validate"][0][0]
                write_shards(root, dim, json.loads(re.search(r"--made_with='([^']*)'", validate).group(1)))
        stages["dag"] = measure(f"{sys.executable} -m snakemake -s {REPO / 'Snakefile'} -n --configfile {config} "
                                "--rerun-triggers mtime > /dev/null", root) | {"jobs": 1}
        disk = disk_bytes(root / "results" / "scale")
        matrix = rows * dim * 4
        merged = sum(size for name, size in disk.items() if "_embeddings_all." in name)  # merge_all's, asked for
        return {"rows": rows, "dim": dim,
                "stages": {k: {m: round(v, 2) for m, v in s.items()} for k, s in stages.items()},
                "disk_bytes": disk, "disk_over_matrix": round((sum(disk.values()) - merged) / matrix, 3),
                "disk_over_matrix_with_merge_all": round(sum(disk.values()) / matrix, 3),
                "naive": {k: {m: round(v, 2) for m, v in s.items()} for k, s in naive(rows, dim, root).items()}}


def exponents(small: dict, large: dict) -> dict[str, dict[str, float]]:
    """log(cost ratio) / log(rows ratio) per stage: 1.0 is linear."""
    scale = math.log(large["rows"] / small["rows"])
    out = {}
    for stage, got in large["stages"].items():
        before = small["stages"][stage]
        out[stage] = {m: round(math.log(max(got[m], 1e-3) / max(before[m], 1e-3)) / scale, 2)
                      for m in ("cpu_s", "rss_mb")}
    return out


def main() -> int:
    # The model folder is a stand-in without weights (nothing is embedded): the preflight would stop on it.
    os.environ["EMBEDPIPE_PREFLIGHT"] = "warn"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20000, 50000, 100000])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--dir", help="where the runs are made (default: the system's temporary folder)")
    args = parser.parse_args()
    # the scripts run with `python` as the rules name it: this interpreter's
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    results = []
    for rows in sorted(args.rows):
        results.append(one_size(rows, args.dim, args.dir))
        print(json.dumps(results[-1]), flush=True)
    if len(results) > 1:
        print(json.dumps({"growth_exponent": exponents(results[0], results[-1]),
                          "between_rows": [results[0]["rows"], results[-1]["rows"]]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
