"""Assembly within a memory budget: the same rows in the same order whatever the budget and whatever
order the parts hold them in, the value bytes it holds (counted as it gathers them, not timed) under
the budget, and the parts' row groups read once each when they are shuffled (counted, not timed)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedpipe.extract import assemble
from embedpipe.extract.assemble import assemble_shard
from embedpipe.extract.part_rows import Held
from embedpipe.extract.spill import SPILL_NAME
from embedpipe.extract.writer import ShardWriter

FIELDS = [pa.field("embedding", pa.list_(pa.float32(), 16)),
          pa.field("tokens", pa.list_(pa.list_(pa.float16(), 4), 2)),
          pa.field("decoder", pa.string()),  # a reader's fact: gathered as Arrow pieces, not numpy rows
          pa.field("duration_s", pa.float64())]


def write_parts(folder, rows: int, order: np.ndarray, save_every: int) -> list[str]:
    keys = [f"p10/f{i:05d}.wav" for i in range(rows)]
    w = ShardWriter(folder, FIELDS, "fp", save_every=save_every)
    for i in order:
        if i % 11 == 3:
            w.add_error(keys[i], "decode", "OSError", f"bad {i}")
        else:
            w.add_rows([keys[i]], {"embedding": np.arange(16, dtype=np.float32).reshape(1, 16) + i,
                                   "tokens": np.full((1, 2, 4), i % 500, np.float16),
                                   "decoder": np.array([None if i % 7 == 0 else f"pyav{i % 3}"], dtype=object),
                                   "duration_s": np.array([i / 10])})
        w.maybe_flush()
    w.flush()
    return keys


@pytest.mark.parametrize("order", ["manifest", "shuffled"])
def test_a_tiny_budget_writes_the_same_rows_in_the_same_order_and_holds_less_than_it(tmp_path, order):
    rows = 600
    embedded = np.random.default_rng(3).permutation(rows) if order == "shuffled" else np.arange(rows)
    keys = write_parts(tmp_path / "parts", rows, embedded, save_every=70)
    parts = sorted((tmp_path / "parts").glob("part-*.parquet"))
    outputs = {}
    for budget in (64 << 20, 4096):
        held = Held()
        out = tmp_path / str(budget)
        out.mkdir()
        n, e = assemble_shard(parts, keys, FIELDS, out / "s.parquet", out / "e.parquet", {"run": "x"},
                              memory_bytes=budget, held=held)
        assert (n, e) == (rows - 55, 55)
        assert 0 < held.peak <= budget, f"held {held.peak} bytes with a budget of {budget}"
        assert held.now == 0
        outputs[budget] = (pq.read_table(out / "s.parquet"), pq.read_table(out / "e.parquet"),
                           pq.ParquetFile(out / "s.parquet").num_row_groups)
    (big, big_errors, big_groups), (tiny, tiny_errors, tiny_groups) = outputs[64 << 20], outputs[4096]
    assert tiny.equals(big) and tiny_errors.equals(big_errors)
    assert (big_groups, tiny_groups > 20) == (1, True)  # the row groups written follow the budget
    good = [i for i in range(rows) if i % 11 != 3]
    assert tiny.column("key").to_pylist() == [keys[i] for i in good]
    assert np.array_equal(np.stack(tiny.column("embedding").to_numpy(zero_copy_only=False))[:, 5],
                          np.array(good, np.float32) + 5)
    assert tiny.column("tokens").to_pylist()[-1] == [[float(good[-1] % 500)] * 4] * 2
    assert tiny.column("decoder").to_pylist()[:3] == [None, "pyav1", "pyav2"]
    assert tiny.column("duration_s").to_pylist() == [i / 10 for i in good]
    assert tiny.schema.field("tokens").type == FIELDS[1].type
    assert tiny_errors.column("key").to_pylist() == [keys[i] for i in range(rows) if i % 11 == 3]


def test_the_held_bytes_do_not_grow_with_the_shard(tmp_path):
    peaks = []
    for rows in (300, 1200):
        keys = write_parts(tmp_path / f"parts{rows}", rows, np.random.default_rng(1).permutation(rows), 50)
        held = Held()
        assemble_shard(sorted((tmp_path / f"parts{rows}").glob("part-*.parquet")), keys, FIELDS,
                       tmp_path / f"s{rows}.parquet", tmp_path / f"e{rows}.parquet", {}, memory_bytes=8192,
                       held=held)
        peaks.append(held.peak)
    assert peaks[1] <= 8192 and peaks[1] < 1.5 * peaks[0]


def test_a_missing_key_is_named_and_an_empty_shard_is_written(tmp_path):
    keys = write_parts(tmp_path / "parts", 5, np.arange(5), save_every=2)
    parts = sorted((tmp_path / "parts").glob("part-*.parquet"))
    with pytest.raises(RuntimeError, match="1 manifest file"):
        assemble_shard(parts, [*keys, "p10/absent.wav"], FIELDS, tmp_path / "s.parquet", tmp_path / "e.parquet", {})
    assert assemble_shard([], [], FIELDS, tmp_path / "s.parquet", tmp_path / "e.parquet", {}) == (0, 0)
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 0


def test_a_null_inside_a_vector_and_a_null_vector_are_kept(tmp_path):
    # Not what the job writes (its vectors come from numpy), but a part may hold them: the rows
    # gathered into numpy and the ones gathered as Arrow pieces are put together in order.
    field = pa.field("embedding", pa.list_(pa.float32(), 2))
    w = ShardWriter(tmp_path / "parts", [field], "fp")
    vectors = [[0.0, 1.0], [2.0, None], None, [6.0, 7.0], [8.0, 9.0]]
    keys = [f"k{i}" for i in range(5)]
    table = pa.table({"key": keys, "embedding": pa.array(vectors, field.type),
                      **{n: pa.nulls(5, pa.string()) for n in ("stage", "error_type", "message")}},
                     schema=w.part_schema)
    pq.write_table(table, tmp_path / "parts" / "part-000000.parquet", row_group_size=2)
    order = ["k3", "k1", "k4", "k0", "k2"]
    for budget, spill in ((1 << 20, None), (64, False), (64, True), (1 << 20, True)):
        assemble_shard(w.part_paths(), order, [field], tmp_path / "s.parquet", tmp_path / "e.parquet", {},
                       memory_bytes=budget, spill=spill)
        out = pq.read_table(tmp_path / "s.parquet")
        assert out.column("key").to_pylist() == order
        assert out.column("embedding").to_pylist() == [vectors[int(k[1])] for k in order]


def row_groups(parts) -> int:
    return sum(pq.ParquetFile(p).num_row_groups for p in parts)


@pytest.mark.parametrize("fanout", [None, 256])  # the budget's (2 files open: cut in levels), or one level
def test_shuffled_parts_are_read_once_into_the_rows_of_manifest_order(tmp_path, monkeypatch, fanout):
    if fanout:
        monkeypatch.setattr(assemble, "fanout_for", lambda batch_bytes: fanout)
    rows = 600
    shuffled = write_parts(tmp_path / "shuffled", rows, np.random.default_rng(5).permutation(rows), 70)
    keys = write_parts(tmp_path / "manifest", rows, np.arange(rows), 70)
    assert shuffled == keys

    def run(folder: str, budget: int, spill: bool | None = None) -> tuple[pa.Table, pa.Table, Held]:
        parts, out, held = sorted((tmp_path / folder).glob("part-*.parquet")), tmp_path / "out", Held()
        out.mkdir(exist_ok=True)
        assert assemble_shard(parts, keys, FIELDS, out / "s.parquet", out / "e.parquet", {"run": "x"},
                              memory_bytes=budget, held=held, spill=spill) == (rows - 55, 55)
        assert 0 < held.peak <= budget and held.now == 0
        assert not list((tmp_path / folder).glob(f"{SPILL_NAME}*")), "the spill outlived the assembly"
        return pq.read_table(out / "s.parquet"), pq.read_table(out / "e.parquet"), held

    reference, reference_errors, _ = run("manifest", 64 << 20)
    groups = row_groups(sorted((tmp_path / "shuffled").glob("part-*.parquet")))
    windows = pq.ParquetFile(tmp_path / "out" / "s.parquet").num_row_groups  # after the last run: 4096's
    for folder, budget, spill in (("shuffled", 4096, None), ("shuffled", 64 << 20, True),
                                  ("shuffled", 4096, False), ("manifest", 4096, None), ("manifest", 4096, True)):
        table, errors, held = run(folder, budget, spill)
        assert table.equals(reference) and errors.equals(reference_errors), (folder, budget, spill)
        assert table.schema.equals(reference.schema, check_metadata=True)
        windows = pq.ParquetFile(tmp_path / "out" / "s.parquet").num_row_groups
        if folder == "shuffled" and budget == 4096 and spill is None:
            assert windows > 20 and held.reads <= groups, f"{held.reads} row groups streamed, {groups} in the parts"
        if folder == "shuffled" and spill is False:  # straight from the parts: every group each window
            assert held.reads > 5 * groups
        if folder == "manifest" and spill is None:  # no spill needed: about one group a window
            assert held.reads <= groups + windows


def test_no_spill_is_left_after_a_failure_midway_or_by_a_killed_run(tmp_path, monkeypatch):
    rows = 300
    keys = write_parts(tmp_path / "parts", rows, np.random.default_rng(2).permutation(rows), 40)
    parts = sorted((tmp_path / "parts").glob("part-*.parquet"))
    spilled, written = [], []
    write = assemble.write_parquet

    def failing(table, *args, **kwargs):
        spilled.append(sorted(p.name for d in (tmp_path / "parts").glob(f"{SPILL_NAME}*") for p in d.iterdir()))
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        written.append(len(table))
        return write(table, *args, **kwargs)

    monkeypatch.setattr(assemble, "write_parquet", failing)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="could not write"):
        assemble_shard(parts, keys, FIELDS, out / "s.parquet", out / "e.parquet", {}, memory_bytes=4096)
    assert spilled[0] and len(written) == 3, "the rows were not spilled"
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [p.name for p in parts]
    assert sorted(p.name for p in out.iterdir()) == ["e.parquet"]  # no shard file, no temporary one
    monkeypatch.setattr(assemble, "write_parquet", write)

    # A killed assembly's spill (files and all) goes at the next start, before any other is made.
    leftover = tmp_path / "parts" / f"{SPILL_NAME}.tmp-999999"
    leftover.mkdir()
    (leftover / "000003.arrow").write_bytes(b"x" * 100)
    ShardWriter(tmp_path / "parts", FIELDS, "fp", save_every=40)
    assert not leftover.exists()
    leftover.mkdir()
    (leftover / "000003.arrow").write_bytes(b"x" * 100)
    held = Held()
    assemble_shard(parts, keys, FIELDS, out / "s.parquet", out / "e.parquet", {}, memory_bytes=4096, held=held)
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [p.name for p in parts]
    assert pq.read_table(out / "s.parquet").num_rows == rows - len([i for i in range(rows) if i % 11 == 3])
    assert held.reads <= row_groups(parts) and held.peak <= 4096
