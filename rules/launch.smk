# What this launch asks for (the command line re-read with its profile: the executor, the extract
# job's resources) and the preflight on it, before any job: included by common.smk once the run's
# paths and blocks are known. plan_launch_flags gives the plan step the same facts.


@functools.cache
def command_line():
    """Snakemake's command line read again, the profile applied: in a dry run the executor it names is not
    in `workflow`. Read in the folder Snakemake was started from (a relative --profile is relative to it).
    None when this process was not started as `snakemake …` (the API, a test harness) or it cannot be read."""
    from snakemake.cli import parse_args

    start = sys.argv[0] if sys.argv else ""
    if os.path.basename(start) != "snakemake" and not start.endswith(os.path.join("snakemake", "__main__.py")):
        return None
    here = os.getcwd()
    try:
        os.chdir(workflow.rundir)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return parse_args(sys.argv[1:])[1]  # it says "Using profile ..." again: not twice on screen
    except (SystemExit, Exception):
        return None
    finally:
        os.chdir(here)


def raw_resources(resources):
    """A Resources mapping as the values were given (an expression such as `250000 * attempt` as text)."""
    return {name: res.raw for name, res in (resources or {}).items()}


def current_launch():
    """What this launch asks for: the executor, the extract job's GPU, the SLURM account and partition."""
    args = command_line()
    settings = workflow.resource_settings
    executor = (getattr(args, "executor", None) or "local") if args is not None else None
    # a setting not given is dataclasses.MISSING, which is true: only a path counts
    partition_config = any(isinstance(getattr(args, f"{prefix}slurm_partition_config", None), (str, os.PathLike))
                           for prefix in ("", "embedpipe_"))
    return launch_of(executor, raw_resources(settings.overwrite_resources.get("extract")),
                     raw_resources(settings.default_resources), dryrun=bool(getattr(args, "dryrun", False)),
                     partition_config=partition_config, targets=tuple(getattr(args, "targets", None) or ()),
                     official_settings=official_slurm_settings(executor, vars(args) if args is not None else {}))


def plan_launch_flags():
    """The plan script's --slots, --slots_basis and --job_minutes: the full run's extract jobs at once and
    one job's time limit, from this launch (the profile's jobs and extract runtime) and the plan block."""
    args = command_line()
    runtime = raw_resources(workflow.resource_settings.overwrite_resources.get("extract")).get("runtime")
    minutes = PLAN_OPTIONS.job_minutes or first_attempt_minutes(runtime)
    try:
        cores = workflow.cores
    except WorkflowError:
        cores = None
    jobs = getattr(args, "jobs", None) if args is not None else None
    slots, basis = jobs_at_once(getattr(args, "executor", None) if args is not None else None,
                                jobs if isinstance(jobs, int) else None, cores, extract_threads(), len(SHARDS),
                                PLAN_OPTIONS.gpus)
    flags = f"--slots={slots} --slots_basis={shlex.quote(basis)}"
    return flags + (f" --job_minutes={minutes}" if minutes else "")


# Snakemake's modes that submit nothing (unlocking a folder, touching or listing outputs...): no preflight.
MAINTENANCE_MODES = ("unlock", "touch", "cleanup_metadata", "cleanup_shadow", "list_rules", "list_target_rules",
                     "list_changes", "list_input_changes", "list_params_changes", "list_untracked", "summary",
                     "detailed_summary", "delete_all_output", "delete_temp_output", "lint", "dag", "rulegraph",
                     "filegraph", "d3dag", "archive", "print_compilation", "containerize",
                     "generate_unit_tests", "export_cwl")


def run_preflight():
    """What would break the launch (embedpipe.config.preflight), once, where Snakemake was started (not in a
    job's own Snakemake): warnings are logged, stops end the DAG build, one line each, naming the key."""
    if (args := command_line()) is not None and any(getattr(args, mode, False) for mode in MAINTENANCE_MODES):
        return
    launch = current_launch()
    files = RunFiles(RUN_DIR, manifests={s: MANIFEST.format(shard=s) for s in SHARDS},
                     shard_files={s: EMBEDDINGS.format(shard=s) for s in SHARDS}, demo=DEMO,
                     made_models=tuple(MADE_MODELS),
                     merge_copies=len({"pt", "npy"} & set(MERGE.files())) if MERGE.in_default_run else 0)
    stops, warnings = stops_and_warnings(preflight(config, ENCODER, EXTRACT, launch, files), targets=launch.targets)
    for line in warnings:
        logger.warning(f"embedpipe preflight: {line}")
    if stops:
        raise WorkflowError("\n".join(stops))


if workflow.is_main_process:
    run_preflight()
