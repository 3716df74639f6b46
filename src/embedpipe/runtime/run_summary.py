"""The lines a successful run ends with (the Snakefile's `onsuccess:`): rows, error rows by type, where
the dataset, report and card are, and how to upload; only for what this run made.

Read from validation/metrics.json, which already holds the counts: no shard is opened again.
Standard library only: the Snakefile imports it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

ERROR_TYPES_SHOWN = 4


@dataclass(frozen=True)
class RunOutputs:
    """Where a run's outputs are (rules/common.smk's names) and what it is."""

    run: str
    run_dir: str
    metrics: str
    report: str
    dataset_dir: str
    card: str
    merged: tuple[str, ...] = ()
    trial_files: int | None = None
    repo_id: str | None = None
    upload_dry_run: bool = False
    # how this run was started: `snakemake upload` needs the same config files and --config values
    configfiles: tuple[str, ...] = ()
    config_args: tuple[str, ...] = ()


def summary_lines(outputs: RunOutputs, ran: Collection[str]) -> list[str]:
    """The summary of the rules in `ran` (the names of the jobs this run ran); none when the run made
    neither the dataset, its validation nor merge_all's files (an export, the doctor)."""
    lines: list[str] = []
    if "validate" in ran or "parquet" in ran:
        lines.append(_counts_line(outputs))
        if "parquet" in ran:
            lines.append(f"  dataset  {outputs.dataset_dir}/ (card {outputs.card})")
        lines.append(f"  report   {outputs.report}")
    if "merge_all" in ran and outputs.merged:
        if not lines:
            lines.append(f"embedpipe run {outputs.run}: merge_all's files written")
        lines.append(f"  merged   {', '.join(outputs.merged)}")
    if lines and "parquet" in ran:
        lines.append(_next_step(outputs))
    return lines


def _counts_line(outputs: RunOutputs) -> str:
    what = (f"trial run {outputs.run} (the first {outputs.trial_files} files of each shard)" if outputs.trial_files
            else f"run {outputs.run}")
    try:
        with open(outputs.metrics, encoding="utf-8") as f:
            metrics = json.load(f)
    except (OSError, ValueError):
        return f"embedpipe {what}: done; outputs in {outputs.run_dir}/"
    totals = metrics.get("totals", {})
    return (f"embedpipe {what}: {totals.get('rows', '?')} rows from {totals.get('files', '?')} files, "
            f"{_errors(totals.get('errors', 0), metrics.get('errors_by_type') or [])}")


def _errors(count: int, by_type: Sequence[dict[str, Any]]) -> str:
    if not count:
        return "no error rows"
    shown = ", ".join(f"{t['error_type']} {t['count']}" for t in by_type[:ERROR_TYPES_SHOWN])
    more = f", {len(by_type) - ERROR_TYPES_SHOWN} more types" if len(by_type) > ERROR_TYPES_SHOWN else ""
    return f"{count} error rows ({shown}{more}; listed in the report)"


def _next_step(outputs: RunOutputs) -> str:
    if outputs.trial_files:
        return ("  a trial is not uploaded: the full run is the same command without extract.limit; its outputs "
                f"stay in {outputs.run_dir}/")
    command = "snakemake upload" + "".join(f" --configfile {shlex.quote(path)}" for path in outputs.configfiles)
    if outputs.config_args:
        command += " --config " + " ".join(map(shlex.quote, outputs.config_args))
    if not outputs.repo_id:
        return f"  upload   set upload.repo_id, then: HF_TOKEN=<your token> {command}"
    plan = " (upload.dry_run: writes the plan, pushes nothing)" if outputs.upload_dry_run else ""
    return f"  upload   HF_TOKEN=<your token> {command}  → {outputs.repo_id}{plan}"
