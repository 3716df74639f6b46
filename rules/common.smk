# Shared names and start-up checks. Everything here runs when the DAG is built, before any job.
import json
import re
import shlex
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(workflow.basedir, "src"))  # the Snakefile itself needs only stdlib parts
from embedpipe.discover import ShardSpec, list_top_folders  # noqa: E402
from embedpipe.identifying import IDENTIFYING_BY_KIND, refusal, unacknowledged  # noqa: E402
from embedpipe.presets import VJEPA2_PRESETS  # noqa: E402

from snakemake.exceptions import WorkflowError  # noqa: E402


def config_error(key, message):
    raise WorkflowError(f"config key {key!r}: {message}")


DEMO = bool(config["demo"]["enabled"])
RUN = config["run"]


def safe_dir(path):
    """A relative path that starts with '-' would read as an option on a command line."""
    return f"./{path}" if path.startswith("-") else path


RUN_DIR = safe_dir(f"{config.get('results_dir', 'results')}/{RUN}")
LOG_DIR = safe_dir(f"{config.get('logs_dir', 'logs')}/{RUN}")
# Jobs run `python` from the environment that runs Snakemake (the project's venv, activated or
# not), unless a software-deployment method (conda, apptainer) provides the environment.
if not workflow.deployment_settings.deployment_method:
    shell.prefix(f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:\"$PATH\"; ")


def script(name):
    """`python <workflow>/workflow/scripts/<name>`: what a rule runs, passed to it as a param."""
    return f"python {shlex.quote(os.path.join(workflow.basedir, 'workflow', 'scripts', name))}"
ENCODER = config["encoder"]
MODEL = ENCODER["model"]
SHARDING = config["shards"]


def check_output_dir(key, path):
    """`path` (from config key `key`) must be a folder this user can write, or one that can be made.
    Checked here because a job finding out fails with a traceback, and for logs_dir only inside a job."""
    probe = os.path.abspath(path)
    while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)  # the nearest part that exists decides whether mkdir can work
    where = "" if probe == os.path.abspath(path) else f" ({path!r} would be made inside it)"
    fix = f"set {key} to a folder you can write (it is created if missing)"
    if not os.path.isdir(probe):
        config_error(key, f"{probe!r} is a file, not a folder{where}; {fix}")
    if not os.access(probe, os.W_OK | os.X_OK):
        config_error(key, f"{probe!r} is not writable{where}; {fix}")


check_output_dir("results_dir", RUN_DIR)
check_output_dir("logs_dir", LOG_DIR)
if not DEMO and not os.path.isdir(config["input_dir"]):
    config_error("input_dir", f"{config['input_dir']!r} is not a directory")
if not DEMO and ENCODER.get("path") and not os.path.exists(ENCODER["path"]):
    config_error("encoder.path", f"{ENCODER['path']!r} does not exist")
if ENCODER["name"] == "metis":
    if not ENCODER.get("stats_path"):
        config_error("encoder.stats_path", "metis needs the codec's wav2vec2bert_stats.pt (mean and var)")
    for key in ("stats_path", "codec_path"):
        if not DEMO and ENCODER.get(key) and not os.path.isfile(ENCODER[key]):
            config_error(f"encoder.{key}", f"{ENCODER[key]!r} is not a file")
    if ENCODER.get("precision", "auto") == "bf16-autocast":
        config_error("encoder.precision", "metis runs auto, bf16 or fp32")
if ENCODER["name"] in ("ecgfounder", "ecg_jepa"):
    if not ENCODER.get("path"):
        config_error("encoder.path", f"{ENCODER['name']} needs its checkpoint file")
    if not DEMO and not os.path.isfile(ENCODER["path"]):
        config_error("encoder.path", f"{ENCODER['path']!r} is not a file")
    if ENCODER.get("precision", "auto") == "bf16-autocast":
        config_error("encoder.precision", f"{ENCODER['name']} runs auto, bf16 or fp32")
    if ENCODER.get("notch_hz") is not None and ENCODER.get("filter", "none") == "none":
        config_error("encoder.notch_hz", "is the notch of filter: ecgfounder; set encoder.filter or drop notch_hz")
    if ENCODER["name"] == "ecgfounder" and ENCODER.get("normalise") is not None:
        config_error("encoder.normalise", "ecgfounder z-scores each record (its own way); normalise is ecg_jepa's")
else:
    for key in ("length", "resample", "nan", "normalise", "notch_hz", "num_heads"):
        if ENCODER.get(key) is not None:
            config_error(f"encoder.{key}", f"is an ECG option; {ENCODER['name']} has none")
    if ENCODER.get("filter", "none") != "none":
        config_error("encoder.filter", f"is an ECG option; {ENCODER['name']} has none")
if ENCODER["name"] != "vjepa2":
    if ENCODER.get("media", "video") != "video":
        config_error("encoder.media", f"{ENCODER['name']} reads its own media; image is a vjepa2 option")
    if set(ENCODER.get("outputs") or ["mean"]) != {"mean"}:
        config_error("encoder.outputs", f"tokens, temporal and spatial are vjepa2 outputs, not {ENCODER['name']}'s")
    if ENCODER.get("transform", "auto") != "auto":
        config_error("encoder.transform", f"official and fast are V-JEPA 2's resizes; {ENCODER['name']} has none")
elif ENCODER.get("num_frames", 16) % 2 or ENCODER.get("image_frames", 16) % 2:
    config_error("encoder.num_frames" if ENCODER.get("num_frames", 16) % 2 else "encoder.image_frames",
                 "must be a multiple of V-JEPA 2's tubelet size (2)")
HF_DATASET = config.get("hf_dataset") or {}
if HF_DATASET.get("path") and config["shards"]["by"] != "hash":
    config_error("shards.by", "must be hash when hf_dataset.path lists the files (they need not share folders)")
DEMO_KIND = config["demo"].get("kind", "video")
if config["metadata"]["kind"] == "mimic_iv_echo":
    for key in ("record_list", "study_list"):
        if not config["metadata"].get(key):
            config_error(f"metadata.{key}", "required when metadata.kind is mimic_iv_echo")

if SHARDING["by"] == "folder":
    # Shard ids must be known when the DAG is built (no checkpoint), so listing the top-level
    # folders is the only scan done here; files are scanned by the discover job.
    SHARDS = sorted(SHARDING.get("folders") or [])
    if not SHARDS:
        if DEMO:
            config_error("shards.folders", "the demo must list its folders")
        SHARDS = list_top_folders(config["input_dir"])
        if not SHARDS:
            config_error("input_dir", f"no top-level folders in {config['input_dir']!r} to shard by")
    elif not DEMO:
        missing = [s for s in SHARDS if not os.path.isdir(os.path.join(config["input_dir"], s))]
        if missing:
            config_error("shards.folders", f"{missing} not found under input_dir {config['input_dir']!r}")
    # A shard id names files and travels on command lines (quoted); a line break or another control
    # character in it would not survive a manifest, a log line or a SLURM job name.
    unusable = [s for s in SHARDS if any(ord(c) < 32 or ord(c) == 127 for c in s)]
    if unusable:
        config_error("shards.folders", f"folder names with line breaks or control characters cannot be shards: "
                     f"{unusable}; rename them, or use shards.by: hash")
else:
    SHARDS = ShardSpec("hash", num_shards=SHARDING.get("num_shards", 1)).shard_ids()


wildcard_constraints:
    shard="|".join(map(re.escape, SHARDS)),


MANIFEST = f"{RUN_DIR}/manifests/{{shard}}.txt"
EXCLUSIONS = f"{RUN_DIR}/manifests/exclusions.json"
EMBEDDINGS = f"{RUN_DIR}/embeddings/{{shard}}.parquet"
ERRORS = f"{RUN_DIR}/embeddings/{{shard}}.errors.parquet"
PARTS = f"{RUN_DIR}/parts/{{shard}}"
# Each shard's dataset file is staged first; the dataset step then builds the published folder from
# exactly this run's non-empty shards, numbered train-0000i-of-0000N, and lists what it holds.
STAGED = f"{RUN_DIR}/staged/{{shard}}.parquet"
STAGED_FILES = expand(STAGED, shard=SHARDS)
DATASET_DIR = f"{RUN_DIR}/parquet"
CARD = f"{DATASET_DIR}/README.md"
DATASET_FILE_LIST = f"{RUN_DIR}/dataset.files.json"
MERGED = {
    "pt": f"{RUN_DIR}/{MODEL}_embeddings_all.pt",
    "npy": f"{RUN_DIR}/{MODEL}_embeddings_all.npy",
    "index": f"{RUN_DIR}/{MODEL}_embeddings_all.keys.txt",
}
VALIDATION_DIR = f"{RUN_DIR}/validation"
METRICS = f"{VALIDATION_DIR}/metrics.json"
DATASET_INFO = {**config["dataset"], "pretty_name": config["dataset"].get("pretty_name") or RUN}
DATASET_TITLE = DATASET_INFO["pretty_name"]
UPLOAD = config["upload"]
UPLOAD_RECEIPT = f"{RUN_DIR}/upload/" + ("plan.json" if UPLOAD.get("dry_run") else "receipt.json")
if UPLOAD.get("public") and config["dataset"].get("credentialed"):
    config_error("upload.public", "true is refused for a dataset with dataset.credentialed: true "
                 "(e.g. MIMIC under the PhysioNet data use agreement); upload it privately")
# Known here only where the metadata kind fixes the columns; for kind none the keys decide, and
# upload.py checks what the files themselves record.
UPLOAD_ACKNOWLEDGED = UPLOAD.get("public_identifying_columns") or []
if UPLOAD.get("public") and (
    missing := unacknowledged(IDENTIFYING_BY_KIND.get(config["metadata"]["kind"]) or (), UPLOAD_ACKNOWLEDGED)
):
    config_error("upload.public", refusal(missing))


def demo_inputs(*names):
    """Files the demo rules make; empty in a real run, so a real DAG holds no demo job."""
    if not DEMO:
        return []
    if DEMO_KIND != "video":  # only the video demo makes metadata lists (MIMIC-IV-Echo CSVs)
        names = [n for n in names if n in ("data", "model")]
    paths = {
        "data": config["input_dir"],
        "model": ENCODER["path"],
        "record_list": config["metadata"]["record_list"],
        "study_list": config["metadata"]["study_list"],
    }
    return [paths[n] for n in names]


def encoder_options():
    """The encoder block for extract.py's --encoder_options: each encoder takes the keys it knows."""
    return json.dumps({k: v for k, v in ENCODER.items() if k != "name" and v is not None}, sort_keys=True)


def metadata_inputs():
    if config["metadata"]["kind"] != "mimic_iv_echo" or DEMO:
        return []
    return [config["metadata"]["record_list"], config["metadata"]["study_list"]]


def extract_threads():
    """CPUs an extract job asks for: its decode workers plus the main process."""
    workers = config["extract"].get("num_workers", "auto")
    if workers != "auto":
        return int(workers) + 1
    try:
        return workflow.cores
    except WorkflowError:  # --dag, --lint and dry runs need no --cores; jobs never run from those
        return 16


def require_encoder(name, target):
    """Evaluated only when `target` is in the DAG: an export the run's encoder has no data for fails here."""
    if ENCODER["name"] != name or (name == "ecgfounder" and ENCODER.get("keep_features") is False):
        config_error("encoder.name", f"`snakemake {target}` exports {name} outputs; this run uses {ENCODER['name']}")
    return ""


def require_tokens(target):
    """`target` exports V-JEPA 2 patch tokens: the run must keep them."""
    if ENCODER["name"] != "vjepa2" or "tokens" not in (ENCODER.get("outputs") or []):
        config_error("encoder.outputs", f"`snakemake {target}` exports patch tokens; add tokens to encoder.outputs")
    return ""


def require_repo_id(wildcards):
    """Evaluated only when `upload` is in the DAG, so other targets do not need a repo id."""
    repo_id = UPLOAD.get("repo_id")
    if not repo_id or "/" not in repo_id:
        config_error("upload.repo_id", f"{repo_id!r}: `snakemake upload` needs '<user or org>/<name>'")
    return []


def upload_flags():
    flags = ["--public"] if UPLOAD.get("public") else []
    flags += ["--credentialed"] if config["dataset"].get("credentialed") else []
    flags += ["--dry-run"] if UPLOAD.get("dry_run") else []
    flags += [f"--acknowledge={shlex.quote(c)}" for c in UPLOAD_ACKNOWLEDGED]
    return " ".join(flags)


def validate_args():
    """Thresholds for validate.py. A preset's width is checked; a custom model's is what its config says."""
    args = [f"--{key}={shlex.quote(str(value))}" for key, value in sorted(config["validate"].items())]
    if ENCODER["name"] == "vjepa2" and MODEL in VJEPA2_PRESETS and not ENCODER.get("path"):
        args.append(f"--expected_dim={VJEPA2_PRESETS[MODEL].dim}")
    if ENCODER["name"] == "metis":
        args.append("--expected_dim=8")
    return " ".join(args)
