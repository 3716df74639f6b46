"""The extract jobs' own account of each shard, from `results/<run>/progress/<shard>.json` (store/progress.py):
files, rate, stage seconds, peak memory, where it ran. A section of the validation report and
`throughput` in metrics.json (the card reads it there).

Nothing here fails validation: a run made before these files existed has none, and a shard without
one is left out. A shard whose last record says it finished with fewer or more files done than its
total is a warning that names it (the counts checks judge the shard file itself).
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

from embedpipe.store.html_page import html_table
from embedpipe.store.progress import FINISHED, progress_path, read_progress

log = logging.getLogger(__name__)


def shard_throughput(run_dir: Path, shards: list[str]) -> dict[str, Any]:
    """{"shards": one row per shard with a record, "warnings": [...]} (both empty without records)."""
    rows, warnings = [], []
    for shard in shards:
        record = read_progress(progress_path(run_dir, shard))
        if record is None:
            continue
        if record.state == FINISHED and record.done != record.total:
            warnings.append(f"{shard}: its extract job finished with {record.done} of {record.total} files done")
        gpu = record.gpu
        rows.append({
            "shard": shard, "state": record.state, "files": record.total, "done": record.done,
            "embedded": record.embedded_now, "reused": record.reused, "errors": sum(record.errors.values()),
            "errors_by_type": record.errors, "rate": record.rate,
            "seconds": {"wall": round(record.updated - record.started, 3), "decode": record.seconds.decode,
                        "model": record.seconds.model, "write": record.seconds.write},
            "peak_rss_mb": record.peak_rss_mb, "peak_gpu_memory_gib": record.peak_gpu_memory_gib,
            "gpu": gpu.name if gpu is not None else None, "device": record.device, "batch_size": record.batch_size,
            "host": record.host, "slurm_job": record.slurm_job, "attempt": record.attempt,
        })
    for line in warnings:
        log.warning("%s", line)
    return {"shards": rows, "warnings": warnings}


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def throughput_section(throughput: dict[str, Any]) -> str:
    """The report's HTML section; empty when no shard has a record."""
    if not throughput["shards"]:
        return ""
    table = html_table(
        ["shard", "state", "files done", "errors", "files/s", "wall s", "decode s", "model s", "write s",
         "peak RSS MB", "peak GPU GiB", "device", "host", "SLURM job"],
        [[r["shard"], r["state"], f"{r['done']}/{r['files']}", r["errors"], _number(r["rate"], 2),
          _number(r["seconds"]["wall"]), _number(r["seconds"]["decode"]), _number(r["seconds"]["model"]),
          _number(r["seconds"]["write"]), _number(r["peak_rss_mb"], 0), _number(r["peak_gpu_memory_gib"], 2),
          r["gpu"] or r["device"] or "-", r["host"] or "-", r["slurm_job"] or "-"] for r in throughput["shards"]])
    warnings = "".join(f"<p><strong>warning:</strong> {html.escape(w)}</p>" for w in throughput["warnings"])
    note = ("<p><em>Each shard's last extract job (a resumed shard: its last attempt's seconds and rate). "
            "decode: waiting for decoded files; model: the forward passes (on a GPU, the waits for it); "
            "write: parts and the shard file. Peak RSS: the job's main process.</em></p>")
    return f"<h2>Extract throughput</h2>{warnings}{table}{note}"
