"""Assembly within a memory budget: the same rows in the same order whatever the budget, and the value
bytes it holds (counted as it gathers them, not timed) under the budget."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedpipe.extract.assemble import assemble_shard
from embedpipe.extract.part_rows import Held
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
    for budget in (1 << 20, 64):
        assemble_shard(w.part_paths(), order, [field], tmp_path / "s.parquet", tmp_path / "e.parquet", {},
                       memory_bytes=budget)
        out = pq.read_table(tmp_path / "s.parquet")
        assert out.column("key").to_pylist() == order
        assert out.column("embedding").to_pylist() == [vectors[int(k[1])] for k in order]
