"""The `plan` config block: what the planner cannot read from the trial or the launch. Standard library
only: the Snakefile reads it when it builds the DAG."""

from __future__ import annotations

from dataclasses import dataclass

from embedpipe.runtime.step_settings import setting


@dataclass(frozen=True)
class PlanOptions:
    gpus: int | None = setting(None, "GPUs the full run may use at once (an allocation's size); null: as many as the "
                                     "launch runs extract jobs at once (the profile's jobs, or locally cores over "
                                     "an extract job's threads)")
    job_minutes: int | None = setting(None, "one job's time limit on the cluster, in minutes: a shard must finish or "
                                            "checkpoint inside it; null: the profile's extract runtime")

    def __post_init__(self) -> None:
        # `--config plan='{gpus: 4}'` gives "4": the schema takes digits as text, the class makes them numbers
        for key in ("gpus", "job_minutes"):
            if (value := getattr(self, key)) is not None:
                object.__setattr__(self, key, int(value))
