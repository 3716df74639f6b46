"""The `extract` config block, as the extract job takes it: the only defaults of these settings in code.

Torch-free: the Snakefile reads it when it builds the DAG.
"""

from __future__ import annotations

from dataclasses import dataclass

from embedpipe.readers.limits import DEFAULT_MAX_DECODED_GB
from embedpipe.runtime.step_settings import SettingError, setting

BLOCK = "extract"


@dataclass(frozen=True)
class ExtractOptions:
    num_workers: str | int = setting("auto", "decode workers per shard job: auto = the job's CPUs - 1; "
                                              "0 = decode in the job's own process")
    save_every: int = setting(10000, "rows per atomic part file (the resume granularity)")
    part_mb: int = setting(512, "a part is also written once its rows hold this many MB (image tokens)")
    assemble_memory_mb: int = setting(512, "MB the shard's assembly from its parts may hold beside the interpreter, "
                                           "whatever the shard's size (its rows are gathered and written an eighth "
                                           "of this at a time)")
    gpu_slots: str | int = setting("auto", "one machine, several GPUs: auto (each job claims a free GPU; skipped "
                                           "under SLURM), none, or device indices such as 0,1 (repeats share one)")
    gpu_lock_dir: str | None = setting(None, "where slot locks live; null = a machine-local folder in $TMPDIR")
    log_every: int = setting(50, "a throughput log line every N batches")
    decode_timeout_s: float = setting(300.0, "a file that takes longer to open and decode is an error row (a FIFO, "
                                             "a hung mount)")
    max_decoded_gb: float = setting(DEFAULT_MAX_DECODED_GB, "GiB one file may decode to, from its header: more is "
                                                            "an error row (a decode worker may grow by 3x this)")
    require_gpu: bool = setting(False, "an extract job that sees no GPU fails at once (as the Metis script refused "
                                       "the CPU)")
    # Applied by discover (each manifest holds the first N keys): the extract job embeds its manifest.
    limit: int | None = setting(None, "a trial run: the first N files of each shard (in key order), the whole "
                                      "DAG, in results/<run>-trial<N>/")

    def __post_init__(self) -> None:
        # The schema takes a trial's "50" and a slot list's 0 as the YAML gives them.
        if self.limit is not None:  # 0: every file, as the EchoJEPA script's --limit 0
            object.__setattr__(self, "limit", int(self.limit) or None)
        object.__setattr__(self, "gpu_slots", str(self.gpu_slots).replace(" ", ""))
        # The schema checks the config's values before any job; these are a value given by hand.
        for key in ("save_every", "part_mb", "assemble_memory_mb", "log_every", "decode_timeout_s", "max_decoded_gb",
                    "limit"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise SettingError(f"{BLOCK}.{key}: {value} must be more than 0")
