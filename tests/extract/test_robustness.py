"""Files that hang, two runs on one shard, outputs lost after a finished run, a model path of the wrong
kind: tried for real on the extract script (see docs/reliability.md)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import faults
from support.shard_compare import assert_same_shard, ipc_bytes, shard_rows
from support.timing import SLOWDOWN, scaled

from embedpipe.discover.scan import scan_files
from embedpipe.runtime.decode_guard import kill_grace

VIDEOS = 5
STUCK = "p10/p10000000/s0/stuck.mp4"  # sorts first: the first block's first file
# A sound file decodes well within it even on a loaded machine; the stuck one is killed a grace after it.
TIMEOUT_S = SLOWDOWN
TIMEOUT = ("--decode_timeout_s", str(TIMEOUT_S))
STUCK_KILLED = f"spent over {TIMEOUT_S + kill_grace(TIMEOUT_S):g} s on {STUCK}: killed"  # the watchdog's line
JOIN_S = 120  # a run here takes seconds; one that hangs fails the test rather than the suite


def argv(tree: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", "tiny", "--model_path", str(model), "--input_dir", str(tree), "--shard", "p10",
            "--output", str(out / "embeddings" / "p10.parquet"), "--device", "cpu", "--batch_size", "2",
            "--save_every", "2", "--encoder_options", json.dumps({"outputs": ["mean", "tokens"]}), *extra]


def _block_alarm_and_sleep() -> None:
    """A decoder stuck in C: SIGALRM blocked (so the soft deadline cannot act), never returning."""
    from embedpipe.encoders.vjepa2.reader import VideoReader

    real = VideoReader.prepare

    def prepare(self, path: str):
        if path.endswith(STUCK):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(3600)
        return real(self, path)

    VideoReader.prepare = prepare


def _model_must_not_load() -> None:
    from embedpipe.encoders.vjepa2.model import VJEPA2Model

    def load(self, device):
        raise AssertionError("MODEL LOADED")

    VJEPA2Model.load = load


def _kill_after_parts_removed() -> None:
    """SIGKILL right after the shard is complete and its parts are gone: the job has not exited yet,
    so Snakemake sees a failure and deletes the outputs."""
    from embedpipe.extract.writer import ShardWriter

    real = ShardWriter.remove_parts

    def remove_parts(self):
        real(self)
        os.kill(os.getpid(), signal.SIGKILL)

    ShardWriter.remove_parts = remove_parts


def _hang_collating_other_chunks() -> None:
    """A worker stuck where the watchdog does not look (between decodes): collating any chunk but
    the first (STUCK's) never returns. Only stopping the loader ends that worker."""
    from embedpipe.extract import loop as extract

    real = extract.collate

    def collate(items):
        if not any(item[0] == STUCK for item in items):
            time.sleep(3600)
        return real(items)

    extract.collate = collate


def _sigterm_while_abandoning() -> None:
    """SIGTERM to the job itself just as it starts stopping a loader whose worker the watchdog
    killed, the moment a stop used to cut short: the other workers not killed yet."""
    import threading

    from embedpipe.runtime.decode_guard import GuardedLoader

    real, sent = GuardedLoader._kill_busy, []

    def kill_busy(self, it):
        if not sent and threading.current_thread() is threading.main_thread():
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)  # the handler runs in here, whichever thread the kernel picked
        return real(self, it)

    GuardedLoader._kill_busy = kill_busy


def _own_process_group() -> None:
    """The job and its workers in a group of their own, as a shell puts a command run in a terminal."""
    os.setpgid(0, 0)


PATCHES = {"stuck": _block_alarm_and_sleep, "no_model": _model_must_not_load, "kill": _kill_after_parts_removed,
           "hang_collate": _hang_collating_other_chunks, "sigterm_in_abandon": _sigterm_while_abandoning,
           "own_group": _own_process_group}


def run_patched(args: list[str], log_path: str, patches: tuple[str, ...]) -> None:
    """A forked run of the script (tests/support/faults.py) with some of PATCHES applied first."""
    for name in patches:
        PATCHES[name]()
    faults.run(args, log_path)


class Jobs:
    def __init__(self, model: Path) -> None:
        self.model, self.ctx = model, faults.context()
        self.started: list = []

    def start(self, tree: Path, out: Path, *extra: str, patches: tuple[str, ...] = (), log: str = "run.log"):
        out.mkdir(parents=True, exist_ok=True)
        proc = self.ctx.Process(target=run_patched, args=(argv(tree, self.model, out, *extra), str(out / log), patches))
        proc.start()
        self.started.append(proc)
        return proc

    def kill_all(self) -> None:
        """After a test that failed half-way: no job keeps running (its workers die with it)."""
        for proc in self.started:
            if proc.is_alive():
                proc.kill()
                proc.join(10)
        self.started.clear()

    def run(self, tree: Path, out: Path, *extra: str, patches: tuple[str, ...] = (), log: str = "run.log") -> int:
        proc = self.start(tree, out, *extra, patches=patches, log=log)
        proc.join(JOIN_S)
        return proc.exitcode


@pytest.fixture(scope="module")
def all_jobs(tiny_model) -> Jobs:
    return Jobs(tiny_model)


@pytest.fixture
def jobs(all_jobs):
    yield all_jobs
    all_jobs.kill_all()


def make_tree(video_tree: Path, root: Path, special: str | None) -> Path:
    """VIDEOS good videos of the fixture tree, and at STUCK: a FIFO, a copy of a good video, or garbage."""
    for key in scan_files(video_tree, [".mp4"], subdir="p10")[:VIDEOS]:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(video_tree / key, root / key)
    stuck = root / STUCK
    stuck.parent.mkdir(parents=True, exist_ok=True)
    if special == "fifo":
        os.mkfifo(stuck)
    elif special == "video":
        shutil.copy(root / scan_files(root, [".mp4"])[1], stuck)
    elif special == "garbage":
        stuck.write_bytes(b"not a video" * 10)
    return root


@pytest.fixture(scope="module")
def trees(video_tree, tmp_path_factory) -> dict[str, Path]:
    return {kind: make_tree(video_tree, tmp_path_factory.mktemp(kind or "plain"), kind)
            for kind in ("fifo", "video", "garbage", None)}


@pytest.fixture(scope="module")
def garbage_run(all_jobs, trees, tmp_path_factory) -> Path:
    """The same shard with an undecodable file where the others hang: the same blocks, so the same rows."""
    out = tmp_path_factory.mktemp("garbage-run")
    assert all_jobs.run(trees["garbage"], out, "--num_workers", "0") == 0, (out / "run.log").read_text()
    return out


def log_of(out: Path, name: str = "run.log") -> str:
    return (out / name).read_text()


def errors_of(out: Path) -> dict[str, tuple[str, str, str]]:
    rows = pq.read_table(out / "embeddings" / "p10.errors.parquet").to_pylist()
    return {r["key"]: (r["stage"], r["error_type"], r["message"]) for r in rows}


def assert_rows_equal_but_the_stuck_file(out: Path, ref: Path) -> None:
    assert ipc_bytes(shard_rows(out)) == ipc_bytes(shard_rows(ref))
    got, want = errors_of(out), errors_of(ref)
    assert got.pop(STUCK) == ("decode", "DecodeTimeout", f"timed out after {TIMEOUT_S} s")
    want.pop(STUCK)
    assert got == want


@pytest.mark.parametrize("workers", [1, 0])
def test_a_fifo_in_the_shard_is_a_timeout_error_row_and_the_shard_goes_on(jobs, trees, garbage_run, workers,
                                                                          tmp_path):
    start = time.monotonic()
    code = jobs.run(trees["fifo"], tmp_path, "--num_workers", str(workers), *TIMEOUT)
    assert code == 0, log_of(tmp_path)
    assert time.monotonic() - start < scaled(60)
    assert_rows_equal_but_the_stuck_file(tmp_path, garbage_run)


def test_a_decoder_stuck_in_c_is_killed_and_its_worker_replaced(jobs, trees, garbage_run, tmp_path):
    code = jobs.run(trees["video"], tmp_path, "--num_workers", "1", *TIMEOUT, patches=("stuck",))
    log = log_of(tmp_path)
    assert code == 0, log
    assert STUCK_KILLED in log
    assert_rows_equal_but_the_stuck_file(tmp_path, garbage_run)


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def blocked_on_fifo(pid: int) -> bool:
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return "partner" in wchan or "fifo" in wchan  # wait_for_partner: open() of a FIFO nobody writes to


def stuck_workers(proc, timeout: float = 60) -> list[int]:
    """The job's decode workers, once one of them is blocked opening the FIFO."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = children(proc.pid)
        if any(blocked_on_fifo(p) for p in pids):
            return pids
        time.sleep(0.2)
    raise AssertionError(f"no worker of job {proc.pid} got stuck on the FIFO")


def test_sigterm_ends_a_job_stuck_on_a_fifo_within_seconds_and_leaves_no_worker(jobs, trees, tmp_path):
    proc = jobs.start(trees["fifo"], tmp_path, "--num_workers", "1", "--decode_timeout_s", "600")
    workers = stuck_workers(proc)
    start = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    proc.join(60)
    assert proc.exitcode == 128 + signal.SIGTERM, log_of(tmp_path)
    assert time.monotonic() - start < scaled(10)  # ~1 s: the stuck worker is killed, not waited for
    assert "stopped by signal 15" in log_of(tmp_path)
    assert not [p for p in workers if alive(p)]


def watch_children(proc, timeout: float) -> set[int]:
    """Every child the job had while it ran (polled until it exits, or for `timeout` seconds)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while proc.is_alive() and time.monotonic() < deadline:
        seen.update(children(proc.pid))
        time.sleep(0.1)
    return seen


def test_sigterm_while_a_killed_worker_s_loader_is_stopped_still_ends_the_job_and_every_worker(jobs, trees,
                                                                                                tmp_path):
    # Two workers: one stuck in C on STUCK (the watchdog kills it after 2 s), one stuck collating
    # the next chunk. SIGTERM comes while the job stops that loader: it must finish stopping it.
    proc = jobs.start(trees["video"], tmp_path, "--num_workers", "2", *TIMEOUT,
                      patches=("stuck", "hang_collate", "sigterm_in_abandon"))
    # ~15 s: the kill at 2 s, torch noticing it (up to 5 s), torch's shutdown waiting 2 × 5 s for
    # the hung worker before it is killed. Before the fix the job hung for ever at exit.
    seen = watch_children(proc, scaled(60))
    proc.join(1)
    log = log_of(tmp_path)
    assert proc.exitcode == 128 + signal.SIGTERM, log
    assert STUCK_KILLED in log and "stopped by signal 15" in log
    assert "still alive at the end of the job" not in log  # stopped by the loader, not the last resort
    assert len(seen) >= 2 and not [p for p in seen if alive(p)]


def test_ctrl_c_to_the_job_s_process_group_ends_it_without_a_traceback(jobs, trees, tmp_path):
    proc = jobs.start(trees["fifo"], tmp_path, "--num_workers", "1", "--decode_timeout_s", "600",
                      patches=("own_group",))
    workers = stuck_workers(proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C: the job and its workers
    proc.join(60)
    log = log_of(tmp_path)
    assert proc.exitcode == 128 + signal.SIGINT, log
    assert "stopped by signal 2" in log
    assert "Traceback" not in log
    assert not [p for p in workers if alive(p)]


def _fork_while_waiting(result: str) -> None:
    """In a job-like process: a child forked while the StopRequest waits, as decode workers are, gets
    SIGINT before it could set its own handlers."""
    from embedpipe.runtime.stop import Interrupted, StopRequest

    stop = StopRequest().install()
    with stop.waiting():
        pid = os.fork()
        if pid == 0:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)  # the inherited handler runs here
            except Interrupted:
                os._exit(3)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
    Path(result).write_text(f"{os.waitstatus_to_exitcode(status)} {bool(stop)}")


def test_a_process_forked_while_the_job_waits_does_not_act_on_the_job_s_stop_handler(all_jobs, tmp_path):
    proc = all_jobs.ctx.Process(target=_fork_while_waiting, args=(str(tmp_path / "result"),))
    proc.start()
    proc.join(JOIN_S)
    assert proc.exitcode == 0
    assert (tmp_path / "result").read_text() == "0 False"  # the child went on; the job was not stopped


def test_a_killed_job_takes_its_stuck_worker_with_it_and_leaves_no_lock(jobs, trees, garbage_run, tmp_path):
    proc = jobs.start(trees["fifo"], tmp_path, "--num_workers", "1", "--decode_timeout_s", "600")
    workers = stuck_workers(proc)
    proc.kill()
    proc.join(60)
    deadline = time.monotonic() + scaled(10)
    while [p for p in workers if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if alive(p)], "a decode worker outlived its job"
    assert jobs.run(trees["fifo"], tmp_path, "--num_workers", "1", *TIMEOUT, log="rerun.log") == 0, \
        log_of(tmp_path, "rerun.log")
    assert_rows_equal_but_the_stuck_file(tmp_path, garbage_run)


def _settled_worker(ready) -> None:
    from embedpipe.runtime.decode_guard import settle_worker

    settle_worker()
    ready.set()
    time.sleep(60)


def test_a_decode_worker_has_no_share_in_its_runs_shard_lock(tmp_path):
    # flock is shared by a fork until the child closes its copy: a worker still dying after its run
    # was killed would otherwise refuse the rerun ("being extracted by PID ...").
    import multiprocessing

    from embedpipe.runtime.shard_lock import shard_lock

    ctx = multiprocessing.get_context("fork")  # as torch's DataLoader starts workers on Linux
    ready = ctx.Event()
    with shard_lock(tmp_path / "parts" / "p10", "p10"):
        worker = ctx.Process(target=_settled_worker, args=(ready,))
        worker.start()
        assert ready.wait(30)
    try:
        assert worker.is_alive()
        with shard_lock(tmp_path / "parts" / "p10", "p10"):  # the run ended: the shard is free
            pass
    finally:
        worker.kill()
        worker.join(10)


def test_a_second_run_on_a_shard_being_extracted_says_who_holds_it_and_touches_nothing(jobs, trees, tmp_path):
    first = jobs.start(trees["fifo"], tmp_path, "--num_workers", "1", "--decode_timeout_s", "600")
    stuck_workers(first)
    parts = tmp_path / "parts" / "p10"
    leftover = parts / ".part-000007.parquet.tmp-1"  # what a writer's start would tidy away
    leftover.write_bytes(b"half")
    before = sorted(p.name for p in parts.iterdir())
    try:
        code = jobs.run(trees["fifo"], tmp_path, "--num_workers", "1", *TIMEOUT, log="second.log")
    finally:
        first.kill()
        first.join(60)
    log = log_of(tmp_path, "second.log")
    assert code == 1, log
    assert "Traceback" not in log
    lock = tmp_path / "parts" / "p10.lock"
    assert f"shard p10 is being extracted by PID {first.pid} (lock {lock}); wait for it or stop it" in log
    assert sorted(p.name for p in parts.iterdir()) == before


@pytest.fixture(scope="module")
def clean_run(all_jobs, trees, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean-run")
    assert all_jobs.run(trees[None], out, "--num_workers", "0") == 0, log_of(out)
    return out


def delete_outputs(out: Path) -> None:
    """What Snakemake does to the outputs of a job it saw fail."""
    for name in ("p10.parquet", "p10.errors.parquet"):
        (out / "embeddings" / name).unlink()
    shutil.rmtree(out / "embeddings" / "p10.tokens")


def test_outputs_deleted_after_a_kill_past_the_shard_file_are_restored_without_the_model(jobs, trees, clean_run,
                                                                                         tmp_path):
    proc = jobs.start(trees[None], tmp_path, "--num_workers", "0", patches=("kill",))
    proc.join(JOIN_S)
    assert proc.exitcode == -signal.SIGKILL, log_of(tmp_path)
    assert not list((tmp_path / "parts" / "p10").glob("part-*"))  # the parts were already gone
    delete_outputs(tmp_path)
    rerun = time.time()
    code = jobs.run(trees[None], tmp_path, "--num_workers", "0", patches=("no_model",), log="rerun.log")
    log = log_of(tmp_path, "rerun.log")
    assert code == 0, log
    assert "MODEL LOADED" not in log
    assert "restored its finished outputs" in log and "0 files embedded" in log
    for name in ("p10.parquet", "p10.errors.parquet"):  # not older than the inputs, for Snakemake
        assert (tmp_path / "embeddings" / name).stat().st_mtime >= rerun - 1
    assert_same_shard(tmp_path, clean_run)
    a, b = (pq.read_table(d / "embeddings" / "p10.parquet") for d in (tmp_path, clean_run))
    assert a.replace_schema_metadata(None).drop_columns(["tokens_file"]).equals(
        b.replace_schema_metadata(None).drop_columns(["tokens_file"]))


def test_a_finished_copy_of_another_file_list_is_not_restored(jobs, trees, clean_run, tmp_path):
    assert jobs.run(trees[None], tmp_path, "--num_workers", "0") == 0
    delete_outputs(tmp_path)
    code = jobs.run(trees[None], tmp_path, "--num_workers", "0", "--limit", "3", log="rerun.log")
    log = log_of(tmp_path, "rerun.log")
    assert code == 0, log
    assert "made with another model, preprocessing or file list" in log and "restored" not in log
    keys = pq.read_table(tmp_path / "embeddings" / "p10.parquet").column("key").to_pylist()
    assert keys == scan_files(trees[None], [".mp4"], subdir="p10")[:3]


def finish_and_lose_outputs(jobs: Jobs, tree: Path, out: Path) -> None:
    """A finished run whose outputs Snakemake then deleted: only the finished copy is left."""
    assert jobs.run(tree, out, "--num_workers", "0") == 0, log_of(out)
    delete_outputs(out)
    assert (out / "parts" / "p10.finished" / "finished.json").is_file()


def assert_embedded_again(jobs: Jobs, tree: Path, out: Path, says: str, embedded: int | None = None) -> None:
    """Not restored; `embedded` files embedded (None: all), the others' rows reused from the shard's
    previous version (`parts/p10.previous`, extract/reuse.py), tokens included."""
    code = jobs.run(tree, out, "--num_workers", "0", log="rerun.log")
    log = log_of(out, "rerun.log")
    assert code == 0, log
    keys = scan_files(tree, [".mp4"], subdir="p10")
    embedded = len(keys) if embedded is None else embedded
    assert "restored" not in log and f"{embedded} to embed" in log, log
    if embedded < len(keys):
        assert f"reused {len(keys) - embedded} rows of the previous shard (same model, unchanged files)" in log, log
    assert f"removing {out / 'parts' / 'p10.finished'}: {says}" in log, log
    assert pq.read_table(out / "embeddings" / "p10.parquet").column("key").to_pylist() == keys


def test_a_finished_copy_made_from_another_input_dir_with_the_same_names_is_not_restored(jobs, trees, clean_run,
                                                                                         tmp_path):
    finish_and_lose_outputs(jobs, trees[None], tmp_path / "out")
    fixed = tmp_path / "fixed-input"
    shutil.copytree(trees[None], fixed)  # same names, sizes and modification times: only the folder differs
    assert_embedded_again(jobs, fixed, tmp_path / "out", "made from another input_dir")
    assert "no row of a previous shard reused (made from another input_dir" in log_of(tmp_path / "out", "rerun.log")
    assert_same_shard(tmp_path / "out", clean_run)


@pytest.mark.parametrize("change", ["replaced", "touched"])
def test_a_finished_copy_is_not_restored_once_a_file_changed_under_its_name(jobs, trees, change, tmp_path):
    tree = tmp_path / "input"
    shutil.copytree(trees[None], tree)
    finish_and_lose_outputs(jobs, tree, tmp_path / "out")
    keys = scan_files(tree, [".mp4"], subdir="p10")
    target = tree / keys[1]
    if change == "replaced":  # another video, so another size too
        shutil.copyfile(tree / keys[-1], target)
    else:  # same bytes, a newer modification time (rewritten in place, restored from a backup)
        st = target.stat()
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert_embedded_again(jobs, tree, tmp_path / "out", "made from other input files", embedded=1)


def test_a_finished_copy_missing_its_shard_file_is_removed_and_the_shard_embedded(jobs, trees, clean_run, tmp_path):
    finish_and_lose_outputs(jobs, trees[None], tmp_path)
    (tmp_path / "parts" / "p10.finished" / "p10.parquet").unlink()
    # every row reused from the previous version (its own links to the shard file and tokens)
    assert_embedded_again(jobs, trees[None], tmp_path, "incomplete (1 of its files missing, p10.parquet first)",
                          embedded=0)
    assert_same_shard(tmp_path, clean_run)
    assert (tmp_path / "parts" / "p10.finished" / "p10.parquet").is_file()  # the rerun kept a whole copy


@pytest.mark.workflow
def test_a_successful_run_of_another_target_keeps_the_finished_copies(video_tree, tiny_model, tmp_path):
    """After a late kill Snakemake deems the shard's outputs incomplete; a later successful run of
    another target (here discover) must not drop the copy the next --rerun-incomplete restores from."""
    from support.dataset_runs import link_videos, run_config, videos
    from support.workflow import snakemake

    link_videos(tmp_path / "data" / "p10", videos(video_tree)[:1])
    results = tmp_path / "results" / "r"
    (results / "embeddings").mkdir(parents=True)
    (results / "embeddings" / "p10.parquet").write_bytes(b"outputs of a job killed after it wrote them")
    copy = results / "parts" / "p10.finished"
    copy.mkdir(parents=True)
    (copy / "finished.json").write_text("{}")
    snakemake(tmp_path, "discover", *run_config(tmp_path, tmp_path / "data", tiny_model))
    assert (copy / "finished.json").is_file()


@pytest.fixture(scope="module")
def wrong_files(tmp_path_factory, tiny_model, tiny_ecg) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("wrong-files")
    (root / "notes.txt").write_text("this is not a model\n")
    (root / "empty").mkdir()
    broken = root / "vjepa2-broken-weights"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"\0" * 64)
    return {"text": root / "notes.txt", "folder": root / "empty", "broken": broken,
            "ecgfounder": tiny_ecg / "ecgfounder.pth", "ecg_jepa": tiny_ecg / "ecg_jepa.pt"}


@pytest.mark.parametrize(("family", "given", "says"), [
    ("vjepa2", "text", "(a text file): cannot load the vjepa2 encoder from it: not a folder"),
    ("vjepa2", "folder", "(a folder): cannot load the vjepa2 encoder from it: no config.json in it"),
    ("vjepa2", "broken", "(a folder): cannot load the vjepa2 encoder from it: "),
    ("ecgfounder", "text", "(a text file): cannot load the ecgfounder encoder from it: "),
    ("ecgfounder", "folder", "(a folder): cannot load the ecgfounder encoder from it: not a file"),
    ("ecgfounder", "ecg_jepa", "binary file): cannot load the ecgfounder encoder from it: ValueError: "),
    ("ecg_jepa", "ecgfounder", "binary file): cannot load the ecg_jepa encoder from it: ValueError: "),
])
def test_a_model_path_of_the_wrong_kind_ends_the_job_in_one_line(jobs, trees, wrong_files, family, given, says,
                                                                 tmp_path):
    from embedpipe.encoders import family as family_named

    path = wrong_files[given]
    # The ECG families take no `outputs` (argv's encoder options are V-JEPA 2's): an unknown option is an error.
    options = () if family == "vjepa2" else ("--encoder_options", "{}")
    code = jobs.run(trees[None], tmp_path, "--encoder", family, "--model_path", str(path), "--num_workers", "0",
                    *options)
    log = log_of(tmp_path)
    assert code == 1, log
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1, log
    assert f"encoder.path {path} (" in errors[0] and says in errors[0], errors[0]
    assert errors[0].endswith(f"expected {family_named(family).expects}")
