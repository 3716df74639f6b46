"""Integrity faults after extract: keys that do not match the manifests, null embeddings, a full disk
in merge_all and parquet, unusable results_dir/logs_dir (see docs/reliability.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.integrity import DIM, assert_one_line, check, validate, write_shard
from support.workflow import REPO, fill, run_script, snakemake

from embedpipe.store.footer import META_KEY

PAGE = 4096




def as_dataset_file(root: Path, shard: str, rename: dict[str, str] | None = None,
                    null: tuple[str, ...] = ()) -> None:
    """Rewrite <shard>.parquet as a dataset file keyed by `file_path` (as the MIMIC and DeepEarth
    joins write it), with keys renamed and embeddings set to null as asked."""
    path = root / f"{shard}.parquet"
    table = pq.read_table(path)
    keys = [(rename or {}).get(k, k) for k in table.column("key").to_pylist()]
    embedding = table.column("embedding").combine_chunks()
    mask = pa.array([k in null for k in table.column("key").to_pylist()])
    embedding = pa.FixedSizeListArray.from_arrays(embedding.values, DIM, mask=mask)
    meta = json.loads(table.schema.metadata[META_KEY]) | {"key_column": "file_path"}
    out = pa.table({"file_path": keys, "embedding": embedding}).replace_schema_metadata(
        {META_KEY: json.dumps(meta)})
    pq.write_table(out, path)






def failed(metrics: dict) -> set[str]:
    return {c["name"] for c in metrics["checks"] if not c["passed"]}


def validate_script(root: Path, shards: list[str]) -> subprocess.CompletedProcess:
    return run_script("validate.py", "--shards", *shards, "--manifests", *(root / f"{s}.txt" for s in shards),
                      "--dataset_files", *(root / f"{s}.parquet" for s in shards),
                      "--error_files", *(root / f"{s}.errors.parquet" for s in shards),
                      "--out_dir", root / "validation", "--max_error_fraction", "0.5",
                      "--min_effective_rank", "0", check=False)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    write_shard(tmp_path, "p10", [f"p10/{c}.mp4" for c in "abcdef"], ["p10/broken.mp4"])
    write_shard(tmp_path, "p11", [f"p11/{c}.mp4" for c in "abcd"], ["p11/x.mp4", "p11/y.mp4"], seed=1)
    return tmp_path


def test_keys_equal_to_the_manifests_pass(dataset):
    as_dataset_file(dataset, "p10")
    as_dataset_file(dataset, "p11")  # both shards as the staged rule writes them: one table
    m = validate(dataset, ["p10", "p11"])
    assert m["passed"], m["checks"]
    assert check(m, "keys_match_manifest")["detail"] == "row and error keys equal the manifest's in every shard"
    assert [(s["missing_keys"], s["unexpected_keys"]) for s in m["shards"]] == [(0, 0), (0, 0)]


def test_a_renamed_key_fails_validation_naming_shard_and_keys(dataset):
    as_dataset_file(dataset, "p10", rename={"p10/c.mp4": "p10/BOGUS/c.mp4"})
    as_dataset_file(dataset, "p11")  # both shards as the staged rule writes them: one table
    m = validate(dataset, ["p10", "p11"])
    assert failed(m) == {"keys_match_manifest"}  # the counts still add up: only the keys tell
    assert check(m, "keys_match_manifest")["detail"] == (
        "p10: 1 manifest key(s) with no row or error row (e.g. ['p10/c.mp4']), "
        "1 key(s) not in the manifest (e.g. ['p10/BOGUS/c.mp4'])")
    proc = validate_script(dataset, ["p10", "p11"])  # the rule fails, the report says why
    assert proc.returncode == 1, proc.stderr
    assert "FAIL keys_match_manifest: p10: 1 manifest key(s)" in proc.stderr
    written = json.loads((dataset / "validation" / "failed" / "metrics.json").read_text())
    assert not written["passed"] and not check(written, "keys_match_manifest")["passed"]
    assert not (dataset / "validation" / "metrics.json").exists()


def test_a_dropped_error_row_and_a_bogus_one_fail_validation(dataset):
    errors = pq.read_table(dataset / "p11.errors.parquet")
    keys = errors.column("key").to_pylist()
    swapped = errors.set_column(0, "key", pa.array(["p11/x.mp4", "p99/BOGUS.mp4"]))
    assert keys == ["p11/x.mp4", "p11/y.mp4"]
    pq.write_table(swapped.replace_schema_metadata(errors.schema.metadata), dataset / "p11.errors.parquet")
    m = validate(dataset, ["p10", "p11"])
    assert failed(m) == {"keys_match_manifest"}
    assert check(m, "counts_reconcile")["passed"]
    assert check(m, "keys_match_manifest")["detail"] == (
        "p11: 1 manifest key(s) with no row or error row (e.g. ['p11/y.mp4']), "
        "1 key(s) not in the manifest (e.g. ['p99/BOGUS.mp4'])")
    assert [(s["missing_keys"], s["unexpected_keys"]) for s in m["shards"]] == [(0, 0), (1, 1)]


def test_a_null_embedding_is_a_failed_check_naming_shard_and_key_not_a_crash(dataset):
    as_dataset_file(dataset, "p10", null=("p10/b.mp4", "p10/e.mp4"))
    as_dataset_file(dataset, "p11")  # both shards as the staged rule writes them: one table
    m = validate(dataset, ["p10", "p11"])
    assert failed(m) == {"no_null_embeddings"}
    assert check(m, "no_null_embeddings")["detail"] == "2 rows with a null embedding; p10: ['p10/b.mp4', 'p10/e.mp4']"
    assert m["totals"]["rows"] == 10 and m["embedding"]["finite_rows"] == 8  # the others are still judged
    proc = validate_script(dataset, ["p10", "p11"])
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "FAIL no_null_embeddings: 2 rows with a null embedding; p10: ['p10/b.mp4', 'p10/e.mp4']" in proc.stderr


def dry_run(work: Path, *config: str) -> str:
    proc = snakemake(work, "-n", "--configfile", str(REPO / "config" / "demo.yaml"), "--config", *config,
                     check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out and "rule " not in proc.stdout, out  # stopped at DAG build, before any job
    return out


@pytest.mark.workflow
@pytest.mark.parametrize("key", ["results_dir", "logs_dir"])
def test_results_or_logs_dir_that_is_a_file_is_named_at_dag_build(tmp_path, key):
    (tmp_path / "taken").write_text("not a folder\n")
    out = dry_run(tmp_path, f"{key}=taken")
    lines = [line for line in out.splitlines() if line.startswith(f"config key {key!r}")]
    assert lines == [f"config key {key!r}: '{tmp_path}/taken' is a file, not a folder ('taken/demo' would be made "
                     f"inside it); set {key} to a folder you can write (it is created if missing)"], out


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody here can write: a read-only tmpfs as root (root ignores file modes), else mode 0o555."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
        yield folder
        subprocess.run(["umount", "-l", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


@pytest.mark.workflow
def test_unwritable_logs_dir_is_named_at_dag_build(tmp_path, read_only_dir):
    out = dry_run(tmp_path, "logs_dir=ro/logs")
    assert f"config key 'logs_dir': '{read_only_dir}' is not writable ('ro/logs/demo' would be made inside it); " \
           "set logs_dir to a folder you can write" in out, out




def merge_args(shards: Path, out: Path) -> list[str | Path]:
    return ["--shards", shards / "p10.parquet", shards / "p11.parquet", "--pt", out / "m.pt", "--npy", out / "m.npy",
            "--keys", out / "m.keys.txt"]


def pages(path: Path) -> int:
    return -(-path.stat().st_size // PAGE)


@pytest.mark.parametrize("where", ["matrix", "key pickle"])
def test_merge_all_on_a_full_disk_logs_one_line_and_leaves_no_output(tmp_path, small_disk, where):
    # 2048 rows of 256 float32 a shard: the .npy and the .pt are 4 MiB each, the key index 200 kB
    for i, shard in enumerate(("p10", "p11")):
        write_shard(tmp_path, shard, [f"{shard}/{'x' * 40}/{j}.mp4" for j in range(2048)], [], dim=256, seed=i)
    reference = tmp_path / "reference"
    assert run_script("merge_all.py", *merge_args(tmp_path, reference)).returncode == 0
    written = pages(reference / "m.npy") + pages(reference / "m.pt") + pages(reference / "m.keys.txt")
    pickle = (reference / "m.pt").stat().st_size - (reference / "m.npy").stat().st_size  # ~ the .pt's key pickle
    # "matrix": 5 MiB free, so the .npy fails mid-write (the second shard's rows); "key pickle": room
    # for the rows and the key index (written as the rows are) but not for the .pt's pickle, written last
    leave = 5 << 20 if where == "matrix" else written * PAGE - pickle // 2
    out = small_disk / "run"
    filler = fill(small_disk, leave=leave)
    proc = run_script("merge_all.py", *merge_args(tmp_path, out), check=False)
    name = r"m\.npy" if where == "matrix" else r"m\.pt"
    assert_one_line(proc, rf"could not write {re.escape(str(out))}/{name}: No space left on device "
                          r"\([\d.]+ MiB free there\); nothing was left under that name\. The shard files are "
                          r"untouched; free space and rerun: merge_all starts again from them\.$")
    assert sorted(p.name for p in out.iterdir()) == []  # no final name and no temporary file
    filler.unlink()
    assert run_script("merge_all.py", *merge_args(tmp_path, out), check=False).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["m.keys.txt", "m.npy", "m.pt"]
    for name in ("m.npy", "m.keys.txt"):
        assert (out / name).read_bytes() == (reference / name).read_bytes()
    with zipfile.ZipFile(out / "m.pt") as got, zipfile.ZipFile(reference / "m.pt") as want:  # its dates differ
        assert [(i.filename, got.read(i)) for i in got.infolist()] == [(i.filename, want.read(i))
                                                                       for i in want.infolist()]


def test_parquet_on_a_full_disk_logs_one_line_and_leaves_no_output(tmp_path, small_disk):
    write_shard(tmp_path, "p10", [f"p10/{i}.mp4" for i in range(4096)], ["p10/broken.mp4"], dim=256)
    dest = small_disk / "parquet" / "train-00000-of-00001.parquet"
    args = ["--embeddings", tmp_path / "p10.parquet", "--output", dest, "--shard", "p10"]
    filler = fill(small_disk, leave=1 << 20)  # the file is about 4 MiB: random floats do not compress
    proc = run_script("staged.py", *args, check=False)
    assert_one_line(proc, rf"could not write {re.escape(str(dest))}: No space left on device "
                          r"\([\d.]+ MiB free there\); nothing was left under that name\. "
                          r"The shard's embeddings \S+/p10\.parquet are untouched; free space and rerun\.$")
    assert sorted(p.name for p in dest.parent.iterdir()) == []
    filler.unlink()
    assert run_script("staged.py", *args, check=False).returncode == 0
    assert pq.read_metadata(dest).num_rows == 4096
