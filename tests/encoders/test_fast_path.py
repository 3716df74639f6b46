"""The GPU fast path's pieces, checked on the CPU: batched device preprocessing, OOM splitting, the writer thread."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from embedpipe.encoders import build_encoder
from embedpipe.encoders.batch import Batch
from embedpipe.encoders.pending import PendingOutput
from embedpipe.encoders.roles import Encoder, Model, OutputSpec, Prepared, Reader
from embedpipe.encoders.vjepa2 import transforms
from embedpipe.extract.loop import BatchAssembler, Collated, ModelFailure, encode_or_split, loader_chunks, plan_blocks
from embedpipe.extract.sink import RowSink
from embedpipe.extract.writer import ShardWriter
from embedpipe.readers.video import read_video_frames

CPU = torch.device("cpu")


def test_clip_batch_preprocessing_equals_per_clip_path(video_tree, tiny_model):
    paths = sorted(video_tree.rglob("*.mp4"))[:6]
    clips = []
    for p in paths:
        try:
            clips.append(torch.from_numpy(read_video_frames(str(p), 16)))
        except Exception:
            continue
    assert len({tuple(c.shape) for c in clips}) > 1, "the fixture must mix clip sizes"
    model = build_encoder("vjepa2", {"model": "t", "path": str(tiny_model), "device": "cpu"}).model
    model.preprocess_on_device, model.device = True, CPU
    batched = Batch(clips).pin_memory() if torch.cuda.is_available() else Batch(clips)
    got = model.model_input(batched)
    want = torch.stack([transforms.preprocess_clip(c, 64) for c in clips])
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_fast_path_normalises_with_the_official_arithmetic():
    # one helper for both transforms: /255, - mean, / std in float32, so only the resize differs
    frames = torch.randint(0, 256, (2, 4, 40, 50, 3), dtype=torch.uint8)
    got = transforms.preprocess_clips(frames, 32)
    x = frames.reshape(8, 40, 50, 3).permute(0, 3, 1, 2).float()
    h, w = transforms.resized_hw(40, 50, transforms.short_side_for(32))
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    top, left = round((h - 32) / 2), round((w - 32) / 2)
    x = x[:, :, top:top + 32, left:left + 32] / 255.0
    mean = torch.tensor(transforms.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(transforms.IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(got.reshape(8, 3, 32, 32), (x - mean) / std, rtol=0, atol=0)


class ValueReader(Reader):
    def prepare(self, path):
        return Prepared(torch.tensor(float(path)))


class OomAboveTwo(Model):
    """Raises CUDA's OutOfMemoryError for batches above two items; the embedding is the item's value."""

    batch_size = 8

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def load(self, device):
        pass

    def encode_async(self, batch):
        self.sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return PendingOutput({"embedding": batch.stacked(CPU).numpy().astype(np.float32).reshape(-1, 1)})


def bundle(model: Model) -> Encoder:
    return Encoder("oom", ValueReader(), model, OutputSpec([pa.field("embedding", pa.list_(pa.float32(), 1))], 1),
                   describe=lambda: {"encoder": "oom"})


def values(n: int) -> Batch:
    return Batch(list(torch.arange(n, dtype=torch.float32)))


def test_out_of_memory_halves_the_batch_and_loses_nothing(tmp_path):
    enc = bundle(OomAboveTwo())
    writer = ShardWriter(tmp_path / "parts", enc.output_fields(), "fp", save_every=100)
    sink = RowSink(writer)
    keys = [f"k{i}" for i in range(7)]
    encode_or_split(enc.model, keys, values(7), sink)
    sink.close()
    writer.flush()
    assert enc.model.sizes[0] == 7 and max(s for s in enc.model.sizes if s <= 2) == 2
    out = tmp_path / "out.parquet"
    rows, errors = writer.finalize(keys, out, tmp_path / "err.parquet", {})
    assert (rows, errors) == (7, 0)
    table = pa.parquet.read_table(out)
    got = dict(zip(table.column("key").to_pylist(), table.column("embedding").to_pylist(), strict=True))
    assert got == {f"k{i}": [float(i)] for i in range(7)}


def test_row_sink_raises_a_writer_failure_in_the_producer(tmp_path):
    class Broken(ShardWriter):
        def add_rows(self, keys, arrays):
            raise OSError(28, "No space left on device")

    writer = Broken(tmp_path / "parts", [pa.field("embedding", pa.list_(pa.float32(), 1))], "fp")
    sink = RowSink(writer, depth=1)
    with pytest.raises(OSError, match="No space left"):
        for i in range(10):
            sink.rows([f"k{i}"], PendingOutput({"embedding": np.zeros((1, 1), np.float32)}))
        sink.close()


def test_batches_are_blocks_of_the_whole_shard_whatever_is_already_done():
    ordered = [f"k{i:02d}" for i in range(11)]
    assert plan_blocks(ordered, set(), 4) == [ordered[0:4], ordered[4:8], ordered[8:11]]
    # a resumed shard: done keys leave holes, never shift a file into another block's batch
    done = {"k00", "k01", "k02", "k03", "k05"}
    blocks = plan_blocks(ordered, done, 4)
    assert blocks == [["k04", "k06", "k07"], ordered[8:11]]
    chunks = loader_chunks([len(b) for b in blocks], 2)
    assert chunks == [[0, 1], [2], [3, 4], [5]]  # a loader chunk never spans two blocks

    asm = BatchAssembler([len(b) for b in blocks])
    keys = [k for b in blocks for k in b]
    out, ends = [], []
    for chunk in chunks:
        good = [keys[i] for i in chunk if keys[i] != "k09"]  # k09 failed to decode
        errors = [(keys[i], "E", "m") for i in chunk if keys[i] == "k09"]
        if got := asm.add(Collated(good, Batch([torch.tensor([float(keys.index(k))]) for k in good]), errors)):
            out.append(got)
        ends.append(asm.at_block_end)
    assert ends == [False, True, False, True]
    assert [k for k, _ in out] == [["k04", "k06", "k07"], ["k08", "k10"]]
    assert [b.stacked(CPU).flatten().tolist() for _, b in out] == [[0.0, 1.0, 2.0], [3.0, 5.0]]
    assert asm.take() is None


def test_compiled_short_batch_is_padded_to_the_static_shape_without_changing_rows(tiny_model):
    encoder = build_encoder("vjepa2", {"model": "tiny", "path": str(tiny_model), "batch_size": 8, "device": "cpu"})
    encoder.model.ensure_loaded(torch.device("cpu"))
    shapes: list[tuple[int, ...]] = []
    forward = encoder.model._forward

    def recording_forward(**kw):
        shapes.append(tuple(kw["pixel_values_videos"].shape))
        return forward(**kw)

    clips = torch.randn(3, 16, 3, encoder.model.crop, encoder.model.crop)
    plain = encoder.model.encode(Batch(list(clips)))["embedding"]
    encoder.model._forward, encoder.model.compile = recording_forward, True  # the padding path, without inductor
    padded = encoder.model.encode(Batch(list(clips)))["embedding"]
    assert shapes == [(8, 16, 3, encoder.model.crop, encoder.model.crop)]
    assert padded.shape == (3, encoder.output.width)
    np.testing.assert_allclose(padded, plain, rtol=1e-5, atol=1e-6)


def test_device_preprocessing_output_is_contiguous():
    # a compiled encoder guards on strides: the batch must look like the warm-up batch
    frames = torch.randint(0, 256, (2, 4, 40, 50, 3), dtype=torch.uint8)
    assert transforms.preprocess_clips(frames, 32).is_contiguous()


class FailsOn(OomAboveTwo):
    """Raises ValueError for any batch holding one of `bad` (all when `bad` is None): a model bug or
    a file the model cannot take."""

    def __init__(self, bad: set[float] | None) -> None:
        super().__init__()
        self.bad = bad

    def encode_async(self, batch):
        self.sizes.append(len(batch))
        if self.bad is None or self.bad & set(batch.stacked(CPU).tolist()):
            raise ValueError("shapes cannot be multiplied")
        return PendingOutput({"embedding": batch.stacked(CPU).numpy().astype(np.float32).reshape(-1, 1)})


def encode_block(tmp_path, model: Model, n: int, encoded_before: int = 0):
    enc = bundle(model)
    writer = ShardWriter(tmp_path / "parts", enc.output_fields(), "fp", save_every=100)
    sink = RowSink(writer)
    sink.encoded = encoded_before
    keys = [f"k{i}" for i in range(n)]
    try:
        encode_or_split(enc.model, keys, values(n), sink)
    finally:
        sink.close()
        writer.flush()
    return writer.finalize(keys, tmp_path / "out.parquet", tmp_path / "err.parquet", {})


def test_an_error_on_every_file_of_a_batch_stops_the_job_instead_of_making_error_rows(tmp_path):
    with pytest.raises(ModelFailure, match="the model failed on all 4 files of a batch .*ValueError: shapes"):
        encode_block(tmp_path, FailsOn(None), 4)
    assert not list((tmp_path / "parts").glob("part-*"))  # no error row was written for them


def test_the_file_the_model_fails_on_is_found_by_halves_and_is_the_only_error_row(tmp_path):
    enc = FailsOn({2.0})
    assert encode_block(tmp_path, enc, 8) == (7, 1)
    errors = pa.parquet.read_table(tmp_path / "err.parquet").to_pylist()
    assert [(e["key"], e["stage"], e["error_type"]) for e in errors] == [("k2", "encode", "ValueError")]


def test_a_lone_failing_file_is_an_error_row_only_once_the_model_has_worked(tmp_path):
    with pytest.raises(ModelFailure):
        encode_block(tmp_path / "first", FailsOn(None), 1)
    assert encode_block(tmp_path / "later", FailsOn(None), 1, encoded_before=5) == (0, 1)


def test_facts_of_a_file_that_failed_at_encode_are_not_kept(tmp_path):
    writer = ShardWriter(tmp_path / "parts", bundle(OomAboveTwo()).output_fields(), "fp", save_every=100)
    sink = RowSink(writer, ["frames_decoded"])
    sink.add_facts(["a", "b"], [{"frames_decoded": 1}, {"frames_decoded": 2}])
    sink.error("b", "encode", "ValueError", "x")
    sink.close()
    assert set(sink._facts) == {"a"}  # b's would stay for the whole shard: 100,000 files, a slow leak
