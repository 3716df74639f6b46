"""A run's config, checked across keys before any job: `check_config` gives (config key, reason) for
each problem; rules/common.smk stops the DAG build at the first, naming the key. The schema checks each
value alone first; this module checks what one key means for another and what the paths hold.

Torch-free and Snakemake-free (pandas and pyarrow need not be installed): tests call it directly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from embedpipe.discover.scan import ShardSpec, list_top_folders
from embedpipe.discover.settings import ShardOptions
from embedpipe.encoders import OptionError, family
from embedpipe.encoders.options import FamilyOptions
from embedpipe.evaluate.settings import config_problems as evaluation_problems
from embedpipe.extract.settings import BLOCK as EXTRACT
from embedpipe.extract.settings import ExtractOptions
from embedpipe.publish.identifying import PATTERNS_KEY, pattern_problem, refusal, unacknowledged
from embedpipe.publish.kinds import KindError, kind
from embedpipe.publish.kinds.kind import Kind
from embedpipe.runtime.step_settings import SettingError, from_block

Problem = tuple[str, str]


class ConfigProblem(ValueError):
    """The first problem of a config: `key` names it."""

    def __init__(self, key: str, reason: str) -> None:
        self.key, self.reason = key, reason
        super().__init__(f"config key {key!r}: {reason}")


@dataclass(frozen=True)
class Where:
    """What the checks need besides the config: a demo (its rules make the input folder, models and
    labels), the model files rules of this run make, and the run's own folders."""

    demo: bool
    made_models: Collection[str] = ()
    run_dir: str = "results"
    log_dir: str = "logs"
    made_files: Collection[str] = ()  # files a demo rule makes (its labels table)
    pretrain_model: str | None = None  # the checkpoint pretrain writes, when pretrain.enabled


@dataclass(frozen=True)
class RunConfig:
    """What the checks read from a sound config, for the DAG to use rather than read again."""

    extract: ExtractOptions
    encoder: FamilyOptions
    sharding: ShardSpec  # the folders (listed or found), grouped or not, or the hash buckets
    kind: Kind

    @property
    def shards(self) -> list[str]:
        return self.sharding.shard_ids()


def extract_options(config: dict[str, Any]) -> ExtractOptions:
    """The `extract` block as the extract job takes it; ConfigProblem names a bad key."""
    try:
        return from_block(ExtractOptions, config.get(EXTRACT) or {}, EXTRACT)
    except SettingError as exc:
        key, _, reason = str(exc).partition(": ")
        raise ConfigProblem(key, reason) from None


def encoder_options(config: dict[str, Any], where: Where) -> FamilyOptions:
    """The encoder block against its family's schema, defaults filled in, and the family's start-up
    checks (files are checked where no rule of the run makes them)."""
    try:
        chosen = family(config["encoder"]["name"])
        return chosen.check(chosen.options(config["encoder"]), files=not where.demo, made=where.made_models)
    except OptionError as exc:
        raise ConfigProblem(exc.key, exc.reason) from None


def output_dir_problem(key: str, path: str) -> str | None:
    """`path` (config key `key`) must be a folder this user can write, or one that can be made. Checked
    before any job: a job finding out fails with a traceback, and for logs_dir only inside a job."""
    probe = os.path.abspath(path)
    while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)  # the nearest part that exists decides whether mkdir can work
    where = "" if probe == os.path.abspath(path) else f" ({path!r} would be made inside it)"
    fix = f"set {key} to a folder you can write (it is created if missing)"
    if not os.path.isdir(probe):
        return f"{probe!r} is a file, not a folder{where}; {fix}"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe!r} is not writable{where}; {fix}"
    return None


def regrouping_problem(spec: ShardSpec, run_dir: str) -> str | None:
    """Crossing shards.max_shards renames every shard (one per folder ↔ folders-NNN): reuse is by shard,
    so the whole dataset would be embedded again under new names beside the old files. Stop instead."""
    shards_dir = os.path.join(run_dir, "embeddings")
    if spec.by != "folder" or not os.path.isdir(shards_dir):
        return None
    on_disk = {n.removesuffix(".parquet") for n in os.listdir(shards_dir)
               if n.endswith(".parquet") and not n.endswith(".errors.parquet")}
    per_folder, groups = on_disk & set(spec.folders), {n for n in on_disk if re.fullmatch(r"folders-\d+", n)}
    if spec.grouped and per_folder:
        return (f"{len(spec.folders)} folders are more than {spec.max_shards}, so they would be grouped, but "
                f"{shards_dir} holds this run's shards one per folder (e.g. {min(per_folder)}): every file would "
                f"be embedded again under new shard names. Set shards.max_shards: {len(spec.folders)} to keep one "
                "shard per folder, or give the grouped run a name of its own (run: <name>)")
    if not spec.grouped and groups - set(spec.folders):
        return (f"{len(spec.folders)} folders are within {spec.max_shards}, so each would be a shard, but "
                f"{shards_dir} holds this run's shards as groups of folders (e.g. {min(groups)}): every file "
                "would be embedded again under new shard names. Set shards.max_shards back to the value that "
                "grouped them (below the folder count), or give this run a name of its own (run: <name>)")
    return None


def shard_spec(config: dict[str, Any], demo: bool) -> ShardSpec:
    """How files map to shards, known when the DAG is built (no checkpoint): the listed or top-level
    folders of input_dir (the only scan done then; files are scanned by the discover job), grouped past
    shards.max_shards, or the hash buckets."""
    sharding = from_block(ShardOptions, config["shards"], "shards")
    if sharding.by != "folder":
        return ShardSpec("hash", num_shards=sharding.num_shards)
    shards = sorted(sharding.folders)
    if shards:
        if not demo and (missing := [s for s in shards if not os.path.isdir(os.path.join(config["input_dir"], s))]):
            raise ConfigProblem("shards.folders", f"{missing} not found under input_dir {config['input_dir']!r}")
    elif demo:
        raise ConfigProblem("shards.folders", "the demo must list its folders")
    elif not (shards := list_top_folders(config["input_dir"])):
        raise ConfigProblem("input_dir", f"no top-level folders in {config['input_dir']!r} to shard by")
    # A shard id names files and travels on command lines (quoted); a line break or another control
    # character in it would not survive a manifest, a log line or a SLURM job name. In a path Snakemake
    # reads `{…}` as a wildcard and `<name>` as a path variable (an undefined one stops the DAG build
    # in a traceback, a defined one is silently replaced).
    unusable = [s for s in shards if any(ord(c) < 32 or ord(c) == 127 for c in s)
                or re.search(r"[{}]|<[a-z][a-z0-9_]*>", s)]
    if unusable:
        raise ConfigProblem("shards.folders", f"folder names with line breaks, control characters, '{{', '}}' or "
                            f"'<name>' cannot be shards: {unusable}; rename them, or use shards.by: hash")
    # '.' and '..' are folders too, but a shard's files (parts/<shard>, export/<shard>) would then be
    # the run's folders themselves or their parents
    if dots := [s for s in shards if s in (".", "..")]:
        raise ConfigProblem("shards.folders", f"{dots} are not folders under input_dir: name the folders themselves")
    return ShardSpec("folder", tuple(shards), max_shards=sharding.max_shards)


def evaluation_problem(block: dict[str, Any], where: Where) -> Problem | None:
    """The first reason the `evaluate` block cannot run, or None; a file a demo rule makes need not exist
    yet. Also asked when `snakemake evaluate` runs with evaluate.enabled false."""
    exists = lambda path: path in where.made_files or os.path.exists(path)  # noqa: E731
    return next(iter(evaluation_problems(block, exists=exists)), None)


def _checks(config: dict[str, Any], where: Where, made: dict[str, Any]) -> list[Callable[[], Problem | None]]:
    """Each cross-key rule, in the order a user meets them; one that needs an earlier one's result
    runs only after that one passed (read_config stops at the first problem). What they read is kept
    in `made`, read once."""
    pretrain = config.get("pretrain") or {}

    def once(name: str, make: Callable[[], Any]) -> Any:
        if name not in made:
            made[name] = make()
        return made[name]

    def encoder() -> FamilyOptions:
        return once("encoder", lambda: encoder_options(config, where))

    def extract() -> ExtractOptions:
        return once("extract", lambda: extract_options(config))

    upload, dataset, metadata = config["upload"], config["dataset"], config["metadata"]
    demo = config.get("demo") or {}

    def trial_does_not_pretrain() -> Problem | None:
        if extract().limit and pretrain.get("enabled"):
            return ("extract.limit", "a trial run does not pretrain (it would train in full, in the trial's "
                    "folder): set pretrain.enabled: false and encoder.path to a model, e.g. the full run's "
                    "pretrain/final.pt")
        return None

    def pretrain_trains_ecg_jepa() -> Problem | None:
        if pretrain.get("enabled") and config["encoder"]["name"] != "ecg_jepa":
            return ("encoder.name", f"{config['encoder']['name']!r}: pretrain.enabled trains an ecg_jepa encoder; "
                    "set encoder.name: ecg_jepa")
        return None

    def pretrain_model_is_the_encoder() -> Problem | None:
        path = config["encoder"].get("path")
        if pretrain.get("enabled") and path is not None and where.pretrain_model and \
                os.path.abspath(path) != os.path.abspath(where.pretrain_model):
            return ("encoder.path", f"{path!r}, but pretrain.enabled makes {where.pretrain_model!r} the encoder; "
                    "leave encoder.path null (or set it to that path), or set pretrain.enabled: false")
        return None

    def encoder_block() -> Problem | None:
        encoder()
        return None

    def folders_writable() -> Problem | None:
        for key, path in (("results_dir", where.run_dir), ("logs_dir", where.log_dir)):
            if problem := output_dir_problem(key, path):
                return key, problem
        return None

    def inputs_exist() -> Problem | None:
        if where.demo:
            return None
        if not os.path.isdir(config["input_dir"]):
            return "input_dir", f"{config['input_dir']!r} is not a directory"
        path = encoder().get("path")
        if path and path not in where.made_models and not os.path.exists(path):
            return "encoder.path", f"{path!r} does not exist"
        return None

    def gpu_and_device_agree() -> Problem | None:
        if extract().require_gpu and encoder().get("device") == "cpu":
            return "extract.require_gpu", "true, but encoder.device is cpu: set one of the two otherwise"
        return None

    def listed_files_are_hash_sharded() -> Problem | None:
        if (config.get("hf_dataset") or {}).get("path") and config["shards"]["by"] != "hash":
            return "shards.by", "must be hash when hf_dataset.path lists the files (they need not share folders)"
        return None

    def demo_labels_are_ecg() -> Problem | None:
        if where.demo and demo.get("labels") and demo["kind"] != "ecg":
            return "demo.labels", "only the ECG demo (demo.kind: ecg) writes a labels table"
        return None

    def metadata_kind_is_known() -> Problem | None:  # a value check: first, as the schema's are
        try:
            once("kind", lambda: kind(metadata["kind"]))
        except KindError as exc:
            return "metadata.kind", str(exc).removeprefix("metadata.kind: ")
        return None

    def metadata_lists_given() -> Problem | None:
        for key in made["kind"].files:
            if not metadata.get(key):
                return f"metadata.{key}", f"required when metadata.kind is {metadata['kind']}"
        return None

    def shards() -> Problem | None:
        spec = once("sharding", lambda: shard_spec(config, where.demo))
        problem = regrouping_problem(spec, where.run_dir)
        return ("shards.max_shards", problem) if problem else None

    def publishing() -> Problem | None:
        if upload.get("public") and dataset.get("credentialed"):
            return ("upload.public", "true is refused for a dataset with dataset.credentialed: true "
                    "(e.g. MIMIC under the PhysioNet data use agreement); upload it privately")
        # Known here where the metadata kind fixes the columns (none: its keys are identifying or
        # unjudged); for deepearth the names decide, and upload checks what the files themselves record.
        acknowledged = upload.get("public_identifying_columns") or []
        if upload.get("public") and (missing := unacknowledged(made["kind"].identifying, acknowledged)):
            return "upload.public", refusal(missing)
        if problem := pattern_problem(metadata.get("identifying_patterns") or []):
            return PATTERNS_KEY, problem
        return None

    def evaluation() -> Problem | None:
        block = config.get("evaluate") or {}
        return evaluation_problem(block, where) if block.get("enabled") else None

    return [metadata_kind_is_known, trial_does_not_pretrain, pretrain_trains_ecg_jepa, pretrain_model_is_the_encoder,
            encoder_block, folders_writable, inputs_exist, gpu_and_device_agree, listed_files_are_hash_sharded,
            demo_labels_are_ecg, metadata_lists_given, shards, publishing, evaluation]


def read_config(config: dict[str, Any], where: Where) -> RunConfig:
    """What a sound config gives the DAG; ConfigProblem at its first problem. The checks run in the order
    a user meets them, and a later one may read what an earlier one found sound (the input folder, the kind)."""
    made: dict[str, Any] = {}
    for check in _checks(config, where, made):
        if problem := check():
            raise ConfigProblem(*problem)
    return RunConfig(made["extract"], made["encoder"], made["sharding"], made["kind"])


def check_config(config: dict[str, Any], where: Where) -> list[Problem]:
    """The config's first problem as [(config key, reason)], or []."""
    try:
        read_config(config, where)
    except ConfigProblem as exc:
        return [(exc.key, exc.reason)]
    return []
