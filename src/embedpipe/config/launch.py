"""What the launch asks for (executor, the extract job's GPU, the SLURM account and partition), as
one plain value the preflight checks read, and the problems they find.

rules/common.smk fills `Launch` from Snakemake's settings and the command line re-parsed (in a dry
run the executor is not in `workflow`); this module knows nothing of Snakemake, so the checks are
tested with a Launch made by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The official plugin and the project's subclass of it (its settings spelled embedpipe-slurm-<setting>).
SLURM_EXECUTORS = ("slurm", "embedpipe-slurm")


@dataclass(frozen=True)
class Launch:
    """The launch, as far as it is known when the DAG is built. None: not asked for, or cannot tell."""

    executor: str | None = None  # "local" without --executor; None when the command line could not be read
    extract_gpus: int | None = None  # the extract rule's `gpu` (or gres gpu:N) resource
    gpu_model: str | None = None
    slurm_account: str | None = None
    slurm_partition: str | None = None
    partition_config: bool = False  # the plugin's --slurm-partition-config picks partitions itself
    dryrun: bool = False
    targets: tuple[str, ...] = ()  # the command line's targets (rules or files); () for the default
    extract_source: str = "set-resources: extract"  # where the extract GPU came from, to name it
    # the official plugin's settings given (`slurm-array-limit`) while embedpipe-slurm runs: it reads
    # only its own spelling (`embedpipe-slurm-array-limit`), so these would be ignored
    official_slurm_settings: tuple[str, ...] = ()

    @property
    def slurm(self) -> bool:
        return self.executor in SLURM_EXECUTORS

    @property
    def gpu_requested(self) -> bool:
        return bool(self.extract_gpus)


@dataclass(frozen=True)
class LaunchProblem:
    """One finding: `key` is a config key (`encoder.device`) or, with `profile`, a profile key
    (`set-resources: extract: gpu`). `stop` ends the DAG build; otherwise it is a warning line."""

    key: str
    reason: str
    stop: bool = True
    profile: bool = False

    def line(self) -> str:
        return f"{'profile' if self.profile else 'config'} key {self.key!r}: {self.reason}"


def plain_value(raw: Any) -> Any:
    """A resource's value as given (Snakemake keeps an expression such as `250000 * attempt` as text);
    a text that is a whole number is that number."""
    if isinstance(raw, str) and re.fullmatch(r"\s*\d+\s*", raw):
        return int(raw)
    return raw


def gpu_count(resources: Mapping[str, Any]) -> int | None:
    """The GPUs a rule's resources ask for: `gpu: N`, or a gres `gpu[:type]:N`; None when not asked."""
    gpu = plain_value(resources.get("gpu"))
    if isinstance(gpu, int):
        return gpu
    gres = str(resources.get("gres") or resources.get("slurm_extra") or "")
    if match := re.search(r"gpu(?::[A-Za-z0-9_.-]+)?:(\d+)", gres):
        return int(match.group(1))
    return 1 if re.search(r"(^|[,=\s])gpu($|[,\s])", gres) else None


def official_slurm_settings(executor: str | None, given: Mapping[str, Any]) -> tuple[str, ...]:
    """The official SLURM plugin's settings among the command line's (argparse names, `slurm_array_limit`;
    one not given holds dataclasses.MISSING), when embedpipe-slurm runs and would ignore them."""
    if executor != "embedpipe-slurm":
        return ()
    from dataclasses import MISSING

    official = lambda name: name.startswith("slurm_") and not name.startswith("slurm_jobstep_")  # noqa: E731
    return tuple(sorted(name.replace("_", "-") for name, value in given.items()
                        if official(name) and value is not MISSING))


def official_slurm_problems(launch: Launch) -> list[LaunchProblem]:
    return [LaunchProblem(name, f"is the official SLURM plugin's setting, which executor embedpipe-slurm ignores: "
                          f"write embedpipe-{name}", profile=True) for name in launch.official_slurm_settings]


def launch_of(executor: str | None, extract: Mapping[str, Any], defaults: Mapping[str, Any], dryrun: bool,
              partition_config: bool = False, targets: tuple[str, ...] = (),
              official_settings: tuple[str, ...] = ()) -> Launch:
    """A Launch from the extract rule's set-resources and the default resources (each a name → the
    value as given); the rule's own value wins, as in Snakemake."""
    def value(name: str) -> Any:
        chosen = extract.get(name)
        return plain_value(chosen if chosen is not None else defaults.get(name))

    gpus = gpu_count(extract)
    source = "set-resources: extract"
    if gpus is None and (gpus := gpu_count(defaults)) is not None:
        source = "default-resources"
    text = lambda name: str(value(name)) if value(name) not in (None, "") else None  # noqa: E731
    return Launch(executor=executor, extract_gpus=gpus, gpu_model=text("gpu_model"),
                  slurm_account=text("slurm_account"), slurm_partition=text("slurm_partition"),
                  partition_config=partition_config, dryrun=dryrun, targets=targets, extract_source=source,
                  official_slurm_settings=official_settings)
