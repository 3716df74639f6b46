"""GPU types a user picks from, as their datasheets state them: dense bfloat16 tensor throughput (not
the "with sparsity" figure datasheets print first, which is twice it) and memory bandwidth; their memory
is the preflight's table (config/gpu_memory.py).

Sources: NVIDIA's product pages and the datasheets they link (SXM variants unless named):
- V100: https://www.nvidia.com/en-us/data-center/v100/ (no bfloat16: the float16 tensor figure)
- T4: https://www.nvidia.com/en-us/data-center/tesla-t4/ (no bfloat16: the float16 tensor figure)
- A10: https://www.nvidia.com/en-us/data-center/products/a10-gpu/
- A40: https://www.nvidia.com/en-us/data-center/a40/
- L4: https://www.nvidia.com/en-us/data-center/l4/
- L40S: https://www.nvidia.com/en-us/data-center/l40s/
- A100 (40 and 80 GB): https://www.nvidia.com/en-us/data-center/a100/
- H100 (SXM and PCIe): https://www.nvidia.com/en-us/data-center/h100/
- H200: https://www.nvidia.com/en-us/data-center/h200/

Scaling a trial's model seconds by the ratio of two rows' tensor throughput is an estimate: what a
model reaches of a card's peak differs between generations, clocks under power limits, and with the
batch (a small model or batch is bound by memory bandwidth or kernel launches, not tensor throughput).
The planner states a factor of 2 either way around the compute ratio (UNCERTAINTY), and widens it to
the bandwidth ratio where that lies outside. A trial on one of these cards is that card's row,
measured, not scaled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from embedpipe.config.gpu_memory import gpu_memory_gb

UNCERTAINTY = 2.0  # the scaled model seconds lie within ×1/2 … ×2 of the compute-ratio figure


@dataclass(frozen=True)
class GpuType:
    name: str
    pattern: str  # matched against torch's device name / SLURM's gpu_model, lower-cased without '-', '_', ' '
    bf16_tflops: float  # dense, tensor cores (float16 where the card has no bfloat16)
    bandwidth_gbs: float
    note: str = ""

    @property
    def memory_gb(self) -> float:
        """From the preflight's table, the one list of GPU memory (a name that covers two cards, V100 or
        A100, is the smaller unless it says otherwise)."""
        return gpu_memory_gb(self.name) or 0.0


# First match wins: the more specific names first (a100 80 before a100, l40s before l40, a10 not a100).
GPU_TYPES: tuple[GpuType, ...] = (
    GpuType("H200", r"h200", 989.5, 4800),
    GpuType("H100 PCIe", r"h100.*pcie", 756.0, 2000),
    GpuType("H100", r"h100", 989.5, 3350),
    GpuType("A100-80", r"a100.*80|80g.*a100", 312.0, 2039),
    GpuType("A100-40", r"a100", 312.0, 1555),
    GpuType("L40S", r"l40s", 362.05, 864),
    GpuType("A40", r"a40(?!\d)", 149.7, 696),
    GpuType("A10", r"a10(?!0)", 125.0, 600),
    GpuType("L4", r"l4(?!0)", 121.0, 300),
    GpuType("V100", r"v100", 125.0, 900, "no bfloat16 (float16 figure): a bf16 model runs slower"),
    GpuType("T4", r"t4", 65.0, 320, "no bfloat16 (float16 figure): a bf16 model runs slower"),
)


def gpu_type(name: str | None) -> GpuType | None:
    """The table's row for a device name ("NVIDIA H100 80GB HBM3", "l40s"), or None."""
    if not name:
        return None
    key = re.sub(r"[-_\s]", "", name.lower())
    return next((g for g in GPU_TYPES if re.search(g.pattern, key)), None)


def model_seconds_on(target: GpuType, measured_on: GpuType, seconds: float) -> tuple[float, float, float]:
    """(central, low, high) model seconds on `target` from `seconds` measured on `measured_on`."""
    if target == measured_on:
        return seconds, seconds, seconds
    compute = seconds * measured_on.bf16_tflops / target.bf16_tflops
    bandwidth = seconds * measured_on.bandwidth_gbs / target.bandwidth_gbs
    return compute, min(compute / UNCERTAINTY, bandwidth), max(compute * UNCERTAINTY, bandwidth)
