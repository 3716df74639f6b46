"""onerror's lines: the failed jobs in Snakemake's log, each one's reason from its own log."""

from __future__ import annotations

from embedpipe.runtime.failed_jobs import FailedJob, failed_jobs, failure_lines, reason_of, wildcards_from

SNAKEMAKE_LOG = """\
[Mon Dec  7 19:36:46 2026]
Error in rule extract:
    message: None
    jobid: 6
    input: results/demo/manifests/p11.txt
    output: results/demo/embeddings/p11.parquet, results/demo/embeddings/p11.errors.parquet
    log: {extract_log} (check log file(s) for error details)
    shell:
        python extract.py --shard=p11 > {extract_log} 2>&1
        (command exited with non-zero exit code)
[Mon Dec  7 19:36:50 2026]
Error in rule extract:
    message: SLURM-job '12' failed, SLURM status is: 'FAILED'
    jobid: 6
    log: {extract_log}, {slurm_log} (check log file(s) for error details)
Error in rule validate:
    jobid: 8
    log: {validate_log} (check log file(s) for error details)
Error in rule all_done:
    jobid: 9
Shutting down, this might take some time.
"""


def test_each_failed_job_once_with_its_reason_and_log(tmp_path):
    extract_log, slurm_log, validate_log = tmp_path / "p11.log", tmp_path / "slurm.log", tmp_path / "validate.log"
    extract_log.write_text(
        "p11:  40%|████      | 4/10 [00:01<00:01, 3.2file/s]\r"
        "2026-12-07 19:36:45,001 INFO embedpipe.extract.loop: p11: 4/10 files\n"
        "Traceback (most recent call last):\n"
        '  File "extract.py", line 70, in __post_init__\n'
        "    self.parts_dir.mkdir(parents=True, exist_ok=True)\n"
        "FileExistsError: [Errno 17] File exists: 'results/demo/parts/p11'\n")
    slurm_log.write_text("srun: launched\nslurmstepd: error: *** JOB 12 ON n1 CANCELLED AT 2026-12-07T19:36:49 DUE TO "
                         "TIME LIMIT ***\n")
    validate_log.write_text("2026-12-07 19:36:45,001 INFO validate: FAIL effective_rank: effective rank 1.9870 < 2.0\n"
                            "2026-12-07 19:36:45,101 ERROR validate: 1 check failed: effective rank 1.9870 < 2.0 "
                            "(validate.min_effective_rank); report in results/x/validation/failed/report.html\n")
    text = SNAKEMAKE_LOG.format(extract_log=extract_log, slurm_log=slurm_log, validate_log=validate_log)
    jobs = failed_jobs(text)
    # a retried job fails once per attempt: its last attempt, with SLURM's log, is the one kept
    assert jobs == [FailedJob("extract", (str(extract_log), str(slurm_log))),
                    FailedJob("validate", (str(validate_log),)), FailedJob("all_done", ())]
    lines = failure_lines(jobs, lambda job: f"{job.rule} p11" if job.rule == "extract" else job.rule)
    assert lines == [
        f"extract p11 failed: SLURM: JOB 12 ON n1 CANCELLED AT 2026-12-07T19:36:49 DUE TO TIME LIMIT; FileExistsError: "
        f"[Errno 17] File exists: 'results/demo/parts/p11' (log: {extract_log})",
        "validate failed: 1 check failed: effective rank 1.9870 < 2.0 (validate.min_effective_rank); report in "
        f"results/x/validation/failed/report.html (log: {validate_log})",
        "all_done failed: its log is empty (the rule has no log: see Snakemake's output above)",
    ]


def test_the_reason_is_the_last_error_line_traceback_or_line():
    assert reason_of("") is None
    # the script's own ERROR line, after which nothing went wrong
    assert reason_of("2026-01-01 10:00:00,000 ERROR extract: no GPU (extract.require_gpu)\n"
                     "2026-01-01 10:00:00,100 INFO extract: bye\n") == "no GPU (extract.require_gpu)"
    # a traceback after a logged error: the exception is the later, more exact reason
    assert reason_of("2026-01-01 10:00:00,000 ERROR x: giving up\nTraceback (most recent call last):\n"
                     '  File "a.py", line 1, in <module>\n    f()\nValueError: bad value\n') == "ValueError: bad value"
    # a line that only looks like an exception, outside a traceback, is a plain last line
    assert reason_of("ok\nbash: line 1: 1234 Killed    python extract.py\n") == (
        "bash: line 1: 1234 Killed python extract.py")
    assert len(reason_of("RuntimeError " + "x" * 5000)) == 300


def test_the_rules_wildcards_are_read_from_the_log_path():
    assert wildcards_from("logs/demo/extract/p11.log", "logs/demo/extract/{shard}.log") == {"shard": "p11"}
    assert wildcards_from("logs/demo/x/p1/p1.log", "logs/demo/x/{shard}/{shard}.log") == {"shard": "p1"}
    assert wildcards_from("logs/demo/x/p1/p2.log", "logs/demo/x/{shard}/{shard}.log") is None
    assert wildcards_from("logs/(a+)/v.log", "logs/(a+)/{name}.log") == {"name": "v"}
