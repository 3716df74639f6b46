"""`python -m embedpipe status <run_dir> [--watch [SECONDS]]`: where each shard of a run is, from the files
alone (`snakemake status` prints the same table).

It reads what the jobs write to the shared results folder, so it works on a login node while SLURM
jobs run on other nodes, after a kill, and on a finished run: `manifests/<shard>.txt` (the shards and
their files), `embeddings/<shard>.parquet` (a finished shard) and `progress/<shard>.json` (what each
extract job last said: store/progress.py). Standard library only.

The run's ETA is the planner's arithmetic on the live rates:

    ETA = R / sum(r_i) + P / (mean(r) * n)

R: the files the running shards have left, r_i: their rates; P: the files of the shards still to run
(pending, preempted and stale ones); mean(r): the mean of the rates the run's jobs measured (running,
finished, and a preempted or stale job's last), which also stands for a running job's own rate until
its first measure; n: the shards running now (at least 1), taken as the run's parallelism. A failed
shard's files are not counted (it runs again only when asked).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from embedpipe.store.progress import (
    FAILED,
    FINISHED,
    RUNNING,
    STALE_AFTER_S,
    STOPPED,
    ShardProgress,
    progress_path,
    read_progress,
)

PENDING, STALE, PREEMPTED = "pending", "stale", "preempted"
TO_RUN = (PENDING, PREEMPTED, STALE)  # will run again (a requeue, a retry, the next snakemake)
CLEAR = "\033[H\033[2J"


@dataclass(frozen=True)
class ShardStatus:
    shard: str
    state: str  # pending, running, stale, preempted, finished or failed
    total: int
    done: int
    rate: float | None = None  # files/s of the job's attempt
    errors: int = 0
    age_s: float | None = None  # since the progress file was last written
    host: str = ""
    job: str = ""  # the SLURM job (4711_3 for an array task), or "pid <n>" outside SLURM
    note: str = ""  # why a shard is stale, preempted or failed

    @property
    def remaining(self) -> int:
        return max(self.total - self.done, 0)

    @property
    def eta_s(self) -> float | None:
        return self.remaining / self.rate if self.state == RUNNING and self.rate else None


def manifest_files(path: Path) -> int:
    with open(path, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def shard_status(shard: str, total: int, finished: bool, record: ShardProgress | None, now: float,
                 stale_after_s: float = STALE_AFTER_S) -> ShardStatus:
    """One shard's state from its outputs and its progress record (None: no job has written one)."""
    if record is None:
        return ShardStatus(shard, FINISHED if finished else PENDING, total, total if finished else 0)
    age = record.age_s(now)
    seen = {"rate": record.rate, "errors": sum(record.errors.values()), "age_s": age, "host": record.host,
            "job": record.slurm_job or (f"pid {record.pid}" if record.pid else "")}
    live = record.state == RUNNING and age <= stale_after_s
    if finished and not live:  # the shard file is there; a fresh running record is a rerun under way
        return ShardStatus(shard, FINISHED, total, record.done if record.state == FINISHED else total, **seen)
    done = min(record.done, total)
    if record.state == RUNNING:
        if live:
            return ShardStatus(shard, RUNNING, total, done, **seen)
        return ShardStatus(shard, STALE, total, done, **seen,
                           note=f"no update for {duration(age)}: the job may have died (check squeue / its log)")
    if record.state == STOPPED:
        return ShardStatus(shard, PREEMPTED, total, done, **seen,
                           note=f"{record.message or 'stopped'}; waiting for its requeue or the next run")
    if record.state == FAILED:
        return ShardStatus(shard, FAILED, total, done, **seen, note=record.message or "failed (no message)")
    # A finished record without the shard file: Snakemake removed the outputs, of a job it reruns or saw fail.
    return ShardStatus(shard, PENDING, total, done, **seen, note="finished once, its outputs are gone (Snakemake "
                                                                 "removes them before it runs the shard again)")


@dataclass(frozen=True)
class RunStatus:
    run_dir: Path
    shards: list[ShardStatus]
    now: float

    def count(self, *states: str) -> int:
        return sum(s.state in states for s in self.shards)

    @property
    def failed(self) -> bool:
        return self.count(FAILED) > 0

    @property
    def over(self) -> bool:
        """Nothing left that will move on its own: every shard finished or failed."""
        return all(s.state in (FINISHED, FAILED) for s in self.shards)

    def eta_s(self) -> float | None:
        """The module's formula; None when no job has measured a rate yet."""
        measured = [s.rate for s in self.shards if s.rate]
        if not measured:
            return None if any(s.remaining for s in self.shards if s.state in (RUNNING, *TO_RUN)) else 0.0
        mean = sum(measured) / len(measured)
        running = [s for s in self.shards if s.state == RUNNING]
        eta = sum(s.remaining for s in running) / sum(s.rate or mean for s in running) if running else 0.0
        return eta + sum(s.remaining for s in self.shards if s.state in TO_RUN) / (mean * max(len(running), 1))


def run_status(run_dir: str | Path, shards: list[str] | None = None, now: float | None = None,
               stale_after_s: float = STALE_AFTER_S) -> RunStatus:
    """`shards`: the run's (the Snakefile knows them); None: every manifest discover wrote."""
    run_dir, now = Path(run_dir), time.time() if now is None else now
    manifests = run_dir / "manifests"
    if shards is None:
        shards = sorted(p.stem for p in manifests.glob("*.txt")) if manifests.is_dir() else []
    rows = []
    for shard in shards:
        record = read_progress(progress_path(run_dir, shard))
        manifest = manifests / f"{shard}.txt"
        total = manifest_files(manifest) if manifest.is_file() else record.total if record else 0
        finished = (run_dir / "embeddings" / f"{shard}.parquet").is_file()
        rows.append(shard_status(shard, total, finished, record, now, stale_after_s))
    return RunStatus(run_dir, rows, now)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    return f"{seconds / 86400:.1f} d"


def render(status: RunStatus) -> str:
    """The table, the notes of stale, preempted and failed shards, and the totals line."""
    head = ["shard", "state", "done/total", "rate", "ETA", "errors", "updated", "host", "job"]
    rows = [[s.shard, s.state, f"{s.done}/{s.total}", f"{s.rate:.2f}/s" if s.rate else "-", duration(s.eta_s),
             str(s.errors), f"{duration(s.age_s)} ago" if s.age_s is not None else "-", s.host or "-",
             s.job or "-"] for s in status.shards]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [f"embedpipe status: {status.run_dir}  ({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(status.now))})",
             ""]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]]
    if not status.shards:
        lines.append(f"(no shards: no manifest in {status.run_dir / 'manifests'}; has discover run?)")
    notes = [f"  {s.shard}: {s.state}: {s.note}" for s in status.shards if s.note]
    lines += ["", *notes] if notes else []
    done, total = sum(s.done for s in status.shards), sum(s.total for s in status.shards)
    states = ", ".join(f"{n} {state}" for state in (RUNNING, PENDING, PREEMPTED, STALE, FAILED, FINISHED)
                       if (n := status.count(state)))
    share = f" ({100 * done / total:.1f}%)" if total else ""
    eta = "-" if status.over else duration(status.eta_s())
    lines += ["", f"files {done}/{total}{share}; shards: {states or 'none'}; run ETA {eta}"
                  + (" (failed shards not counted)" if status.failed else "")]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m embedpipe status", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="the run's results folder: results/<run> (a trial's: results/<run>-trial<N>)")
    p.add_argument("--watch", nargs="?", type=float, const=10.0, default=None, metavar="SECONDS",
                   help="redraw every SECONDS (default 10) until every shard has finished or failed")
    p.add_argument("--shards-json", default=None, help="the run's shards as a JSON list (default: every manifest)")
    p.add_argument("--stale-after", type=float, default=STALE_AFTER_S, metavar="SECONDS",
                   help=f"a running shard whose file is older is called stale (default {STALE_AFTER_S:g})")
    return p


def main(argv: list[str] | None = None) -> int:
    """0, or 1 when a shard failed; 2 when the folder is not there."""
    args = build_parser().parse_args(argv)
    if not Path(args.run_dir).is_dir():
        print(f"embedpipe status: {args.run_dir} is not a folder (a run's results/<run>)", file=sys.stderr)
        return 2
    shards = json.loads(args.shards_json) if args.shards_json else None
    while True:
        status = run_status(args.run_dir, shards, stale_after_s=args.stale_after)
        print((CLEAR if args.watch else "") + render(status), end="", flush=True)
        if not args.watch or status.over:
            return 1 if status.failed else 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 1 if status.failed else 0
