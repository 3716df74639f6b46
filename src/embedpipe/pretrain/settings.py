"""The pretraining step's settings: the run folder, the data, the model config and the training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedpipe.pretrain.model import MyJepaConfig

# Settings a resumed run must share with its checkpoint, or its curve would not be the same curve.
CURVE_KEYS = ("steps", "batch_size", "learning_rate", "final_learning_rate", "warmup_steps", "weight_decay",
              "betas", "eps", "grad_clip", "seed", "normalise", "resample", "nan", "dumps_normalised")


@dataclass
class PretrainSettings:
    out: Path  # the run folder: checkpoints/, metrics.csv, final.pt
    data: list[str]  # `[name=]path`: .npy dumps, manifests (.txt, keys relative to input_dir), folders
    input_dir: Path | None = None
    model: MyJepaConfig = field(default_factory=MyJepaConfig)
    steps: int = 100_000
    batch_size: int = 2048  # over all ranks
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-6
    warmup_steps: int = 10_000
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-6
    grad_clip: float = 1.0  # max gradient norm; 0: not clipped (the norm is still logged)
    amp: str = "bfloat16"  # bfloat16 | float32; autocast on CUDA only, the CPU runs float32
    device: str = "auto"
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2  # the newest N stay in checkpoints/ (0: all)
    num_workers: int = 4  # decode workers per rank (0: in the main process)
    normalise: str = "mimic_iv_ecg"  # mimic_iv_ecg | record: the ecg_jepa family's encoder.normalise
    resample: str | None = None  # None: the ecg_jepa family's default (fft)
    nan: str | None = None  # None: the family's default (interpolate)
    dumps_normalised: bool = False  # .npy dumps hold normalised signals already (else mV, normalised here)
    log_every: int = 50
    wandb: bool = False
    wandb_project: str = "myjepa"
    wandb_name: str | None = None

    def __post_init__(self) -> None:
        if self.amp not in ("bfloat16", "float32"):
            raise ValueError(f"amp {self.amp!r}: bfloat16 or float32")
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} {getattr(self, name)}: must be at least 1")
        if self.warmup_steps < 0 or self.num_workers < 0 or self.keep_checkpoints < 0 or self.grad_clip < 0:
            raise ValueError("warmup_steps, num_workers, keep_checkpoints and grad_clip cannot be negative")

    def as_dict(self) -> dict[str, Any]:
        """Plain values (a checkpoint's `train`, wandb's config); `model` as a dict."""
        paths = {"out": str(self.out), "input_dir": str(self.input_dir) if self.input_dir else None}
        return asdict(self) | paths | {"betas": list(self.betas)}
