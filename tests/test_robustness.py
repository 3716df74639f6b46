"""Files that hang, two runs on one shard, outputs lost after a finished run, a model path of the wrong
kind: tried for real on the extract script (see docs/reliability.md)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import faults
import pyarrow.parquet as pq
import pytest
from test_faults import assert_same_shard, ipc_bytes, shard_rows

from embedpipe.discover import scan_files

VIDEOS = 5
STUCK = "p10/p10000000/s0/stuck.mp4"  # sorts first: the first block's first file
TIMEOUT = ("--decode_timeout_s", "1")
JOIN_S = 120  # a run here takes seconds; one that hangs fails the test rather than the suite


def argv(tree: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", "tiny", "--model_path", str(model), "--input_dir", str(tree), "--shard", "p10",
            "--output", str(out / "embeddings" / "p10.parquet"), "--device", "cpu", "--batch_size", "2",
            "--save_every", "2", "--encoder_options", json.dumps({"outputs": ["mean", "tokens"]}), *extra]


def _block_alarm_and_sleep() -> None:
    """A decoder stuck in C: SIGALRM blocked (so the soft deadline cannot act), never returning."""
    from embedpipe.encoders.vjepa2 import VJEPA2Encoder

    real = VJEPA2Encoder.prepare

    def prepare(self, path: str):
        if path.endswith(STUCK):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(3600)
        return real(self, path)

    VJEPA2Encoder.prepare = prepare


def _model_must_not_load() -> None:
    from embedpipe.encoders.vjepa2 import VJEPA2Encoder

    def load(self, device):
        raise AssertionError("MODEL LOADED")

    VJEPA2Encoder.load = load


def _kill_after_parts_removed() -> None:
    """SIGKILL right after the shard is complete and its parts are gone: the job has not exited yet,
    so Snakemake sees a failure and deletes the outputs."""
    from embedpipe.writer import ShardWriter

    real = ShardWriter.remove_parts

    def remove_parts(self):
        real(self)
        os.kill(os.getpid(), signal.SIGKILL)

    ShardWriter.remove_parts = remove_parts


PATCHES = {"stuck": _block_alarm_and_sleep, "no_model": _model_must_not_load, "kill": _kill_after_parts_removed}


def run_patched(args: list[str], log_path: str, patches: tuple[str, ...]) -> None:
    """A forked run of the script (tests/faults.py) with some of PATCHES applied first."""
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
    assert got.pop(STUCK) == ("decode", "DecodeTimeout", "timed out after 1 s")
    want.pop(STUCK)
    assert got == want


@pytest.mark.parametrize("workers", [1, 0])
def test_a_fifo_in_the_shard_is_a_timeout_error_row_and_the_shard_goes_on(jobs, trees, garbage_run, workers,
                                                                          tmp_path):
    start = time.monotonic()
    code = jobs.run(trees["fifo"], tmp_path, "--num_workers", str(workers), *TIMEOUT)
    assert code == 0, log_of(tmp_path)
    assert time.monotonic() - start < 60
    assert_rows_equal_but_the_stuck_file(tmp_path, garbage_run)


def test_a_decoder_stuck_in_c_is_killed_and_its_worker_replaced(jobs, trees, garbage_run, tmp_path):
    code = jobs.run(trees["video"], tmp_path, "--num_workers", "1", *TIMEOUT, patches=("stuck",))
    log = log_of(tmp_path)
    assert code == 0, log
    assert f"spent over 2 s on {STUCK}: killed" in log
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
    assert time.monotonic() - start < 10  # ~1 s: the stuck worker is killed, not waited for
    assert "stopped by signal 15" in log_of(tmp_path)
    assert not [p for p in workers if alive(p)]


def test_a_killed_job_takes_its_stuck_worker_with_it_and_leaves_no_lock(jobs, trees, garbage_run, tmp_path):
    proc = jobs.start(trees["fifo"], tmp_path, "--num_workers", "1", "--decode_timeout_s", "600")
    workers = stuck_workers(proc)
    proc.kill()
    proc.join(60)
    deadline = time.monotonic() + 10
    while [p for p in workers if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if alive(p)], "a decode worker outlived its job"
    assert jobs.run(trees["fifo"], tmp_path, "--num_workers", "1", *TIMEOUT, log="rerun.log") == 0, \
        log_of(tmp_path, "rerun.log")
    assert_rows_equal_but_the_stuck_file(tmp_path, garbage_run)


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
    from embedpipe.model_files import EXPECTED

    path = wrong_files[given]
    code = jobs.run(trees[None], tmp_path, "--encoder", family, "--model_path", str(path), "--num_workers", "0")
    log = log_of(tmp_path)
    assert code == 1, log
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1, log
    assert f"encoder.path {path} (" in errors[0] and says in errors[0], errors[0]
    assert errors[0].endswith(f"expected {EXPECTED[family]}")
