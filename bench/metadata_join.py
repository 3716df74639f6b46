#!/usr/bin/env python
"""What joining MIMIC's record lists costs a run: every staged job reading and indexing the whole list
(before) against the joined rule reading it once and each staged job reading its own slice (now).

    python bench/metadata_join.py --kind mimic_iv_echo --records 525328 --shards 10
    python bench/metadata_join.py --kind mimic_iv_ecg --records 800035 --shards 1000

Synthetic lists in MIMIC's own layout (echo-record-list.csv and echo-study-list.csv; MIMIC-IV-ECG's
record_list.csv), one manifest per group folder as folder sharding makes them. Each phase runs in a
fresh process and reports its CPU seconds and peak RSS: `before` is one staged job's join (the whole
list read, indexed, its shard's keys joined), done by every shard; `joined` is the one job that now
reads the lists and writes every slice; `after` is one staged job's join from its slice. Prints one
JSON line: the run's join CPU before (shards × one job) and now (joined + shards × one job).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE.parent / "workflow" / "scripts"


def make(root: Path, kind: str, records: int, shards: int) -> list[Path]:
    """The lists and one manifest per group folder; 2% of the keys have no record row, as new files do."""
    rng = random.Random(0)
    manifests: dict[str, list[str]] = {}
    rows, studies = [], set()
    for i in range(records):
        group = f"p{1000 + i % shards}" if kind == "mimic_iv_ecg" else f"p{10 + i % shards}"
        subject, study = 10_000_000 + i // 7, 90_000_000 + i // 70
        stem = f"{study}" if kind == "mimic_iv_ecg" else f"{study}_{i % 70:04d}"
        where = f"{group}/p{subject}/s{study}/{stem}"
        manifests.setdefault(group, []).append(f"{where}.hea" if kind == "mimic_iv_ecg" else f"{where}.mp4")
        if rng.random() > 0.02:
            rows.append((subject, study, f"2180-01-{1 + i % 28:02d} 10:00:00", f"files/{where}"))
        studies.add((subject, study))
    if kind == "mimic_iv_ecg":
        (root / "record_list.csv").write_text("subject_id,study_id,file_name,ecg_time,path\n" + "".join(
            f"{s},{t},{p.rsplit('/', 1)[1]},{w},{p}\n" for s, t, w, p in rows))
    else:
        (root / "record_list.csv").write_text("subject_id,study_id,acquisition_datetime,dicom_filepath\n"
                                              + "".join(f"{s},{t},{w},{p}.dcm\n" for s, t, w, p in rows))
        (root / "study_list.csv").write_text("subject_id,study_id,study_datetime,note_id,note_seq,note_charttime\n"
                                             + "".join(f"{s},{t},2180-01-01 09:00:00,{s}-EC-1,1,\n"
                                                       for s, t in sorted(studies)))
    paths = []
    for group, keys in sorted(manifests.items()):
        paths.append(root / "manifests" / f"{group}.txt")
        paths[-1].parent.mkdir(exist_ok=True)
        paths[-1].write_text("".join(f"{k}\n" for k in sorted(keys)))
    return paths


def lists(root: Path, kind: str) -> dict[str, str]:
    files = {"record_list": str(root / "record_list.csv")}
    return files | ({"study_list": str(root / "study_list.csv")} if kind == "mimic_iv_echo" else {})


def phase(name: str, root: Path, kind: str) -> None:
    """Run in a fresh process: one phase, then its CPU seconds and peak RSS on stdout."""
    from embedpipe.discover.scan import read_manifest
    from embedpipe.publish.joined import JoinedSlice
    from embedpipe.publish.kinds import build_joiner

    if name.startswith("make:"):
        _, records, shards = name.split(":")
        print(json.dumps({"shards": len(make(root, kind, int(records), int(shards)))}))
        return
    first = sorted((root / "manifests").glob("*.txt"))[0]
    start = time.process_time()
    if name == "before":
        build_joiner(kind, lists(root, kind)).rows(read_manifest(first))
    elif name == "after":
        JoinedSlice(root / "joined" / f"{first.stem}.parquet").rows(read_manifest(first))
    else:
        flags = [f"--{key}={path}" for key, path in lists(root, kind).items()]
        sys.argv = ["joined.py", "--manifests", *map(str, sorted((root / "manifests").glob("*.txt"))),
                    "--output_dir", str(root / "joined"), f"--metadata={kind}", *flags]
        try:
            runpy.run_path(str(SCRIPTS / "joined.py"), run_name="__main__")
        except SystemExit as exc:
            if exc.code:
                raise
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_s": round(time.process_time() - start, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024)}))


def run_phase(name: str, root: Path, kind: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", name, "--dir", str(root), "--kind", kind],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["mimic_iv_echo", "mimic_iv_ecg"], default="mimic_iv_echo")
    parser.add_argument("--records", type=int, default=525_328)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--dir", help="a folder for the generated lists (default: a temporary one)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)  # make:<records>:<shards>, before, joined, after
    args = parser.parse_args()
    if args.phase:
        phase(args.phase, Path(args.dir), args.kind)
        return 0
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        # Each phase in its own process, the lists made in one too: a child's peak RSS starts from its
        # parent's (Linux keeps the high-water mark across fork and exec), so the parent stays small.
        shards = run_phase(f"make:{args.records}:{args.shards}", root, args.kind)["shards"]
        before, joined, after = (run_phase(name, root, args.kind) for name in ("before", "joined", "after"))
        print(json.dumps({
            "kind": args.kind, "records": args.records, "shards": shards,
            "before_job": before, "joined_job": joined, "after_job": after,
            "run_join_cpu_s_before": round(shards * before["cpu_s"], 1),
            "run_join_cpu_s_now": round(joined["cpu_s"] + shards * after["cpu_s"], 1),
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
