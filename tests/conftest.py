"""Shared fixtures: a tiny random-weight V-JEPA 2 and small generated videos, made once per session."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support.workflow import REPO, snakemake

# No test may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The demo, run once through Snakemake; tests read it and add targets, never change its inputs."""
    work = tmp_path_factory.mktemp("demo")
    proc = snakemake(work, "--cores", "2", "--configfile", str(REPO / "config" / "demo.yaml"))
    (work / "console.txt").write_text(proc.stdout + proc.stderr)  # what the run printed, for the console tests
    return work


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from embedpipe_demo.video import make_tiny_vjepa2

    return make_tiny_vjepa2(tmp_path_factory.mktemp("models") / "vjepa2-tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_metis(tmp_path_factory) -> Path:
    from embedpipe_demo.audio import make_tiny_metis

    out = tmp_path_factory.mktemp("models") / "metis-tiny"
    make_tiny_metis(out, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_ecg(tmp_path_factory) -> Path:
    from embedpipe_demo.ecg import make_tiny_ecg_models

    out = tmp_path_factory.mktemp("ecg-models")
    make_tiny_ecg_models(out, seed=0)
    return out


@pytest.fixture(scope="session")
def video_tree(tmp_path_factory) -> Path:
    """p10/ with 12 good videos of several sizes and lengths, plus one truncated MP4."""
    from embedpipe_demo.video import plan_videos, render_frames, write_h264

    root = tmp_path_factory.mktemp("videos")
    videos = plan_videos(["p10"], 12, seed=3)
    for i, video in enumerate(videos):
        write_h264(root / video.key, render_frames(video, 100 + i))
    broken = root / "p10" / "p10999999" / "s1" / "broken.mp4"
    broken.parent.mkdir(parents=True)
    good = (root / videos[0].key).read_bytes()
    broken.write_bytes(good[: len(good) // 3])
    return root


@pytest.fixture()
def hub(tmp_path):
    """A running Hub stand-in and the environment that points huggingface_hub at it, with a test token."""
    from support.hub_standin import TOKEN, HubStandin

    with HubStandin() as standin:
        standin.env = {"HF_ENDPOINT": standin.endpoint, "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0",
                       "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
        yield standin


@pytest.fixture
def small_disk(tmp_path):
    """A real 16 MB filesystem (tmpfs), so writes fail with the kernel's own ENOSPC."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is a real tmpfs here, and mounting one needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


# Files that take minutes, run first: `make test` gives each file to one of two workers (--dist loadfile)
# in collection order (--no-loadscope-reorder: xdist would order files by their number of tests), and
# the SLURM file (three tests, some seven minutes) run last left the other worker idle at the end.
LONGEST_FIRST = ("test_slurm.py", "test_dataset_folder.py", "test_ecg.py", "test_made_with.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/workflow/ runs Snakemake: `make test-fast` leaves them out by the marker.
    The longest files go first (a stable sort: each file's tests keep their order)."""
    workflow = Path(__file__).parent / "workflow"
    for item in items:
        if item.path.is_relative_to(workflow):
            item.add_marker(pytest.mark.workflow)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)) if item.path.is_relative_to(workflow)
               else len(rank) + 1)
