"""Will the extract batch fit the GPU the launch asks for? An estimate from the preset table, made
before any job, so a batch sized for a large card does not go out to a 16 GB one as a 2-day job that
fails at its first batch (and twice more on retry).

The estimate (docs/cluster.md#preflight says it to users too), for a V-JEPA 2 preset at batch b:

    weights + b × (tokens × width × ACTIVATION_BYTES + clip bytes)       (activations × 2 in fp32)
    tokens = frames / tubelet × (crop / 16)²,  weights = parameters × 2 bytes (bf16),
    clip = frames × 3 × crop² × 4 bytes (the float clip on the GPU)

ACTIVATION_BYTES (64) counts, per token and channel, the tensors one inference layer holds at its
peak in bf16 (the residual, its norm, q/k/v and their rotated copies, the MLP's 4× hidden twice:
about 25 values, 50 bytes), rounded up. It is not measured; it is checked against the presets'
default batches, the EchoJEPA script's, run on 48 GB L40S cards: each fits 48 GB by this estimate
(vitl at 256, the largest, at about 38 GB). The estimate errs high, and only a batch over the card's
memory by MARGIN stops. A default-batch rule (memory ∝ batch / default batch × 48 GB) was not used:
the defaults shrink faster than the models grow (vitg-384's 16 is some 5 GB of activations), so it
would stop configs that run, DeepEarth's vitg-384 at batch 32 among them. Families without a preset
table (metis, the ECG families, a custom V-JEPA 2) are not estimated: their models are small or of
unknown size.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from embedpipe.encoders.options import FamilyOptions
from embedpipe.encoders.vjepa2.presets import TUBELET, VJEPA2_PRESETS

ACTIVATION_BYTES = 64  # per token and channel at one layer's peak, bf16 (see above)
PATCH = 16  # every V-JEPA 2 preset's spatial patch
MARGIN = 1.25  # the estimate errs high: stop only past the card's memory by a quarter
# Parameters of the V-JEPA 2 encoders (the paper's ViT-L/H/g: 300M, 600M, 1B).
PRESET_PARAMS = {"vitl": 0.30e9, "vith": 0.63e9, "vitg": 1.01e9, "vitg-384": 1.01e9}

# GPU memory in GB by SLURM gpu_model, first match wins (the name lower-cased, without '-', '_' and
# spaces). Where one name covers two cards, the smaller is assumed unless the name says otherwise
# (a100 → 40 GB, a100-80 / a100_80gb → 80; v100 → 16, v100-32 → 32; rtx6000 → the 24 GB Quadro,
# rtx6000ada / a6000 → 48).
GPU_MEMORY_GB: tuple[tuple[str, float], ...] = (
    (r"gh200", 96), (r"h200", 141), (r"h100", 80), (r"b200", 180),
    (r"a100.*80|80g.*a100", 80), (r"a100", 40),
    (r"l40", 48), (r"a6000|6000ada", 48), (r"rtx6000", 24), (r"rtx8000", 48), (r"a40(?!\d)", 48),
    (r"v100.*32|32g.*v100", 32), (r"v100", 16), (r"a30(?!\d)", 24), (r"a10(?!\d)", 24), (r"l4", 24), (r"t4", 16),
    (r"p100", 16), (r"mi300", 192), (r"mi250", 64), (r"3090|4090", 24),
)


def gpu_memory_gb(gpu_model: str | None) -> float | None:
    """The memory of the GPU SLURM calls `gpu_model`, or None when the table does not know it."""
    if not gpu_model:
        return None
    name = re.sub(r"[-_\s]", "", gpu_model.lower())
    return next((gb for pattern, gb in GPU_MEMORY_GB if re.search(pattern, name)), None)


@dataclass(frozen=True)
class BatchEstimate:
    weights_gb: float
    per_item_gb: float

    def at(self, batch: int) -> float:
        return self.weights_gb + batch * self.per_item_gb

    def largest_batch(self, gpu_gb: float) -> int:
        return max(0, math.floor((gpu_gb - self.weights_gb) / self.per_item_gb))


def batch_estimate(encoder: FamilyOptions) -> BatchEstimate | None:
    """The memory model of the configured encoder, where the preset table gives one."""
    if encoder.get("name") != "vjepa2" or (preset := VJEPA2_PRESETS.get(encoder.get("model"))) is None:
        return None
    frames = estimate_frames(encoder)
    fp32 = 2 if encoder.get("precision") == "fp32" else 1
    tokens = frames // TUBELET * (preset.crop // PATCH) ** 2
    clip = frames * 3 * preset.crop**2 * 4
    per_item = tokens * preset.dim * ACTIVATION_BYTES * fp32 + clip
    return BatchEstimate(PRESET_PARAMS[encoder["model"]] * 2 * fp32 / 1e9, per_item / 1e9)


def estimate_frames(encoder: FamilyOptions) -> int:
    return encoder.get("image_frames") if encoder.get("media") == "image" else encoder.get("num_frames")


def batch_problem(encoder: FamilyOptions, gpu_model: str | None) -> str | None:
    """Why encoder.batch_size clearly does not fit `gpu_model`, with the largest batch that does."""
    estimate, gpu_gb = batch_estimate(encoder), gpu_memory_gb(gpu_model)
    batch = encoder.get("batch_size")
    if estimate is None or gpu_gb is None or not batch or estimate.at(batch) <= gpu_gb * MARGIN:
        return None
    largest = estimate.largest_batch(gpu_gb)
    fix = f"set encoder.batch_size: {largest} or less" if largest else "choose a GPU with more memory"
    return (f"{batch} needs about {estimate.at(batch):.0f} GB on the GPU (an estimate for {encoder['model']} at "
            f"{estimate_frames(encoder)} frames), more than a {gpu_model}'s {gpu_gb:g} GB: {fix} "
            "(or ask for a larger gpu_model in the profile)")
