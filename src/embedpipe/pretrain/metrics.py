"""Per-step metrics: a CSV in the run folder (one row per step, flushed), and wandb when asked for.

On resume the rows after the checkpoint's step are dropped first: the steps after it run again, and
the curve must hold each step once.
"""

from __future__ import annotations

import csv
import importlib
import logging
import os
from pathlib import Path
from typing import Any

from embedpipe.store.atomic import write_text_atomic

log = logging.getLogger("pretrain")
COLUMNS = ("step", "loss", "pred_loss", "sigreg_loss", "lr", "grad_norm", "step_time", "data_time", "samples_per_s",
           "samples", "skipped", "gpu_mem_mb", "gpu_peak_mb")
WANDB_MISSING = "wandb is enabled but not installed: pip install wandb, or run without --wandb"


class MetricsCsv:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def start(self, step: int) -> None:
        """Keep the rows up to `step` (the checkpoint resumed from; 0 for a fresh run), then append."""
        kept = [row for row in self.rows() if row.get("step", "").isdigit() and int(row["step"]) <= step]
        lines = [",".join(COLUMNS)] + [",".join(row.get(c) or "" for c in COLUMNS) for row in kept]
        write_text_atomic(self.path, "".join(f"{line}\n" for line in lines))
        self._fh = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115 -- open for the run

    def append(self, row: dict[str, Any]) -> None:
        # repr: floats round-trip exactly, so curves compare bit for bit.
        self._fh.write(",".join(_text(row.get(c)) for c in COLUMNS) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


def _text(value: Any) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def import_wandb() -> Any:
    # By name: wandb is an optional dependency, imported only when a run enables it (never a
    # requirement of the library, so not among pyproject's dependencies).
    return importlib.import_module("wandb")


def wandb_installed() -> bool:
    try:
        import_wandb()
    except ImportError:
        return False
    return True


class Wandb:
    """wandb, imported only when enabled (an optional dependency); the run id is kept in the run
    folder so that a resumed job continues the same wandb run."""

    def __init__(self, out: Path, project: str, name: str | None, config: dict[str, Any]) -> None:
        try:
            wandb = import_wandb()
        except ImportError as exc:
            raise ImportError(WANDB_MISSING) from exc
        id_file = out / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.is_file() else wandb.util.generate_id()
        write_text_atomic(id_file, run_id + "\n")
        self.run = wandb.init(project=project, name=name, id=run_id, resume="allow", dir=str(out), config=config)

    def log(self, row: dict[str, Any]) -> None:
        names = {"train/loss": row["loss"], "train/pred_loss": row["pred_loss"],
                 "train/sigreg_loss": row["sigreg_loss"], "train/lr": row["lr"],
                 "train/step_time": row["step_time"], "train/throughput": row["samples_per_s"],
                 "gradients/norm": row["grad_norm"], "system/gpu_memory_mb": row["gpu_mem_mb"],
                 "system/gpu_memory_peak_mb": row["gpu_peak_mb"]}
        self.run.log({k: v for k, v in names.items() if v is not None}, step=row["step"])  # no GPU: no memory

    def close(self) -> None:
        self.run.finish()
