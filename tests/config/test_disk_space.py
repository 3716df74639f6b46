"""Room under results_dir for the rows the manifests list, counted before any job."""

from __future__ import annotations

from embedpipe.config.disk_space import DiskNeed, disk_problem, free_bytes, rows_to_write


def test_rows_are_the_manifest_lines_of_shards_not_yet_embedded(tmp_path):
    for shard, n in (("p10", 3), ("p11", 5)):
        (tmp_path / f"{shard}.txt").write_text("".join(f"{shard}/{i}.mp4\n" for i in range(n)))
    manifests = {s: str(tmp_path / f"{s}.txt") for s in ("p10", "p11")}
    assert rows_to_write(manifests, lambda shard: False) == 8
    assert rows_to_write(manifests, lambda shard: shard == "p11") == 3
    assert rows_to_write(manifests | {"p12": str(tmp_path / "none.txt")}, lambda shard: False) is None


def test_too_little_room_stops_naming_the_need(tmp_path):
    need = DiskNeed(rows=1_000_000, width=1024, copies=2)
    assert need.bytes == 8_192_000_000
    reason = disk_problem(need, str(tmp_path / "results"), free=lambda path: 10**9)
    assert reason is not None and "1.0 GB free" in reason and "8.2 GB" in reason and "1,000,000 rows" in reason
    assert disk_problem(need, str(tmp_path), free=lambda path: 10**10) is None
    assert disk_problem(need, str(tmp_path), free=lambda path: None) is None
    assert free_bytes(str(tmp_path / "not" / "yet")) is not None  # the nearest folder that exists
