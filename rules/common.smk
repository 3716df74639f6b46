# Shared names and start-up checks. Everything here runs when the DAG is built, before any job.
import contextlib
import functools
import io
import json
import re
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.join(workflow.basedir, "src"))  # the Snakefile itself needs only stdlib parts
from embedpipe.config.checks import ConfigProblem, Where, evaluation_problem, extract_options, read_config  # noqa: E402
from embedpipe.config.launch import launch_of, official_slurm_settings  # noqa: E402
from embedpipe.config.preflight import RunFiles, preflight, stops_and_warnings  # noqa: E402
from embedpipe.discover.settings import HfDatasetOptions, ShardOptions  # noqa: E402
from embedpipe.encoders import all_exports, family  # noqa: E402
from embedpipe.evaluate.settings import PTBXL_FILES  # noqa: E402
from embedpipe.plan.launch import first_attempt_minutes, jobs_at_once  # noqa: E402
from embedpipe.plan.settings import PlanOptions  # noqa: E402
from embedpipe.publish.hub_configs import config_name_of  # noqa: E402
from embedpipe.publish.settings import CardOptions, UploadOptions  # noqa: E402
from embedpipe.runtime.runinfo import submit_without_hub_token  # noqa: E402
from embedpipe.runtime.step_settings import as_json, from_block  # noqa: E402
from embedpipe.store.atomic import write_text_if_changed  # noqa: E402
from embedpipe.store.made_with import (  # noqa: E402
    FILES_CHANGED,
    MODEL_FILES,
    DigestCache,
    made_with,
    stamp_path,
    update_stamp,
)
from embedpipe.store.merge_settings import MergeOptions  # noqa: E402
from embedpipe.validate.settings import ValidationConfig  # noqa: E402

from snakemake.exceptions import WorkflowError  # noqa: E402
from snakemake.logging import logger  # noqa: E402


def config_error(key, message):
    raise WorkflowError(f"config key {key!r}: {message}")


def checked(make, *args):
    """What `make` reads from the config; a ConfigProblem stops the DAG build naming the key."""
    try:
        return make(*args)
    except ConfigProblem as exc:
        config_error(exc.key, exc.reason)


DEMO = bool(config["demo"]["enabled"])
EXTRACT = checked(extract_options, config)
# A trial run (extract.limit: N, the EchoJEPA script's --limit) embeds the first N files of each shard
# through the whole DAG, in a run folder of its own: it never mixes with the full run's outputs.
# Discover applies it (each manifest lists the first N); the other rules only name the trial's folder.
TRIAL_FILES = EXTRACT.limit
RUN = f"{config['run']}-trial{TRIAL_FILES}" if TRIAL_FILES else config["run"]
if TRIAL_FILES:
    # A throughput line after every batch: the planner tells the first batch's warm-up from a file's cost.
    EXTRACT = replace(EXTRACT, log_every=1)


def safe_dir(path):
    """A relative path that starts with '-' would read as an option on a command line."""
    return f"./{path}" if path.startswith("-") else path


RUN_DIR = safe_dir(f"{config['results_dir']}/{RUN}")
LOG_DIR = safe_dir(f"{config['logs_dir']}/{RUN}")
# Jobs run `python` from the environment that runs Snakemake (the project's venv, activated or
# not), unless a software-deployment method (conda, apptainer) provides the environment.
if not workflow.deployment_settings.deployment_method:
    shell.prefix(f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:\"$PATH\"; ")


def script(name):
    """`python <workflow>/workflow/scripts/<name>`: what a rule runs, passed to it as a param."""
    return f"python {shlex.quote(os.path.join(workflow.basedir, 'workflow', 'scripts', name))}"


# Pretraining (optional): its final.pt is the ecg_jepa encoder's checkpoint, so extract waits for it.
PRETRAIN = config.get("pretrain") or {"enabled": False}
PRETRAIN_DIR = f"{RUN_DIR}/pretrain"
PRETRAIN_MODEL = f"{PRETRAIN_DIR}/final.pt"
PRETRAIN_METRICS = f"{PRETRAIN_DIR}/metrics.csv"
PRETRAIN_CURVES = f"{PRETRAIN_DIR}/loss.png"
MADE_MODELS = [PRETRAIN_MODEL] if PRETRAIN["enabled"] else []
if PRETRAIN["enabled"] and config["encoder"].get("path") is None:
    config["encoder"]["path"] = PRETRAIN_MODEL
DEMO_KIND = config["demo"]["kind"]
DEMO_LABELS = [config["demo"]["labels"]] if DEMO and config["demo"].get("labels") else []
# Every cross-key check of the config (embedpipe.config.checks) runs before any job; the first problem stops
# here. What the checks read (the encoder's options, the shards, the kind) is used as they read it.
WHERE = Where(demo=DEMO, made_models=MADE_MODELS, run_dir=RUN_DIR, log_dir=LOG_DIR, made_files=DEMO_LABELS,
              pretrain_model=PRETRAIN_MODEL)
CHECKED = checked(read_config, config, WHERE)
FAMILY = family(config["encoder"]["name"])
ENCODER = CHECKED.encoder
MODEL = ENCODER["model"]
SHARDING = from_block(ShardOptions, config["shards"], "shards")
SHARDS = CHECKED.shards
SHARD_SPEC = CHECKED.sharding  # the folders discover assigns, grouped past shards.max_shards
HF_DATASET = from_block(HfDatasetOptions, config["hf_dataset"], "hf_dataset")
KIND = CHECKED.kind
# The lists the metadata kind joins (staged's inputs; the video demo's data rule makes the echo ones).
METADATA_LISTS = KIND.files
if workflow.is_main_process:
    # SLURM jobs are submitted with the whole environment: keep the Hub token out of them (only upload,
    # which runs here, needs it).
    submit_without_hub_token(os.path.join(workflow.basedir, "workflow", "submit"))
    # What runs, as the jobs will run it (batch_size 0 resolved to the preset's), before the plan.
    logger.info(f"embedpipe run {RUN}: {len(SHARDS)} shards of {config['input_dir']}; {FAMILY.name} {MODEL}, "
                f"batch {ENCODER.get('batch_size')}, device {ENCODER.get('device', 'auto')}; results in {RUN_DIR}")


wildcard_constraints:
    shard="|".join(map(re.escape, SHARDS)),


MANIFEST = f"{RUN_DIR}/manifests/{{shard}}.txt"
EXCLUSIONS = f"{RUN_DIR}/manifests/exclusions.json"
HF_ROWS = [f"{RUN_DIR}/manifests/hf_rows.parquet"] if HF_DATASET.path else []
HF_FLAGS = (
    f"--hf_dataset={shlex.quote(HF_DATASET.path)} --hf_split={shlex.quote(HF_DATASET.split)}"
    f" --hf_column={shlex.quote(HF_DATASET.column)}"
    if HF_DATASET.path
    else ""
)



def rescan_notice():
    """One line when this run does not scan the input again (the manifests exist, discover is not forced):
    added or removed files are not seen, and what makes the run look. A scan costs seconds per 100,000
    files on a local disk, far more on a cluster's shared filesystem: it is asked for, not done on every
    dry run or status. Said while the DAG is built (discover's input function), once, where Snakemake
    was started: only then are the forced rules known."""
    if not workflow.is_main_process or "rescan_notice" in ONCE:
        return
    ONCE["rescan_notice"] = True
    forced = workflow.dag_settings.forceall or "discover" in (workflow.dag_settings.forcerun or ())
    manifests = expand(MANIFEST, shard=SHARDS)
    if forced or not all(os.path.exists(m) for m in [*manifests, EXCLUSIONS]):
        return
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(max(map(os.path.getmtime, manifests))))
    logger.info(f"embedpipe: {config['input_dir']} is not scanned again; its manifests (last changed {when}) "
                "list the files. New or removed files: `snakemake discover --forcerun discover`, then the "
                "same command again (only the shards whose files changed run)")

EMBEDDINGS = f"{RUN_DIR}/embeddings/{{shard}}.parquet"
ERRORS = f"{RUN_DIR}/embeddings/{{shard}}.errors.parquet"
PARTS = f"{RUN_DIR}/parts/{{shard}}"
# Each shard's stamp (settings_changed): an input of its extract job, rewritten, saying why, when the
# shard on disk was made with other settings than this config's.
SETTINGS_CHANGED_DIR = f"{LOG_DIR}/settings_changed"
ONCE = {}  # what the DAG computes once per Snakemake process (config_made_with, changed_shards)
# Model files made by the run itself (pretrain, the demos) are Snakemake's to compare, as extract's inputs.
RULE_MADE_MODEL_FILES = MADE_MODELS + ([ENCODER[k] for k in MODEL_FILES if ENCODER.get(k)] if DEMO else [])
# Each shard's dataset file is staged first; the parquet rule then builds the published folder from
# exactly this run's non-empty shards, numbered train-0000i-of-0000N, and lists what it holds.
STAGED = f"{RUN_DIR}/staged/{{shard}}.parquet"
# What the kind's lists and hf_rows.parquet join to each shard's keys, joined once per run (the joined
# rule) so that no staged job reads a whole run-wide table; none where the run has no such table.
JOINED = [f"{RUN_DIR}/joined/{{shard}}.parquet"] if METADATA_LISTS or HF_ROWS else []
STAGED_FILES = expand(STAGED, shard=SHARDS)
DATASET_DIR = f"{RUN_DIR}/parquet"
CARD = f"{DATASET_DIR}/README.md"
DATASET_FILE_LIST = f"{RUN_DIR}/dataset.files.json"
# A trial's plan of its full run (rules/plan.smk): part of a trial's default target, not a full run's.
PLAN = f"{RUN_DIR}/plan.json"
PLAN_MARKDOWN = f"{RUN_DIR}/plan.md"
PLAN_OUTPUTS = [PLAN] if TRIAL_FILES else []
PLAN_OPTIONS = from_block(PlanOptions, config.get("plan") or {}, "plan")
# merge_all's files, each a full copy of the embeddings: written only where merge.formats lists them, by
# `snakemake merge_all`, or by every run when merge.in_default_run (then the card counts them too).
MERGE = from_block(MergeOptions, config["merge"], "merge")
MERGED = {
    "pt": f"{RUN_DIR}/{MODEL}_embeddings_all.pt",
    "npy": f"{RUN_DIR}/{MODEL}_embeddings_all.npy",
    "index": f"{RUN_DIR}/{MODEL}_embeddings_all.keys.txt",
}
MERGED_OUTPUTS = {name: MERGED[name] for name in MERGE.files()}
MERGED_IN_RUN = list(MERGED_OUTPUTS.values()) if MERGE.in_default_run else []


def stale_merged_notice():
    """One line when merge_all's files are older than a shard and a plain run does not remake them:
    they would be loaded as the dataset but miss the shards' new rows."""
    merged = [path for path in MERGED.values() if os.path.exists(path)]
    if MERGE.in_default_run or not merged:
        return
    shards = [path for shard in SHARDS if os.path.exists(path := EMBEDDINGS.format(shard=shard))]
    if shards and max(map(os.path.getmtime, shards)) > min(map(os.path.getmtime, merged)):
        logger.warning(f"embedpipe: {', '.join(merged)} predate the newest shard: `snakemake merge_all` brings "
                       "them up to date (a plain run does not: merge.in_default_run is false)")


if workflow.is_main_process:
    stale_merged_notice()


include: "launch.smk"

FOLDER_PT = f"{RUN_DIR}/export/folder_pt/{MODEL}_embeddings_{{shard}}.pt"
# pca.components: fitted on the run's rows, each dataset row gets embedding_pca, pca.npz is published
PCA_COMPONENTS = (config.get("pca") or {}).get("components")
# the count in the name: another count is another file, so the rows are projected again (mtime triggers)
PCA_FILE = f"{RUN_DIR}/pca/pca{PCA_COMPONENTS}.npz"
PCA_INPUTS = [PCA_FILE] if PCA_COMPONENTS else []
FOLDER_PT_KEYS = MERGE.folder_pt_keys
VALIDATION_DIR = f"{RUN_DIR}/validation"
METRICS = f"{VALIDATION_DIR}/metrics.json"
CARD_OPTIONS = from_block(CardOptions, config["dataset"], "dataset")
DATASET_TITLE = CARD_OPTIONS.pretty_name or RUN
UPLOAD = from_block(UploadOptions, config["upload"], "upload")
UPLOAD_RECEIPT = f"{RUN_DIR}/upload/" + ("plan.json" if UPLOAD.dry_run else "receipt.json")
# upload.path_in_repo: the config a model's folder is read by (the folder's name when not given)
UPLOAD_CONFIG = config_name_of(UPLOAD.path_in_repo, UPLOAD.config_name) if UPLOAD.path_in_repo else None
# Identifier shapes of the user's own, looked for in every key by the staged step (judge_keys). They
# reach it as a file rewritten only when they change: an input, so a change re-judges every shard
# whatever the rerun triggers (a param would not under mtime).
IDENTIFYING_PATTERNS = config["metadata"].get("identifying_patterns") or []
# The shard folders discover assigns, as the DAG listed them: a file, not a command-line value (40,000
# taxon folders' names are past the 128 KB one argument may hold). Rewritten when the list changes.
FOLDER_LIST = f"{LOG_DIR}/shard_folders.json"
if workflow.is_main_process:
    write_text_if_changed(FOLDER_LIST, json.dumps(SHARD_SPEC.folders) + "\n")
PATTERNS_FILE = f"{LOG_DIR}/identifying_patterns.json"
if workflow.is_main_process:
    write_text_if_changed(PATTERNS_FILE, json.dumps(IDENTIFYING_PATTERNS) + "\n")


# The evaluation reads the staged dataset files validate reads, and runs before validate, whose report
# holds its section; `all` asks for it only when evaluate.enabled, `snakemake evaluate` works either way.
EVALUATE = config.get("evaluate") or {"enabled": False}
EVALUATION_DIR = f"{RUN_DIR}/evaluation"
EVALUATION = {name: f"{EVALUATION_DIR}/{name}" for name in ("metrics.json", "roc.png", "report.html")}
EVALUATION_OUTPUTS = list(EVALUATION.values()) if EVALUATE["enabled"] else []


def evaluation_inputs(wildcards):
    """evaluate's labels: the table, or PTB-XL's two files. Checked here as well, so `snakemake
    evaluate` with evaluate.enabled false names a missing key before any job."""
    if problem := evaluation_problem(EVALUATE, WHERE):
        config_error(*problem)
    if EVALUATE.get("ptbxl_dir"):
        return [os.path.join(EVALUATE["ptbxl_dir"], name) for name in PTBXL_FILES]
    return [EVALUATE["labels"]]


def evaluation_settings():
    """The evaluate block for evaluate.py's --settings (paths as given: the jobs run where Snakemake does)."""
    return json.dumps({k: v for k, v in EVALUATE.items() if k != "enabled"}, sort_keys=True)


def input_dir_input(wildcards):
    """discover's input: the folder it scans (hf_dataset mode too: the listed paths are relative to it).
    ancient: the folder's mtime never triggers a rerun (rescan_notice says so). Where a rule makes it
    (the demos), Snakemake runs that rule first."""
    rescan_notice()
    return ancient(config["input_dir"])


def model_inputs():
    """extract's inputs: the local model (file or folder) encoder.path names, ancient like the input
    folder; none when the model comes from the hub. The pretrain output is not ancient: a newly
    trained model is embedded again."""
    if ENCODER.get("path") in MADE_MODELS:
        return [ENCODER["path"]]
    return [ancient(ENCODER["path"])] if ENCODER.get("path") else []


def pretrain_data():
    """pretrain's --data: the pretrain.data dumps as given (`[name=]path`), else every shard's manifest."""
    data = PRETRAIN.get("data")
    if not data:
        return expand(MANIFEST, shard=SHARDS)
    return [data] if isinstance(data, str) else list(data)


def pretrain_inputs():
    """pretrain's inputs: the manifests (discover runs first), or the dumps' paths without a `name=`."""
    if not PRETRAIN.get("data"):
        return pretrain_data()
    paths = [spec.split("=", 1)[1] if "=" in spec and not os.path.exists(spec) else spec for spec in pretrain_data()]
    return [ancient(path) for path in paths]


def pretrain_options():
    """The pretrain block's settings for pretrain.py's --options (null: the config's value), with the
    encoder's preprocessing, so pretraining sees the signals extract will."""
    settings = {k: v for k, v in PRETRAIN.items() if k not in ("enabled", "config", "data", "gpus") and v is not None}
    preprocessing = {k: ENCODER[k] for k in ("normalise", "resample", "nan") if ENCODER.get(k) is not None}
    return json.dumps(preprocessing | settings, sort_keys=True)


def pretrain_threads():
    """CPUs a pretrain job asks for: per GPU its decode workers plus the process (ViTS_mimic's 4 when null)."""
    workers = PRETRAIN.get("num_workers")
    return ((4 if workers is None else int(workers)) + 1) * PRETRAIN["gpus"]


def pretrain_command():
    """pretrain.py on one GPU, or under torchrun with one DDP process per GPU of the job."""
    if PRETRAIN["gpus"] == 1:
        return script("pretrain.py")
    path = os.path.join(workflow.basedir, "workflow", "scripts", "pretrain.py")
    # Snakemake sets OMP_NUM_THREADS to the job's threads and torchrun passes it on: each rank gets its share
    per_rank = pretrain_threads() // PRETRAIN["gpus"]
    return (f"OMP_NUM_THREADS={per_rank} torchrun --standalone --nproc_per_node={PRETRAIN['gpus']} "
            f"{shlex.quote(path)}")


def encoder_options_json():
    """The encoder block for extract.py's --encoder_options: each encoder takes the keys it knows."""
    return json.dumps({k: v for k, v in ENCODER.items() if k != "name" and v is not None}, sort_keys=True)


def metadata_inputs():
    """The joined rule's inputs besides the manifests: the lists the metadata kind joins."""
    return [config["metadata"][key] for key in METADATA_LISTS]


def shard_lists(name, **lists):
    """A rule's per-shard path lists as an argument file, one argument a line, that its script reads as
    `@<file>`: at 1,000 shards the lists are past the 128 KB one command line may hold. Rewritten only
    when they change."""
    path = f"{LOG_DIR}/args/{name}.txt"
    lines = [line for flag, paths in lists.items() for line in (f"--{flag}", *paths)]
    write_text_if_changed(path, "".join(f"{line}\n" for line in lines))
    return path


def optional_file_flag(name):
    """A params function: `--<name>=<the named input, quoted>` when the rule has that optional input
    (hf_rows, pca: an empty list when the run does not make it), else nothing."""
    return lambda wc, input: f"--{name}={shlex.quote(input[name][0])}" if input[name] else ""


def metadata_flags():
    return " ".join(f"--{key}={shlex.quote(config['metadata'][key])}" for key in METADATA_LISTS)


def extract_threads():
    """CPUs an extract job asks for: its decode workers plus the main process."""
    if EXTRACT.num_workers != "auto":
        return int(EXTRACT.num_workers) + 1
    try:
        return workflow.cores
    except WorkflowError:  # --dag, --lint and dry runs need no --cores; jobs never run from those
        return 16


def export_inputs(fam, export, shards):
    """An export's input function: its shard files, once the run has what it exports. Evaluated only
    when `export.target` is in the DAG, so an export the run has no data for fails there, naming the key."""
    if fam.name != ENCODER["name"]:
        config_error("encoder.name", f"`snakemake {export.target}` exports {fam.name} outputs; "
                     f"this run uses {ENCODER['name']}")
    if missing := export.unavailable(ENCODER):
        config_error(*missing)
    return shards


def folder_pt_prefix(wildcards):
    """export_folder_pt's --strip_prefix: the shard's folder, when the keys are to be relative to it.
    Evaluated only when the export is in the DAG: a hash-sharded run has no folders to be relative to."""
    if FOLDER_PT_KEYS != "folder":
        return ""
    if SHARDING.by != "folder":
        config_error("merge.folder_pt_keys", "folder needs shards.by: folder (hash shards are not folders)")
    if SHARD_SPEC.grouped:
        config_error("merge.folder_pt_keys", f"folder needs one folder a shard: the {len(SHARD_SPEC.folders)} "
                     f"folders are grouped into shards (shards.max_shards: {SHARDING.max_shards}); raise it")
    return f"--strip_prefix={shlex.quote(f'{wildcards.shard}/')}"


def config_made_with():
    """What this config's rows are made with (made_with.made_with). Computed when first asked for (by the
    DAG's stamps, validate's params), not by every job's Snakemake; model digests are cached on disk."""
    if "made_with" not in ONCE:
        cache = DigestCache(os.path.join(".snakemake", "embedpipe", "model_digests.json"))
        ONCE["made_with"] = made_with(ENCODER, FAMILY.defaults(), skip_files=RULE_MADE_MODEL_FILES, cache=cache)
        cache.save()
    return ONCE["made_with"]


def settings_changed(wildcards):
    """extract's input function: the shard's stamp (changed_shards keeps it up to date). Older than the
    shard while that was made with this config's model, weights and preprocessing from its manifest's
    files; else just rewritten, so extract embeds the shard again. Snakemake alone would reuse it under
    mtime triggers, after weights were replaced under the same path, or when another config wrote this
    run folder; and would embed every shard again after a rescan (the manifest is an ancient input)."""
    if workflow.is_main_process:
        changed_shards()
    return stamp_path(SETTINGS_CHANGED_DIR, wildcards.shard)


def changed_shards():
    """Bring every shard's stamp up to date, at once (Snakemake lists the stamps' folder once, when it
    looks for the first), saying once for each shard made otherwise. Written even by a dry run, as
    Snakemake's own log is: a stamp that only a job would write would not trigger a rerun under mtime.
    Without pyarrow in Snakemake's own environment the footers cannot be read here: validate still
    checks them."""
    if "stamps" in ONCE:
        return
    ONCE["stamps"] = True
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        logger.warning("pyarrow is not installed where Snakemake runs: shards on disk are not compared with this "
                       "config before the run (validate's same_model check still does)")
        wanted = None
    else:
        wanted = config_made_with()
    for shard in SHARDS:
        shard_file = EMBEDDINGS.format(shard=shard)
        why = update_stamp(stamp_path(SETTINGS_CHANGED_DIR, shard), shard_file, wanted, MANIFEST.format(shard=shard))
        if why == [FILES_CHANGED]:
            logger.info(f"{shard_file}: {FILES_CHANGED}: extract runs again (rows of unchanged files are reused)")
        elif why:
            logger.warning(f"{shard_file} was made with other settings than this config's ({'; '.join(why)}): "
                           "extract embeds it again. To keep both, give this config a run of its own (run: <name>).")


def upload_inputs(wildcards):
    """upload's input function: the file list and the validation that passed, once the config can be
    uploaded. Evaluated only when `upload` is in the DAG, so other targets do not need a repo id."""
    repo_id = UPLOAD.repo_id
    if not repo_id or "/" not in repo_id:
        config_error("upload.repo_id", f"{repo_id!r}: `snakemake upload` needs '<user or org>/<name>'")
    if TRIAL_FILES:
        config_error("extract.limit", f"{TRIAL_FILES}: a trial run ({RUN_DIR}) is not published; unset extract.limit "
                                      "and run the full dataset to upload it")
    return {"file_list": DATASET_FILE_LIST, "metrics": METRICS}  # metrics.json exists only when validation passed


def doctor_config():
    """What the doctor checks, as the jobs get it: the encoder block, the run's folders, the media."""
    return json.dumps({
        "encoder": {k: ENCODER.get(k) for k in ("name", "device", "media") if ENCODER.get(k) is not None},
        "extensions": config["extensions"],
        "extract": {"require_gpu": EXTRACT.require_gpu},
        "upload": {"repo_id": UPLOAD.repo_id, "dry_run": UPLOAD.dry_run},
        "results_dir": RUN_DIR,
        "logs_dir": LOG_DIR,
    }, sort_keys=True)


def validate_settings():
    """The validate block, with the embedding width where the encoder's options fix it."""
    block = from_block(ValidationConfig, config.get("validate") or {}, "validate")
    return as_json(replace(block, expected_dim=FAMILY.width(ENCODER)))
