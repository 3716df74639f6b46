"""The full run's card section "Plan against actual": the newest trial's plan.json beside this run
(results/<run>-trial<N>/plan.json) next to what the run took, measured the same way as the trial was
(its extract jobs' timings, its files' bytes), and whether each actual fell within the plan's range."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from embedpipe.plan.extrapolate import Estimate
from embedpipe.plan.report import duration, size
from embedpipe.plan.timings import ShardTiming

PLAN_NAME = "plan.json"
log = logging.getLogger("parquet")


def newest_trial_plan(run_dir: Path) -> Path | None:
    """results/<run>-trial*/plan.json, the newest, for results/<run>."""
    plans = [p for p in run_dir.parent.glob(f"{run_dir.name}-trial*/{PLAN_NAME}")
             if p.parent.name.removeprefix(f"{run_dir.name}-trial").isdigit()]
    return max(plans, key=lambda p: p.stat().st_mtime) if plans else None


def busy_wall(timings: Sequence[ShardTiming]) -> float | None:
    """Seconds during which at least one extract job ran (the union of their intervals): the wall the
    plan predicts, without the gaps where none ran (queue waits, a local run's other jobs between them)."""
    spans = sorted((t.start, t.end) for t in timings if t.start is not None and t.end is not None)
    if not spans:
        return None
    total, (start, end) = 0.0, spans[0]
    for s, e in spans[1:]:
        if s > end:
            total, start = total + end - start, s
        end = max(end, e)
    return total + end - start


def actuals(timings: Sequence[ShardTiming], bytes_by_folder: Mapping[str, int]) -> dict[str, float | None]:
    walls = [t.wall_s for t in timings]
    hours = sum(walls) / 3600 if walls and all(w is not None for w in walls) else None
    return {"device_hours": hours, "wall_seconds": busy_wall(timings),
            **{f"bytes:{k}": float(v) for k, v in bytes_by_folder.items()}}


def comparisons(plan: Mapping[str, Any], actual: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """One row a quantity: its name, the prediction, the actual and whether it held."""
    predicted = {"device_hours": (f"{plan['device_kind']}-hours", plan["device_hours"], "{:.4g}"),
                 "wall_seconds": ("wall of the extract jobs", plan["wall_seconds"], None)}
    predicted |= {f"bytes:{label}": (f"`{label}` bytes", e, "bytes") for label, e in plan["disk_bytes"].items()}
    rows = []
    for key, (name, e, fmt) in predicted.items():
        value = actual.get(key)
        estimate = Estimate(**e)
        rows.append({"key": key, "name": name, "predicted": e, "format": fmt, "actual": value,
                     "within": None if value is None else estimate.holds(value)})
    return rows


def _show(value: float, fmt: str | None) -> str:
    if fmt is None:
        return duration(value)
    return size(value) if fmt == "bytes" else fmt.format(value)


def plan_section(plan_path: Path | None, timings: Sequence[ShardTiming], bytes_by_folder: Mapping[str, int]) -> str:
    """The card's section; "" when no trial planned this run."""
    if plan_path is None:
        return ""
    try:
        plan = json.loads(plan_path.read_text())
        rows = comparisons(plan, actuals(timings, bytes_by_folder))
    except Exception as exc:  # noqa: BLE001 - a plan of another version, or cut short: the card goes on without it
        log.warning("the card leaves out %s (%s: %s)", plan_path, type(exc).__name__, exc)
        return ""
    table = ["| what | predicted | range | actual | within the range |", "|---|---|---|---|---|"]
    for r in rows:
        e, fmt = r["predicted"], r["format"]
        actual = "not measured" if r["actual"] is None else _show(r["actual"], fmt)
        within = {None: "—", True: "yes", False: "**no**"}[r["within"]]
        table.append(f"| {r['name']} | {_show(e['value'], fmt)} | {_show(e['low'], fmt)} – {_show(e['high'], fmt)} "
                     f"| {actual} | {within} |")
    held = sum(1 for r in rows if r["within"])
    judged = sum(1 for r in rows if r["within"] is not None)
    trial = plan["trial"]
    return ("## Plan against actual\n\n"
            f"Before this run, its trial (`{plan_path.parent.name}`: the first {trial['limit']} files of each shard, "
            f"`extract.limit`) planned it: `{plan_path.parent.name}/{PLAN_NAME}`. Predicted with the plan's range "
            "(its basis is in the plan); actual, measured as the trial was: the extract jobs' own time "
            "(Snakemake's benchmark of each job) and this run's files as this card was written. The wall counts "
            "the time at least one extract job ran. "
            f"{held} of {judged} fell within the range.\n\n" + "\n".join(table))
