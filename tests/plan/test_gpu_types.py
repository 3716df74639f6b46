"""The GPU table: device names to rows, and a trial's model seconds scaled between them."""

from __future__ import annotations

import pytest

from embedpipe.plan.gpu_types import GPU_TYPES, UNCERTAINTY, gpu_type, model_seconds_on


@pytest.mark.parametrize(("name", "row"), [
    ("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H200", "H200"),
    ("NVIDIA A100-SXM4-80GB", "A100-80"), ("NVIDIA A100-SXM4-40GB", "A100-40"), ("NVIDIA L40S", "L40S"),
    ("NVIDIA A10", "A10"), ("NVIDIA L4", "L4"), ("Tesla V100-SXM2-32GB", "V100"), ("l40s", "L40S"),
])
def test_device_names_find_their_row(name, row):
    assert gpu_type(name).name == row


def test_unknown_names_find_none():
    assert gpu_type("AMD Instinct MI300X") is None and gpu_type("") is None and gpu_type(None) is None


def test_a_measured_type_is_not_scaled_and_another_is_by_the_compute_ratio_within_a_factor_two():
    l40s, h100 = gpu_type("L40S"), gpu_type("H100")
    assert model_seconds_on(l40s, l40s, 3.0) == (3.0, 3.0, 3.0)
    central, low, high = model_seconds_on(h100, l40s, 3.0)
    assert central == pytest.approx(3.0 * 362.05 / 989.5)
    assert low == pytest.approx(central / UNCERTAINTY) and high == pytest.approx(central * UNCERTAINTY)
    # the bandwidth ratio widens the range where it lies outside the factor two: L40S to A100-80 is 1.16×
    # the seconds by compute, 0.42× by bandwidth (864 against 2,039 GB/s)
    central, low, high = model_seconds_on(gpu_type("A100-80"), l40s, 1.0)
    assert central == pytest.approx(362.05 / 312) and high == pytest.approx(central * UNCERTAINTY)
    assert low == pytest.approx(864 / 2039) and low < central / UNCERTAINTY


def test_every_row_states_positive_figures():
    assert all(g.bf16_tflops > 0 and g.bandwidth_gbs > 0 and g.memory_gb > 0 for g in GPU_TYPES)


def test_a_workstation_rtx_a4000_is_not_an_a40():
    from embedpipe.config.gpu_memory import gpu_memory_gb

    assert gpu_type("NVIDIA RTX A4000") is None and gpu_memory_gb("rtx_a4000") is None
    assert gpu_type("NVIDIA A40").name == "A40" and gpu_memory_gb("a40") == 48
