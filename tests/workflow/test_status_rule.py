"""`snakemake status`: the status table of a finished demo run, and of a run another Snakemake is busy
with (holding the working directory's lock, which `--nolock` leaves alone)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from support.status_watch import status_command
from support.workflow import REPO, run_env, snakemake

from embedpipe.runtime.status import run_status
from embedpipe.store.progress import FINISHED, progress_path, read_progress

DEMO = str(REPO / "config" / "demo.yaml")


def test_status_of_the_finished_demo(demo_run):
    run_dir = demo_run / "results" / "demo"
    status = run_status(run_dir)
    assert [(s.shard, s.state) for s in status.shards] == [("p10", "finished"), ("p11", "finished"),
                                                            ("p12", "finished")]
    totals = {s: len((run_dir / "manifests" / f"{s}.txt").read_text().split()) for s in ("p10", "p11", "p12")}
    assert {s.shard: (s.done, s.total) for s in status.shards} == {s: (n, n) for s, n in totals.items()}
    assert sum(s.errors for s in status.shards) == 2  # the demo's two corrupt files
    for shard in totals:
        record = read_progress(progress_path(run_dir, shard))
        assert record.state == FINISHED and record.rate > 0 and record.seconds.model > 0

    proc = snakemake(demo_run, "status", "--cores", "1", "--configfile", DEMO)
    table = proc.stdout[proc.stdout.index("embedpipe status:"):]
    assert f"files {sum(totals.values())}/{sum(totals.values())} (100.0%); shards: 3 finished; run ETA -" in table
    for shard, n in totals.items():
        assert f"{shard}    finished  {n}/{n}" in table
    assert "1 of 1 steps (100%) done" in proc.stdout + proc.stderr  # nothing else was run

    command = status_command(run_dir, env=run_env())
    assert command.returncode == 0 and "shards: 3 finished" in command.stdout


def test_status_runs_while_another_snakemake_holds_the_lock(tmp_path):
    busy = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
                             str(tmp_path), "--cores", "1", "--configfile", DEMO], env=run_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        locks = tmp_path / ".snakemake" / "locks"
        deadline = time.monotonic() + 300
        while not (locks.is_dir() and any(locks.iterdir())):
            assert busy.poll() is None and time.monotonic() < deadline, "the demo run ended before it took its lock"
            time.sleep(0.2)
        held = sorted(locks.iterdir())
        # --nolock, as docs/status.md says: without it, Snakemake's unlock at the end removes the whole
        # locks folder, the busy run's lock files with it.
        proc = snakemake(tmp_path, "status", "--nolock", "--cores", "1", "--configfile", DEMO)
        assert busy.poll() is None and set(held) <= set(locks.iterdir())  # it ran beside the run, whose locks stay
        table = proc.stdout[proc.stdout.index("embedpipe status:"):]
        for shard in ("p10", "p11", "p12"):  # the DAG's shards, whether discover has run yet or not
            assert re.search(rf"^{shard}\s+(pending|running|finished)\s", table, re.M), table
    finally:
        os.killpg(busy.pid, signal.SIGTERM)
        busy.wait(120)
