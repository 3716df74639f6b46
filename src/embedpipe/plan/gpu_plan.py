"""The plan's GPU table: for each type in gpu_types, the trial's model seconds scaled to it (or measured,
when the trial ran on it), the GPU-hours that makes, and the batch that fits its memory."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from embedpipe.config.gpu_memory import BatchEstimate, batch_estimate
from embedpipe.plan.extrapolate import Estimate, device_hours, shard_seconds
from embedpipe.plan.gpu_types import GPU_TYPES, GpuType, gpu_type, model_seconds_on
from embedpipe.plan.timings import ShardTiming

GIB = 2**30 / 1e9  # GB a GiB: torch reports GiB, datasheets GB
HEADROOM = 0.9  # a batch is fitted to 90 % of the card: allocator fragmentation, the CUDA context


def trial_gpu(timings: Sequence[ShardTiming]) -> GpuType | None:
    on_gpu = [t for t in timings if t.device.startswith("cuda") and t.gpu_name]
    return gpu_type(on_gpu[0].gpu_name) if on_gpu else None


def model_share(timings: Sequence[ShardTiming]) -> float | None:
    """The model stage's share of the per-file work (the progress files' stage seconds), or None."""
    staged = [t for t in timings if t.stage_s]
    total = sum(sum(t.stage_s.values()) for t in staged)
    return sum(t.stage_s["model"] for t in staged) / total if total else None


def batch_that_fits(memory_gb: float, encoder: Mapping[str, Any], timings: Sequence[ShardTiming],
                    measured_on_gpu: bool) -> tuple[int | None, str]:
    """The largest batch within HEADROOM of `memory_gb`, and its basis."""
    estimate = batch_estimate(encoder)  # type: ignore[arg-type]
    # the batch that ran: a shard of fewer files than a batch ran one block of its files
    peaks = [(t.peak_gpu_gib * GIB, min(t.batch_size, t.files) if t.files else t.batch_size)
             for t in timings if t.peak_gpu_gib and t.batch_size]
    usable = memory_gb * HEADROOM
    if measured_on_gpu and peaks:
        peak, batch = max(peaks)
        if estimate is not None:
            k = peak / estimate.at(batch)
            calibrated = BatchEstimate(estimate.weights_gb * k, estimate.per_item_gb * k)
            return calibrated.largest_batch(usable), (f"the preflight's memory estimate, calibrated by the trial's "
                                                      f"peak ({peak:.1f} GB at batch {batch}: ×{k:.2f})")
        return math.floor(batch * usable / peak), (f"the trial's peak ({peak:.1f} GB at batch {batch}) taken as all "
                                                   "per-item memory: a lower bound (the weights do not grow)")
    if estimate is not None:
        return estimate.largest_batch(usable), "the preflight's estimate (docs/cluster.md#preflight), not calibrated"
    return None, f"no memory model for {encoder.get('name')} {encoder.get('model')} and no GPU trial to measure"


def gpu_rows(timings: Sequence[ShardTiming], fixed: tuple[float, float, float], full_files: dict[str, int],
             per_file: Estimate, encoder: Mapping[str, Any]) -> list[dict[str, Any]]:
    measured_on = trial_gpu(timings)
    share = model_share(timings)
    rows = []
    for gpu in GPU_TYPES:
        row: dict[str, Any] = {"name": gpu.name, "bf16_tflops": gpu.bf16_tflops, "bandwidth_gbs": gpu.bandwidth_gbs,
                               "memory_gb": gpu.memory_gb, "note": gpu.note}
        batch, basis = batch_that_fits(gpu.memory_gb, encoder, timings, measured_on is not None)
        row |= {"batch_fits": batch, "batch_basis": basis}
        if measured_on is None:
            on_gpu = any(t.device.startswith("cuda") for t in timings)
            row["basis"] = ("not scaled: the trial's GPU is not in this table (or not named in its log)" if on_gpu else
                            "not scaled: the trial ran on the CPU (a CPU's and a GPU's speed have no common measure)")
        elif gpu != measured_on and share is None:
            row["basis"] = "not scaled: no progress file gave the trial's model seconds apart from decode and write"
        else:
            central, low, high = model_seconds_on(gpu, measured_on, share or 0.0)  # the model's share, rescaled
            cpu = 1 - (share or 0.0)  # decode and write: the CPU's, not scaled
            s = (per_file if gpu == measured_on else
                 Estimate(per_file.value * (cpu + central), per_file.low * (cpu + low), per_file.high * (cpu + high),
                          f"the model's share of a file's seconds ({share:.0%}) × {measured_on.name}'s over "
                          f"{gpu.name}'s dense bf16 rate; ×½–×2 and the bandwidth ratio for the range"))
            row |= {"measured": gpu == measured_on, "seconds_per_file": s.as_dict(),
                    "gpu_hours": device_hours(shard_seconds(fixed, full_files, s)).as_dict(),
                    "basis": "measured: the trial ran on it" if gpu == measured_on else s.basis}
        rows.append(row)
    return rows
