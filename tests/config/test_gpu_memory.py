"""The batch against the GPU's memory: the table by gpu_model, the estimate from the preset table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from embedpipe.config.gpu_memory import batch_estimate, batch_problem, gpu_memory_gb
from embedpipe.encoders import family

REPO = Path(__file__).resolve().parents[2]


def vjepa2(**given):
    fam = family("vjepa2")
    return fam.options(given)


@pytest.mark.parametrize(("name", "gb"), [
    ("l40s", 48), ("L40S", 48), ("a100", 40), ("a100-80", 80), ("a100_80gb", 80), ("nvidia_a100-sxm4-80gb", 80),
    ("h100", 80), ("h200", 141), ("gh200", 96), ("a40", 48), ("v100", 16), ("v100-32gb", 32), ("rtx6000", 24),
    ("rtx_a6000", 48), ("l4", 24), ("t4", 16), ("a10g", 24), ("mystery9000", None), (None, None),
])
def test_gpu_memory_by_name(name, gb):
    assert gpu_memory_gb(name) == gb


def test_the_presets_default_batches_fit_an_l40s_and_the_shipped_examples_pass():
    for model in ("vitl", "vith", "vitg", "vitg-384"):
        options = vjepa2(model=model)
        assert batch_estimate(options).at(options["batch_size"]) <= 48, model  # the estimate's check
        for gpu in ("l40s", "a100", "h100"):
            assert batch_problem(options, gpu) is None, (model, gpu)
    deepearth = yaml.safe_load((REPO / "config" / "examples" / "deepearth_images.yaml").read_text())["encoder"]
    assert batch_problem(vjepa2(**{k: v for k, v in deepearth.items() if k != "name"}), "l40s") is None


def test_a_default_batch_on_a_t4_stops_with_the_largest_that_fits():
    options = vjepa2(model="vitl")
    reason = batch_problem(options, "t4")
    estimate = batch_estimate(options)
    largest = estimate.largest_batch(16)
    assert reason is not None and f"encoder.batch_size: {largest} or less" in reason
    assert "256 needs about 38 GB" in reason and "t4's 16 GB" in reason
    assert estimate.at(largest) <= 16 < estimate.at(largest + 1)
    assert batch_problem(vjepa2(model="vitl", batch_size=largest), "t4") is None


def test_more_frames_need_more_memory_and_custom_models_are_not_estimated():
    assert batch_problem(vjepa2(model="vitl", num_frames=64), "a100") is not None
    assert batch_problem(vjepa2(model="vitl", num_frames=64, batch_size=64), "l40s") is None
    assert batch_estimate(vjepa2(model="custom", path="/m")) is None
    assert batch_problem(vjepa2(model="vitl"), "unknown-card") is None
