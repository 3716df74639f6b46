"""The GPU in a job's log, as the Metis script printed it: at the start its name, total and free
memory; in each throughput line the memory in use and the utilisation; at the end the peak. The
same figures, as numbers, go to the shard's progress file (`now`, `peak_gib`).

Name and memory come from torch. Use and utilisation come from NVML (`nvidia-ml-py`, imported as
`pynvml`; optional, the `[gpu]` extra): without it the throughput line gives torch's own reserved
memory instead and says that NVML is missing once. Nothing of this runs on the CPU.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

import torch

from embedpipe.store.progress import GpuNow

log = logging.getLogger("extract")
GIB = 2**30


class NoGpu(RuntimeError):
    """`require_gpu` is set and this job sees no GPU: one line, before any model is loaded."""


def require_gpu(device: str = "auto", option: str = "extract.require_gpu") -> None:
    """Raise NoGpu unless the job will run on a GPU (`device`: the encoder's device option)."""
    if device == "cpu":
        raise NoGpu(f"{option} is set, but encoder.device is cpu; set one of the two otherwise")
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise NoGpu(f"{option} is set, but this job sees no GPU (CUDA_VISIBLE_DEVICES="
                    f"{visible if visible is not None else 'unset'}); check the job's GPU request "
                    f"(--gres or gpu: in the profile), or unset {option} to run on the CPU")


def _nvml() -> Any | None:
    try:
        nvml = importlib.import_module("pynvml")  # by name: an optional dependency
        nvml.nvmlInit()
    except Exception:  # not installed, or no driver library: the lines go without NVML's figures
        return None
    return nvml


class GpuReport:
    """One job's GPU lines; `device` is the torch device the model runs on (CPU: every line empty)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.nvml: Any | None = None
        self.handle: Any | None = None
        if self.cuda:
            self.nvml = _nvml()
            if self.nvml is not None:
                self.handle = self._handle()

    def _handle(self) -> Any | None:
        # NVML numbers the machine's GPUs, torch the visible ones: the UUID names the same board in both.
        uuid = getattr(torch.cuda.get_device_properties(self.device), "uuid", None)
        try:
            if uuid is not None:
                return self.nvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
            return self.nvml.nvmlDeviceGetHandleByIndex(self.device.index or 0)
        except Exception:
            return None

    def start_line(self) -> str | None:
        if not self.cuda:
            return None
        free, total = torch.cuda.mem_get_info(self.device)
        name = torch.cuda.get_device_name(self.device)
        source = "" if self.handle is not None else " (pip install nvidia-ml-py for use and utilisation lines)"
        return f"GPU {self.device}: {name}, {total / GIB:.1f} GiB total, {free / GIB:.1f} GiB free{source}"

    def usage(self) -> str:
        """For a throughput line: ', GPU mem 12.3/44.5 GiB, util 97%', or '' on the CPU."""
        if not self.cuda:
            return ""
        if self.handle is not None:
            try:
                memory = self.nvml.nvmlDeviceGetMemoryInfo(self.handle)
                util = self.nvml.nvmlDeviceGetUtilizationRates(self.handle)
                return f", GPU mem {memory.used / GIB:.1f}/{memory.total / GIB:.1f} GiB, util {util.gpu}%"
            except Exception:  # a driver hiccup must not end the job: torch's figure instead
                pass
        return f", GPU mem reserved {torch.cuda.memory_reserved(self.device) / GIB:.1f} GiB"

    def peak(self) -> str:
        if not self.cuda:
            return ""
        return f", GPU mem peak {self.peak_gib():.1f} GiB"

    def now(self) -> GpuNow | None:
        """The board's memory in use and utilisation now (NVML); without NVML, torch's view of the
        memory (the whole board's use, other processes' too) and no utilisation. None on the CPU."""
        if not self.cuda:
            return None
        name = torch.cuda.get_device_name(self.device)
        if self.handle is not None:
            try:
                memory = self.nvml.nvmlDeviceGetMemoryInfo(self.handle)
                util = self.nvml.nvmlDeviceGetUtilizationRates(self.handle)
                return GpuNow(name, round(memory.used / GIB, 2), round(memory.total / GIB, 2), float(util.gpu))
            except Exception:  # a driver hiccup: torch's figures instead
                pass
        free, total = torch.cuda.mem_get_info(self.device)
        return GpuNow(name, round((total - free) / GIB, 2), round(total / GIB, 2), None)

    def peak_gib(self) -> float | None:
        """The most memory this process's tensors held on the device (torch's allocator; None on the CPU)."""
        return torch.cuda.max_memory_allocated(self.device) / GIB if self.cuda else None
