"""What the console says at a run's end: the summary of a successful run, a failed job's reason."""

from __future__ import annotations

import os
import shutil

from support.workflow import REPO, snakemake

DEMO = str(REPO / "config" / "demo.yaml")


def test_a_successful_run_ends_with_rows_errors_where_everything_is_and_how_to_upload(demo_run):
    said = (demo_run / "console.txt").read_text()
    summary = said[said.index("embedpipe run demo: 28 rows"):].splitlines()
    assert summary[:4] == [
        "embedpipe run demo: 28 rows from 30 files, 2 error rows (VideoReadError 2; listed in the report)",
        "  dataset  results/demo/parquet/ (card results/demo/parquet/README.md)",
        "  report   results/demo/validation/report.html",
        "  merged   results/demo/vjepa2-tiny_embeddings_all.pt, results/demo/vjepa2-tiny_embeddings_all.npy, "
        "results/demo/vjepa2-tiny_embeddings_all.keys.txt",
    ]
    # the config file as typed where Snakemake was started (relative to it when under it)
    upload = summary[4].split(" --configfile ")
    assert upload[0] == "  upload   HF_TOKEN=<your token> snakemake upload"
    assert upload[1] == f"{os.path.relpath(DEMO) if not os.path.relpath(DEMO).startswith('..') else DEMO}  → " \
                        "your-name/embedpipe-demo"
    # Snakemake's own folder marker is no skipped input file (discover, the card)
    assert "skipped 1 files" not in said
    assert "other extensions" not in (demo_run / "results/demo/parquet/README.md").read_text()
    # a dry run and a run with nothing to do say no summary
    again = snakemake(demo_run, "-n", "--configfile", DEMO, "--forcerun", "validate")
    assert "rows from" not in again.stdout + again.stderr


def test_a_failed_job_says_its_reason_in_one_line(demo_run, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(demo_run, work, symlinks=True)
    # p11's parts path is a file: its extract job cannot write
    shutil.rmtree(work / "results/demo/parts/p11", ignore_errors=True)
    (work / "results/demo/parts/p11").write_text("not a directory")
    failed = snakemake(work, "--cores", "2", "--configfile", DEMO, "--forcerun", "results/demo/embeddings/p11.parquet",
                       check=False)
    said = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert ("embedpipe: extract p11 failed: FileExistsError: [Errno 17] File exists: 'results/demo/parts/p11' "
            "(log: logs/demo/extract/p11.log)") in said, said[-3000:]
    assert said.count("embedpipe: extract p11 failed: ") == 1  # the one job that failed, once
