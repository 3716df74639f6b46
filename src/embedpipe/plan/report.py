"""The plan: a trial run's measurements extrapolated to the full run (plan.json), and the same as a
short text (plan.md and the console). Every number carries its range and its basis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from embedpipe.config.disk_space import free_bytes
from embedpipe.plan import extrapolate as x
from embedpipe.plan.gpu_plan import gpu_rows
from embedpipe.plan.sizes import ERRORS, FileBytes
from embedpipe.plan.timings import ShardTiming

VERSION = 1
LINKED = "parquet/"  # hard links of staged/: no bytes of its own


@dataclass(frozen=True)
class PlanInputs:
    """What the planner is told besides the trial's files: the full counts and the launch."""

    run: str
    limit: int
    full_files: dict[str, int]  # shard → the full run's files (manifest + beyond the limit)
    slots: int  # extract jobs at once
    slots_basis: str
    job_minutes: float | None
    shard_by: str
    num_shards: int
    save_every: int
    batch_size: int
    max_error_fraction: float
    results_dir: str
    encoder: Mapping[str, Any]


def per_row_by_folder(files: Sequence[FileBytes]) -> dict[str, dict[str, float | None]]:
    """Each folder's measured bytes a row (its rows' files, weighted by rows) and its files' fixed bytes."""
    out = {}
    for label in dict.fromkeys(f.label for f in files):
        rows = [f for f in files if f.label == label and f.counts != ERRORS and f.per_row is not None and f.rows]
        n = sum(f.rows for f in rows)
        out[label] = {"bytes_per_row": sum(f.per_row * f.rows for f in rows) / n if n else None,
                      "fixed_bytes": sum(f.fixed for f in files if f.label == label)}
    return out


def make_plan(timings: Sequence[ShardTiming], files: Sequence[FileBytes], given: PlanInputs) -> dict[str, Any]:
    s = x.per_file_seconds(timings)
    fixed = x.fixed_range(timings, s)
    at_central = x.fixed_seconds(timings, s.value)
    shards = x.shard_seconds(fixed, given.full_files, s)
    hours = x.device_hours(shards)
    device = next((t.device for t in timings if t.device), "")
    on_gpu = device.startswith("cuda")
    trial_files = sum(t.files or 0 for t in timings)
    rows_of = [f for f in files if f.label == "embeddings/" and not f.sidecar]
    trial_rows = sum(f.rows for f in rows_of if f.counts != ERRORS)
    trial_errors = sum(f.rows for f in rows_of if f.counts == ERRORS)
    total = sum(given.full_files.values())
    rows = x.full_rows(trial_rows + trial_errors, trial_errors, total, given.max_error_fraction)
    disk = x.folder_bytes(files, rows, trial_rows, trial_errors)
    own_high = sum(e.high for label, e in disk.items() if label != LINKED)
    free = free_bytes(given.results_dir)
    staged = [t for t in timings if t.stage_s]
    staged_files = sum(t.files or 0 for t in staged)
    stages = ({k: sum(t.stage_s[k] for t in staged) / staged_files for k in ("decode", "model", "write")}
              if staged_files else None)
    rss = [t.peak_rss_mb for t in timings if t.peak_rss_mb is not None]
    gpu_peak = [t.peak_gpu_gib for t in timings if t.peak_gpu_gib is not None]
    notes = []
    if not on_gpu:
        notes.append(f"the trial ran on {device or 'the CPU'}: its hours are device-hours of that device, and no "
                     "GPU type is scaled from them")
    if not staged:
        notes.append("no shard has a progress file (results/<run>/progress/): the per-stage split is not known; "
                     "per-file seconds come from the extract logs' throughput lines")
    if missing := [t.shard for t in timings if t.wall_s is None or t.loop_s is None]:
        notes.append(f"no timings for shard(s) {', '.join(missing)}: left out of the per-file and fixed costs")
    return {
        "version": VERSION,
        "run": given.run,
        "trial": {"limit": given.limit, "shards": len(timings), "files": trial_files, "rows": trial_rows,
                  "error_rows": trial_errors, "device": device or "unknown",
                  "gpu": next((t.gpu_name for t in timings if t.gpu_name), None),
                  "batch_size": given.batch_size,
                  "sources": sorted({src for t in timings for src in t.source})},
        "per_file_seconds": s.as_dict(),
        "stage_seconds_per_file": stages,
        "fixed_seconds": {"mean": fixed[0], "lowest_shard": at_central[1], "highest_shard": at_central[2],
                          "low": fixed[1], "high": fixed[2],
                          "basis": "each trial job's wall minus its files × seconds a file: start-up, model load, "
                                   f"warm-up, the shard file's assembly; bounds ±{x.FIXED_SPREAD:.0%} for the "
                                   "node's load and filesystem cache, at the low and high seconds a file"},
        "full": {"files": given.full_files, "total_files": total, "rows": rows.rows.as_dict(),
                 "error_rows": rows.errors.as_dict()},
        "shard_seconds": {k: e.as_dict() for k, e in shards.items()},
        "device_hours": hours.as_dict(),
        "device_kind": "GPU" if on_gpu else (device or "cpu").upper(),
        "parallel_jobs": {"jobs": given.slots, "basis": given.slots_basis},
        "wall_seconds": x.run_wall(shards, given.slots).as_dict(),
        "disk_bytes": {label: e.as_dict() for label, e in disk.items()},
        "bytes_per_row": per_row_by_folder(files),
        "disk": {"own_bytes_high": own_high, "free_bytes": free, "results_dir": given.results_dir,
                 "fits": None if free is None else free >= own_high,
                 "basis": "every folder but parquet/ (hard links of staged/) at its high bound; while a shard runs "
                          "its parts hold about its embeddings/ file once more"},
        "memory": {"peak_rss_mb": max(rss) if rss else None, "peak_gpu_memory_gib": max(gpu_peak) if gpu_peak else None,
                   "basis": "the trial's largest job (its processes together, Snakemake's benchmark); a job's memory "
                            "does not grow with its files (parts every save_every rows, assembly within "
                            "extract.assemble_memory_mb)"},
        "gpu_types": gpu_rows(timings, fixed, given.full_files, s, given.encoder),
        "suggestions": [asdict(v) for v in x.suggestions(shards, s, fixed[2], given.job_minutes, given.shard_by,
                                                          given.num_shards, given.save_every, given.batch_size,
                                                          total)],
        "notes": notes,
    }


def span(e: Mapping[str, float], fmt: str = "{:.3g}") -> str:
    return f"{fmt.format(e['value'])} ({fmt.format(e['low'])}–{fmt.format(e['high'])})"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def size(n: float) -> str:
    for unit, step in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= step:
            return f"{n / step:.3g} {unit}"
    return f"{n:.0f} B"


def render(plan: Mapping[str, Any], where: str) -> str:
    """plan.md: what the console prints."""
    t, full, kind = plan["trial"], plan["full"], plan["device_kind"]
    s, hours, wall = plan["per_file_seconds"], plan["device_hours"], plan["wall_seconds"]
    lines = [f"# Plan for {plan['run']} (from its trial of {t['limit']} files a shard)", "",
             f"Trial: {t['files']} files in {t['shards']} shards on {t['device']}"
             + (f" ({t['gpu']})" if t["gpu"] else "") + f", batch {t['batch_size']}; read from "
             + ", ".join(t["sources"]) + f". Full run: {full['total_files']:,} files. Ranges are low–high.", "",
             f"- seconds a file: {span(s)} — {s['basis']}"]
    if stages := plan["stage_seconds_per_file"]:
        lines.append("- by stage, seconds a file: " + ", ".join(f"{k} {v:.3g}" for k, v in stages.items()))
    f, jobs = plan["fixed_seconds"], plan["parallel_jobs"]["jobs"]
    lines += [f"- fixed cost a job: {f['mean']:.3g} s (shards {f['lowest_shard']:.3g}–{f['highest_shard']:.3g}; "
              f"bounds {f['low']:.3g}–{f['high']:.3g}) — {f['basis']}",
              f"- {kind}-hours: {hours['value']:.3g} ({hours['low']:.3g}–{hours['high']:.3g})",
              f"- wall with {jobs} job{'' if jobs == 1 else 's'} at once ({plan['parallel_jobs']['basis']}): "
              f"{duration(wall['value'])} ({duration(wall['low'])}–{duration(wall['high'])})",
              f"- rows: {span(full['rows'], '{:,.0f}')}, error rows {span(full['error_rows'], '{:,.0f}')}", "",
              "| folder | a row (measured) | fixed (footers) | bytes | low | high |", "|---|---|---|---|---|---|"]
    for label, e in plan["disk_bytes"].items():
        measured = plan["bytes_per_row"][label]
        row = "—" if measured["bytes_per_row"] is None else f"{measured['bytes_per_row']:,.0f} B"
        lines.append(f"| `{label}` | {row} | {size(measured['fixed_bytes'])} | {size(e['value'])} | {size(e['low'])} "
                     f"| {size(e['high'])} |")
    d, m = plan["disk"], plan["memory"]
    free = "unknown" if d["free_bytes"] is None else size(d["free_bytes"])
    lines += ["", f"Disk: up to {size(d['own_bytes_high'])} of its own; {free} free under {d['results_dir']}"
              + ("" if d["fits"] is None else (" — fits" if d["fits"] else " — **does not fit**")) + ".",
              f"Memory a job: {m['peak_rss_mb'] or 'unknown'} MB peak RSS"
              + (f", {m['peak_gpu_memory_gib']:.2f} GiB GPU" if m["peak_gpu_memory_gib"] else "") + ".", "",
              "| GPU | GB | bf16 TFLOPS | batch that fits | s a file | GPU-hours |", "|---|---|---|---|---|---|"]
    for g in plan["gpu_types"]:
        per = span(g["seconds_per_file"]) if g.get("seconds_per_file") else "—"
        gh = span(g["gpu_hours"]) if g.get("gpu_hours") else "—"
        batch = g["batch_fits"] if g["batch_fits"] is not None else "—"
        lines.append(f"| {g['name']}{' (measured)' if g.get('measured') else ''} | {g['memory_gb']:g} | "
                     f"{g['bf16_tflops']:g} | {batch} | {per} | {gh} |")
    gpu = plan["gpu_types"][0]
    lines += ["", f"GPU rows: {gpu.get('basis', '')}. Batch: {gpu['batch_basis']}.", ""]
    lines += [f"- `{v['key']}`: {v['value']} — {v['why']}" for v in plan["suggestions"]]
    lines += [f"- note: {n}" for n in plan["notes"]]
    lines += ["", f"Whole plan: {where}"]
    return "\n".join(lines) + "\n"
