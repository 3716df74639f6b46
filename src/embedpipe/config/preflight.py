"""The preflight: what would break a real submission, found when the DAG is built (so a dry run shows
it) rather than in a job that waited in a queue. Runs after the config's own checks (checks.py), on
the launch the command line asks for (launch.py). Each finding names the config or profile key and
what to do; a stop ends the DAG build, a warning is one log line.

Checked: a GPU asked for with encoder.device: cpu, or a SLURM launch without a GPU for a GPU
encoder; encoder.path holding another family's model (model_header.py); a batch too big for the GPU
(gpu_memory.py); too little disk for the rows to come (disk_space.py); upload without a token; a
SLURM launch without the account or partition the cluster requires (slurm.py), or with the official
SLURM plugin's settings that the project's executor would ignore (launch.py).

EMBEDPIPE_PREFLIGHT=warn in the environment turns every stop into a warning, for a launch the checks
misjudge (a test cluster's fake GPU running a CPU demo, say).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from embedpipe.config.disk_space import DiskNeed, disk_problem, rows_to_write
from embedpipe.config.gpu_memory import batch_problem
from embedpipe.config.launch import Launch, LaunchProblem, official_slurm_problems
from embedpipe.config.model_header import model_file_problem
from embedpipe.config.slurm import Run, slurm_problems
from embedpipe.encoders import family
from embedpipe.encoders.options import FamilyOptions
from embedpipe.extract.settings import ExtractOptions
from embedpipe.runtime.runinfo import HUB_TOKEN_VARS, hub_token_file

MODE_VAR = "EMBEDPIPE_PREFLIGHT"  # "warn": stops become warnings


@dataclass(frozen=True)
class RunFiles:
    """The run's files the preflight reads: each shard's manifest and shard file, where results go."""

    results_dir: str
    manifests: Mapping[str, str] = field(default_factory=dict)
    shard_files: Mapping[str, str] = field(default_factory=dict)
    demo: bool = False
    made_models: tuple[str, ...] = ()
    merge_copies: int = 0  # merge_all's full copies (.pt, .npy) a plain run writes


def device_problems(launch: Launch, encoder: FamilyOptions, extract: ExtractOptions) -> list[LaunchProblem]:
    """The GPU the launch gives each extract job against the device the encoder asks for."""
    device = encoder.get("device") or "auto"
    if launch.gpu_requested and device == "cpu":
        return [LaunchProblem("encoder.device", f"cpu, but the launch gives every extract job {launch.extract_gpus} "
                              f"GPU(s) ({launch.extract_source}: gpu): it would sit idle while the CPUs embed. Set "
                              "encoder.device: auto (or cuda), or drop the gpu resource for a CPU run")]
    if not launch.slurm or launch.gpu_requested or device == "cpu":
        return []
    wants = "encoder.device is " + device if device.startswith("cuda") else \
        "extract.require_gpu is true" if extract.require_gpu else None
    if wants:
        return [LaunchProblem("set-resources: extract: gpu", f"unset, so SLURM gives the extract jobs no GPU, but "
                              f"{wants}: every job would fail on its node. Give extract gpu: 1 (and gpu_model) in "
                              "the profile, or set encoder.device: cpu", profile=True)]
    return [LaunchProblem("set-resources: extract: gpu", "unset: SLURM gives the extract jobs no GPU, so they embed "
                          "on the nodes' CPUs (encoder.device: auto). Give extract gpu: 1 in the profile for a GPU run",
                          stop=False, profile=True)]


def hub_token_found(environ: Mapping[str, str]) -> bool:
    """A token huggingface_hub would find: the environment, or its login cache (`hf auth login`)."""
    if any(environ.get(v) for v in HUB_TOKEN_VARS):
        return True
    return hub_token_file(environ).is_file()


def upload_problem(upload: Mapping[str, Any], launch: Launch, environ: Mapping[str, str]) -> LaunchProblem | None:
    """When `snakemake upload` is asked for (it is never part of a plain run) and no token is found. A
    warning, not a stop: upload is the last job, so nothing is lost when it finds no token (set one and
    run `snakemake upload` again: only the upload runs), and a dry run may well be made in a shell
    without it. Said before the embedding, so that it is not found out days later."""
    if "upload" not in launch.targets or upload.get("dry_run") or hub_token_found(environ):
        return None
    return LaunchProblem("upload.repo_id", f"{upload['repo_id']}, but there is no Hugging Face token here "
                         f"({' or '.join(HUB_TOKEN_VARS)}, or `hf auth login`): `snakemake upload` will refuse "
                         "until one is set", stop=False)


def model_problem(encoder: FamilyOptions, files: RunFiles) -> LaunchProblem | None:
    path = encoder.get("path")
    if files.demo or not path or path in files.made_models or not os.path.exists(path):
        return None  # a rule makes it, or checks.py has said it is missing
    reason = model_file_problem(family(encoder["name"]), path)
    return LaunchProblem("encoder.path", reason) if reason else None


def disk_need_problem(encoder: FamilyOptions, files: RunFiles,
                      free: Callable[[str], int | None] | None = None) -> LaunchProblem | None:
    width = family(encoder["name"]).width(encoder)
    if not width or not files.manifests:
        return None
    rows = rows_to_write(files.manifests, lambda shard: os.path.exists(files.shard_files.get(shard, "")))
    if not rows:
        return None
    need = DiskNeed(rows, width, 2 + files.merge_copies)
    reason = disk_problem(need, files.results_dir, **({"free": free} if free else {}))
    return LaunchProblem("results_dir", reason) if reason else None


def preflight(config: Mapping[str, Any], encoder: FamilyOptions, extract: ExtractOptions, launch: Launch,
              files: RunFiles, environ: Mapping[str, str] = os.environ,
              run: Run = subprocess.run) -> list[LaunchProblem]:
    """Every finding, stops and warnings, in the order a user meets them."""
    found: list[LaunchProblem | None] = [*device_problems(launch, encoder, extract), model_problem(encoder, files)]
    if launch.gpu_requested and (reason := batch_problem(encoder, launch.gpu_model)):
        found.append(LaunchProblem("encoder.batch_size", reason))
    found += [disk_need_problem(encoder, files), upload_problem(config.get("upload") or {}, launch, environ)]
    found += official_slurm_problems(launch) + slurm_problems(launch, run=run)
    return [problem for problem in found if problem is not None]


# Targets that only look (at a node, at a run): what the preflight finds would fail the run's jobs, not
# theirs, and the doctor is how a user finds out why. Their findings are said, never a stop.
DIAGNOSTIC_TARGETS = frozenset({"doctor", "status"})


def stops_and_warnings(problems: list[LaunchProblem], environ: Mapping[str, str] = os.environ,
                       targets: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """The lines that stop the DAG build and the warning lines (all of them warnings under
    EMBEDPIPE_PREFLIGHT=warn, or when only diagnostic targets are asked for)."""
    warn_only = environ.get(MODE_VAR, "").lower() == "warn" or bool(targets) and set(targets) <= DIAGNOSTIC_TARGETS
    stops = [p.line() for p in problems if p.stop and not warn_only]
    return stops, [p.line() for p in problems if not p.stop or warn_only]
