"""Will the extract batch fit the GPU the launch asks for? An estimate from the preset table, made
before any job, so a batch sized for an L40S does not go out to a 16 GB card as a 2-day job that
fails at its first batch (and twice more on retry).

The basis (docs/cluster.md#preflight says it to users too): the V-JEPA 2 presets' default batches
are the EchoJEPA script's, sized for a 48 GB L40S at 16 frames. So a preset's memory at batch b is
taken as

    weights + b × per_item,   per_item = (48 GB − weights) / default_batch × frames / 16 × (2 if fp32)

weights being the parameter count × 2 bytes (bf16). Activations grow linearly with the batch and
with the tokens (frames); SDPA's attention keeps them linear in the tokens. This assumes the default
batch fills the 48 GB; it likely leaves headroom, so the estimate errs high, and only a batch
*clearly* over (by MARGIN) stops. Families without a preset table (metis, the ECG families, a
custom V-JEPA 2) are not estimated: their models are small or of unknown size.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from embedpipe.encoders.options import FamilyOptions
from embedpipe.encoders.vjepa2.presets import VJEPA2_PRESETS

L40S_GB = 48.0
PRESET_FRAMES = 16  # the frames the presets' default batches were sized at (num_frames' default)
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
    (r"l40", 48), (r"a6000|6000ada", 48), (r"rtx6000", 24), (r"rtx8000", 48), (r"a40", 48),
    (r"v100.*32|32g.*v100", 32), (r"v100", 16), (r"a30", 24), (r"a10", 24), (r"l4", 24), (r"t4", 16),
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
    frames = encoder.get("image_frames") if encoder.get("media") == "image" else encoder.get("num_frames")
    fp32 = 2.0 if encoder.get("precision") == "fp32" else 1.0
    weights = PRESET_PARAMS[encoder["model"]] * 2 * fp32 / 1e9
    per_item = (L40S_GB - PRESET_PARAMS[encoder["model"]] * 2 / 1e9) / preset.batch_size
    return BatchEstimate(weights, per_item * (frames or PRESET_FRAMES) / PRESET_FRAMES * fp32)


def batch_problem(encoder: FamilyOptions, gpu_model: str | None) -> str | None:
    """Why encoder.batch_size clearly does not fit `gpu_model`, with the largest batch that does."""
    estimate, gpu_gb = batch_estimate(encoder), gpu_memory_gb(gpu_model)
    batch = encoder.get("batch_size")
    if estimate is None or gpu_gb is None or not batch or estimate.at(batch) <= gpu_gb * MARGIN:
        return None
    largest = estimate.largest_batch(gpu_gb)
    fix = f"set encoder.batch_size: {largest} or less" if largest else "choose a GPU with more memory"
    return (f"{batch} needs about {estimate.at(batch):.0f} GB on the GPU ({encoder['model']}, an estimate from its "
            f"preset's batch for a 48 GB L40S), more than a {gpu_model}'s {gpu_gb:g} GB: {fix} "
            "(or ask for a larger gpu_model in the profile)")
