# What the console says at the end of a run (not in a dry run: Snakemake calls neither handler there,
# nor in the jobs' own Snakemake, which runs with --no-hooks):
#   onsuccess: rows, error rows by type, where the dataset, report and card are, how to upload
#              (embedpipe.runtime.run_summary: only for what this run made);
#   onerror:   one line per failed job, its reason from its log (embedpipe.runtime.failed_jobs).
from embedpipe.runtime.failed_jobs import failed_jobs, failure_lines, read_tail, wildcards_from  # noqa: E402
from embedpipe.runtime.run_summary import RunOutputs, summary_lines  # noqa: E402


def ran_rules():
    """The rules of the jobs this run ran (the DAG's; none where this Snakemake cannot say)."""
    try:
        return {job.rule.name for job in workflow.dag.needrun_jobs(exclude_finished=False)}
    except AttributeError:
        return set()


def as_given(path):
    """A config file's path as the user would type it where Snakemake was started."""
    relative = os.path.relpath(path, workflow.rundir)
    return path if relative.startswith("..") else relative


def run_outputs():
    settings = workflow.config_settings
    return RunOutputs(
        run=RUN, run_dir=RUN_DIR, metrics=METRICS, report=f"{VALIDATION_DIR}/report.html", dataset_dir=DATASET_DIR,
        card=CARD, merged=tuple(MERGED_OUTPUTS.values()), trial_files=TRIAL_FILES, repo_id=UPLOAD.repo_id,
        upload_dry_run=UPLOAD.dry_run, configfiles=tuple(as_given(str(p)) for p in settings.configfiles),
        config_args=tuple(settings.config_args or ()))


def job_label(job):
    """`extract p11`: the rule and the wildcards its log's path holds."""
    try:
        patterns = [str(p) for p in workflow.get_rule(job.rule).log]
    except Exception:  # a rule this Snakefile does not have (the log of another workflow)
        patterns = []
    for pattern, path in zip(patterns, job.logs):
        if found := wildcards_from(path, pattern):
            return " ".join([job.rule, *found.values()])
    return job.rule


onsuccess:
    # A summary is a courtesy: whatever goes wrong making it must not hide that the run succeeded.
    try:
        for line in summary_lines(run_outputs(), ran_rules()):
            logger.info(line)
    except Exception as exc:
        logger.warning(f"embedpipe: no summary of this run ({type(exc).__name__}: {exc})")


onerror:
    # Nor may the failure lines hide Snakemake's own error report above them.
    try:
        main_logs = log if isinstance(log, list) else [log]
        jobs = [job for path in main_logs if path and os.path.exists(path)
                for job in failed_jobs(read_tail(path, 1 << 24))]
        for line in failure_lines(jobs, job_label):
            logger.error(f"embedpipe: {line}")
    except Exception as exc:
        logger.warning(f"embedpipe: no failure lines ({type(exc).__name__}: {exc}); see Snakemake's report above")
