"""Kills, preemption and a full disk, tried for real on the extract script (see docs/reliability.md)."""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import faults
from support.shard_compare import assert_same_shard
from support.workflow import fill

from embedpipe.discover.scan import scan_files
from embedpipe.extract.loop import plan_blocks

BATCH = 2
KILLS = 20
TIMED_KILLS = 6  # the rest are at probes, so every phase is hit whatever the machine's speed


def argv(tree: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", "tiny", "--model_path", str(model), "--input_dir", str(tree), "--shard", "p10",
            "--output", str(out / "embeddings" / "p10.parquet"), "--device", "cpu", "--batch_size", str(BATCH),
            "--save_every", "2", "--encoder_options", json.dumps({"outputs": ["mean", "tokens"]}), *extra]


class Runner:
    """Forked runs of the extract script, each logged to its own file."""

    def __init__(self, tree: Path, model: Path) -> None:
        self.tree, self.model, self.ctx = tree, model, faults.context()

    def start(self, out: Path, probe: tuple[str, int] | None = None, counts: Path | None = None,
              workers: int = 0, extra: tuple[str, ...] = (), log: Path | None = None):
        out.mkdir(parents=True, exist_ok=True)
        args = argv(self.tree, self.model, out, "--num_workers", str(workers), *extra)
        proc = self.ctx.Process(target=faults.run, args=(args, str(log or out / "run.log"), probe,
                                                         str(counts) if counts else None))
        proc.start()
        return proc

    def run(self, out: Path, probe: tuple[str, int] | None = None, counts: Path | None = None,
            extra: tuple[str, ...] = (), log: Path | None = None) -> int:
        proc = self.start(out, probe, counts, extra=extra, log=log)
        proc.join(300)
        return proc.exitcode






@pytest.fixture(scope="module")
def runner(video_tree, tiny_model) -> Runner:
    return Runner(video_tree, tiny_model)


@pytest.fixture(scope="module")
def reference(runner, tmp_path_factory) -> tuple[Path, dict[str, int], float, Path]:
    """An uninterrupted run (its rows, how often each probe fires), and a second one: how long a run
    takes once the forkserver is up, and what a rerun from scratch gives."""
    out, again = tmp_path_factory.mktemp("uninterrupted"), tmp_path_factory.mktemp("again")
    counts = out / "counts.json"
    assert runner.run(out, counts=counts) == 0, (out / "run.log").read_text()
    start = time.monotonic()
    assert runner.run(again) == 0, (again / "run.log").read_text()
    return out, json.loads(counts.read_text()), time.monotonic() - start, again




def assert_nothing_half_written(out: Path, ref: Path) -> None:
    """After a kill: every file under a final name is complete; the shard file exists only whole."""
    for part in out.glob("parts/p10/part-*.parquet"):
        pq.read_metadata(part)
    shard = out / "embeddings" / "p10.parquet"
    if shard.exists():
        assert_same_shard(out, ref)


def test_rerun_is_identical_rows_in_the_same_order(reference):
    ref, _, _, again = reference
    assert_same_shard(again, ref)
    a, b = (pq.read_table(d / "embeddings" / "p10.parquet").replace_schema_metadata(None) for d in (again, ref))
    assert a.equals(b)  # the same order, and here (same parts) the same tokens files too


def kill_after(runner: Runner, out: Path, seconds: float):
    """A run with a worker, SIGKILLed `seconds` in. The moment is a share of a reference run's time,
    which a loaded machine stretches: a run that ended before it is run again, killed twice as early."""
    for _ in range(6):
        proc = runner.start(out, workers=1)
        time.sleep(seconds)
        proc.kill()  # a process that has ended is not signalled
        proc.join(60)
        if proc.exitcode != 0:
            return proc
        shutil.rmtree(out)
        seconds /= 2
    raise AssertionError(f"every run ended before {seconds:.3f} s")


def test_killed_at_twenty_random_moments_every_rerun_equals_an_uninterrupted_run(runner, reference, tmp_path):
    ref, counts, seconds, _ = reference
    rng = random.Random(8)
    probes = [p for p in faults.PROBES if counts.get(p)]
    assert set(probes) == set(faults.PROBES), f"a probe never fired in the uninterrupted run: {counts}"
    moments = [("timed", rng.uniform(0.05, 0.7) * seconds) for _ in range(TIMED_KILLS)]
    moments += [(p, rng.randint(1, counts[p])) for p in (probes * KILLS)[: KILLS - TIMED_KILLS]]
    for i, (where, when) in enumerate(moments):
        out = tmp_path / f"kill-{i:02d}-{where}"
        if where == "timed":
            proc = kill_after(runner, out, when)
        else:
            proc = runner.start(out, probe=(where, when))
            proc.join(300)
        assert proc.exitcode == -signal.SIGKILL, f"{where} {when}: not killed ({proc.exitcode})"
        assert_nothing_half_written(out, ref)
        assert runner.run(out) == 0, (out / "run.log").read_text()
        assert_same_shard(out, ref)
        assert not list(out.rglob(f"*{faults.TMP_MARK}*")), "temporary files left behind"
        assert not (out / "parts" / "p10").exists()
        published = {p.name for p in (out / "embeddings" / "p10.tokens").iterdir()}
        referenced = {Path(f).name for f in pq.read_table(out / "embeddings" / "p10.parquet").column("tokens_file")
                      .to_pylist()}
        assert published == referenced


def test_sigterm_flushes_the_part_in_progress_and_exits_non_zero(runner, reference, video_tree, tmp_path):
    ref, _, _, _ = reference
    out = tmp_path / "preempted"
    # one part for the whole shard: what is on disk after the signal is what the signal flushed
    proc = runner.start(out, probe=("sigterm", 3), extra=("--save_every", "1000"))
    proc.join(300)
    assert proc.exitcode == 128 + signal.SIGTERM, (out / "run.log").read_text()
    log = (out / "run.log").read_text()
    assert "stopped by signal 15 after flushing the current part" in log
    assert not (out / "embeddings" / "p10.parquet").exists()
    keys = scan_files(video_tree, [".mp4"], subdir="p10")
    parts = list((out / "parts" / "p10").glob("part-*.parquet"))
    assert len(parts) == 1
    embedded = {r["key"] for r in pq.read_table(parts[0], columns=["key", "stage"]).to_pylist() if r["stage"] is None}
    # the three blocks encoded before the signal are on disk, and nothing of the fourth
    broken = set(pq.read_table(ref / "embeddings" / "p10.errors.parquet").column("key").to_pylist())
    first_three = {k for block in plan_blocks(keys, broken, BATCH)[:3] for k in block}
    assert embedded == first_three
    assert runner.run(out) == 0
    assert "already in parts" in (out / "run.log").read_text()
    assert_same_shard(out, ref)


def test_full_disk_before_the_first_part_fails_clearly_then_resumes(runner, reference, small_disk):
    ref, disk, log_path = reference[0], small_disk, small_disk.parent / "run.log"  # the log outside the disk
    out = disk / "run"
    out.mkdir()
    filler = fill(disk)
    proc = runner.start(out, log=log_path)
    proc.join(300)
    log = log_path.read_text()
    assert proc.exitcode == 1, log
    assert "Traceback" not in log
    assert re.search(r"could not write \S+/parts/p10/\S+: No space left on device \(0\.0 MiB free there\)", log), log
    assert "free space and rerun: it resumes from them" in log
    assert not (out / "embeddings" / "p10.parquet").exists()
    assert not list(out.rglob(f"*{faults.TMP_MARK}*"))
    filler.unlink()
    assert runner.run(out, log=log_path) == 0
    assert_same_shard(out, ref)


def test_full_disk_while_assembling_leaves_no_shard_file_and_keeps_the_parts(runner, reference, small_disk):
    ref, disk, log_path = reference[0], small_disk, small_disk.parent / "run.log"  # the log outside the disk
    out = disk / "run"
    assert runner.run(out, extra=("--keep_parts",), log=log_path) == 0
    shard = out / "embeddings" / "p10.parquet"
    page = 4096
    shard_pages = -(-shard.stat().st_size // page)
    errors_pages = -(-(out / "embeddings" / "p10.errors.parquet").stat().st_size // page)
    for p in (shard, out / "embeddings" / "p10.errors.parquet"):  # the state of a run killed before assembly
        p.unlink()
    shutil.rmtree(out / "embeddings" / "p10.tokens")
    parts = sorted(p.name for p in (out / "parts" / "p10").iterdir())
    # room for the errors file, not for the shard file
    filler = fill(disk, leave=(errors_pages + shard_pages - 1) * page)
    log_path.unlink()
    proc = runner.start(out, extra=("--keep_parts",), log=log_path)
    proc.join(300)
    log = log_path.read_text()
    assert proc.exitcode == 1, log
    assert re.search(r"could not write \S+/embeddings/p10\.parquet: No space left on device", log), log
    assert not shard.exists()
    assert sorted(p.name for p in (out / "parts" / "p10").iterdir()) == parts
    assert not list(out.rglob(f"*{faults.TMP_MARK}*"))
    filler.unlink()
    log_path.unlink()
    assert runner.run(out, log=log_path) == 0
    assert "13 already in parts, 0 to embed" in log_path.read_text()
    assert_same_shard(out, ref)
