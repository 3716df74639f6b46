"""What each extract job of a run took, read from what the jobs leave: Snakemake's benchmark of the job
(`logs/<run>/extract/<shard>.benchmark.tsv`: the command's wall seconds and the peak memory of its
processes together), the shard's progress file (`results/<run>/progress/<shard>.json`: seconds by
stage, GPU, peak GPU memory) and the job's log (its throughput lines, timestamped). Each is optional:
a number whose source is missing is None, and `source` says what was read.

Standard library only: the card and the planner read it, and so may a login node.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from embedpipe.runtime.runinfo import LOG_PREFIX
from embedpipe.store.progress import FINISHED, ShardProgress, progress_path, read_progress

BENCHMARK_SUFFIX = ".benchmark.tsv"
# loop.log_throughput's line (the tqdm bar may precede it on the same line: searched, not matched)
THROUGHPUT = re.compile(LOG_PREFIX + r"(?P<shard>.+?): (?P<n>\d+)/(?P<total>\d+) files, (?P<rate>[\d.]+) files/s")
ANY_LINE = re.compile(LOG_PREFIX)
# step.py's line before the loop: "shard p10: 10 files; vjepa2 vjepa2-tiny on cpu, batch 4, 1 decode workers"
SETUP = re.compile(r"shard .+?: \d+ files; \S+ \S+ on (?P<device>\S+), batch (?P<batch>\d+)")
# gpu_report's lines: the card at the start, its peak on the last throughput line
GPU_NAME = re.compile(r"GPU \S+: (?P<name>.+?), [\d.]+ GiB total")
GPU_PEAK = re.compile(r"GPU mem peak (?P<gib>[\d.]+) GiB")


@dataclass(frozen=True)
class ShardTiming:
    shard: str
    files: int | None = None  # files this job embedded (rows and error rows)
    wall_s: float | None = None  # the job's command, start to end
    start: float | None = None  # unix seconds
    end: float | None = None
    loop_s: float | None = None  # the embedding loop: every file's decode, model and write, warm-up included
    steady_s_per_file: float | None = None  # per file after the first logged batch (None: one batch only)
    batches_seen: int = 0  # throughput lines with distinct counts
    stage_s: dict[str, float] = field(default_factory=dict)  # decode/model/write seconds (progress file)
    peak_rss_mb: float | None = None  # the job's processes together (benchmark), else the main process
    peak_gpu_gib: float | None = None
    device: str = ""
    gpu_name: str = ""
    batch_size: int = 0
    source: tuple[str, ...] = ()  # which files were read: benchmark, progress, log

    @property
    def fixed_s(self) -> float | None:
        """The job's cost that does not grow with its files: start-up, model load, assembly."""
        if self.wall_s is None or self.loop_s is None:
            return None
        return max(self.wall_s - self.loop_s, 0.0)

    @property
    def s_per_file(self) -> float | None:
        return self.loop_s / self.files if self.loop_s is not None and self.files else None


def read_benchmark(path: Path) -> dict[str, float] | None:
    """Snakemake's benchmark row (s, max_rss in MB) and its end: the file is written as the job ends."""
    try:
        with path.open() as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        end = path.stat().st_mtime
        values = {"s": float(row["s"]), "end": end}
        if (rss := row.get("max_rss")) not in (None, "", "NA", "-"):
            values["max_rss"] = float(rss)
        return values
    except (OSError, StopIteration, KeyError, ValueError):
        return None


def _stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def read_log(path: Path) -> dict[str, object] | None:
    """The log's first and last timestamps and its throughput points (files, time)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    stamps = [_stamp(m.group("time")) for m in ANY_LINE.finditer(text)]
    points: list[tuple[int, float, float]] = []
    for m in THROUGHPUT.finditer(text):
        n, t, rate = int(m.group("n")), _stamp(m.group("time")), float(m.group("rate"))
        if points and points[-1][0] == n:
            points[-1] = (n, points[-1][1], rate)  # the end's line repeats the last batch's count
        else:
            points.append((n, t, rate))
    if not stamps:
        return None
    setup, gpu, peaks = SETUP.search(text), GPU_NAME.search(text), GPU_PEAK.findall(text)
    return {"first": stamps[0], "last": stamps[-1], "points": points,
            "device": setup.group("device") if setup else "", "batch": int(setup.group("batch")) if setup else 0,
            "gpu": gpu.group("name") if gpu else "", "peak_gib": max(map(float, peaks)) if peaks else None}


def steady_per_file(points: list[tuple[int, float, float]]) -> float | None:
    """Seconds per file between the first and the last throughput line: past the first batch's warm-up."""
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])


def shard_timing(run_dir: Path, log_dir: Path, shard: str) -> ShardTiming:
    bench = read_benchmark(log_dir / "extract" / f"{shard}{BENCHMARK_SUFFIX}")
    progress: ShardProgress | None = read_progress(progress_path(run_dir, shard))
    if progress is not None and progress.state != FINISHED:
        progress = None  # a running or failed attempt's numbers are not the job's
    log = read_log(log_dir / "extract" / f"{shard}.log")
    points = log["points"] if log else []
    source = tuple(name for name, there in (("benchmark", bench), ("progress", progress), ("log", log)) if there)
    files = points[-1][0] if points else None
    if progress is not None:
        files = progress.embedded_now or files or max(progress.total - progress.reused, 0)
    if bench:
        wall, end = bench["s"], bench["end"]
    elif progress is not None:
        wall, end = progress.updated - progress.started, progress.updated
    elif log:
        wall, end = log["last"] - log["first"], log["last"]
    else:
        wall = end = None
    stages = {}
    loop = None
    if progress is not None and (seconds := progress.seconds) and (seconds.decode or seconds.model or seconds.write):
        stages = {"decode": seconds.decode, "model": seconds.model, "write": seconds.write}
        loop = sum(stages.values())
    elif points and points[-1][2] > 0:
        loop = points[-1][0] / points[-1][2]  # files over the logged rate (one decimal)
    rss = bench.get("max_rss") if bench else None
    if rss is None and progress is not None:
        rss = progress.peak_rss_mb
    return ShardTiming(
        shard=shard, files=files, wall_s=wall, start=None if wall is None else end - wall, end=end, loop_s=loop,
        steady_s_per_file=steady_per_file(points), batches_seen=len(points), stage_s=stages, peak_rss_mb=rss,
        peak_gpu_gib=progress.peak_gpu_memory_gib if progress and progress.peak_gpu_memory_gib else (
            log["peak_gib"] if log else None),
        device=progress.device if progress and progress.device else (log["device"] if log else ""),
        gpu_name=progress.gpu.name if progress and progress.gpu else (log["gpu"] if log else ""),
        batch_size=progress.batch_size if progress and progress.batch_size else (log["batch"] if log else 0),
        source=source)


def run_timings(run_dir: Path, log_dir: Path, shards: list[str]) -> list[ShardTiming]:
    return [shard_timing(Path(run_dir), Path(log_dir), shard) for shard in shards]
