"""Encoder families as packages: each owns its options (unknown ones are errors naming them), its
defaults, start-up checks, validation width and exports; the registry is one line per family."""

from __future__ import annotations

import signal

import pytest
from support.workflow import REPO, run_script, snakemake

from embedpipe.encoders import FAMILIES, OptionError, all_exports, build_encoder, family
from embedpipe.store.file_identity import IDENTITY_COLUMNS


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_registered_family_is_a_package_with_its_own_schema(name):
    fam = family(name)
    assert fam.name == name
    assert fam.schema_file.parent == REPO / "src" / "embedpipe" / "encoders" / name
    assert fam.schema["properties"]["name"] == {"const": name}
    assert fam.options({})["name"] == name  # every option has a default or may be left out


def test_unknown_options_are_errors_that_name_them(tiny_ecg):
    """`encoder.compile` used to be ignored silently by every family but V-JEPA 2."""
    with pytest.raises(OptionError, match=r"encoder\.compile: is not an option of ecgfounder"):
        build_encoder("ecgfounder", {"path": str(tiny_ecg / "ecgfounder.pth"), "compile": True})
    with pytest.raises(OptionError) as err:
        family("metis").options({"stats_path": "s.pt", "num_frames": 16, "media": "video"})
    assert err.value.key == "encoder.media" and "encoder.media, encoder.num_frames are not options" in str(err.value)
    with pytest.raises(OptionError, match="unknown encoder 'clip'"):
        family("clip")


def test_defaults_are_each_familys_own():
    founder, jepa = family("ecgfounder").options({}), family("ecg_jepa").options({})
    assert (founder["resample"], founder["nan"]) == ("polyphase", "zero")  # the ECGFounder script's
    assert (jepa["resample"], jepa["nan"], jepa["normalise"]) == ("fft", "interpolate", "mimic_iv_ecg")
    assert family("ecgfounder").options({"resample": None})["resample"] == "polyphase"  # null = the default
    assert family("vjepa2").options({})["model"] == "vitl"


def test_start_up_checks_and_widths_come_from_the_family():
    with pytest.raises(OptionError, match="encoder.stats_path"):
        family("metis").check(family("metis").options({}), files=False)
    with pytest.raises(OptionError, match="encoder.notch_hz"):
        family("ecg_jepa").check(family("ecg_jepa").options({"path": "x.pt", "notch_hz": 60}), files=False)
    assert family("metis").width(family("metis").options({})) == 8
    assert family("vjepa2").width(family("vjepa2").options({"model": "vith"})) == 1280
    assert family("vjepa2").width(family("vjepa2").options({"model": "vith", "path": "/m"})) is None
    assert {e.target: f.name for f, e in all_exports()} == {
        "export_pt": "vjepa2", "export_json": "metis", "export_ecg_json": "ecgfounder"}


@pytest.mark.workflow
def test_an_option_the_family_does_not_take_stops_the_run_before_any_job(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("encoder:\n  compile: true\n")
    proc = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "demo_audio.yaml"), str(overlay),
                     check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "config key 'encoder.compile': is not an option of metis" in out
    assert "rule extract" not in out


TOY_INIT = '''
from pathlib import Path
from embedpipe.encoders.family import Family
def build_model(options, device):
    from toyfam.build import build
    return build(options, device)
FAMILY = Family(name="toy", schema_file=Path(__file__).with_name("schema.yaml"), builder=build_model,
                expects="a toy model file", width=lambda options: 4)
'''
TOY_SCHEMA = '''
type: object
additionalProperties: false
properties:
  name: {const: toy}
  model: {type: string, default: toy}
  scale: {type: number, default: 2}
  device: {type: string, default: cpu}
'''
TOY_BUILD = '''
import pyarrow as pa
import torch
from embedpipe.encoders.pending import PendingOutput
from embedpipe.encoders.roles import Encoder, Model, OutputSpec, Prepared, Reader

class FirstBytes(Reader):
    def prepare(self, path):
        data = open(path, "rb").read()
        if len(data) < 4:
            raise ValueError(f"{len(data)} bytes: too short")
        return Prepared(torch.tensor(list(data[:4]), dtype=torch.float32), {"size": len(data)})

    def fact_fields(self):
        return [pa.field("size", pa.int64())]

class Scale(Model):
    batch_size = 2

    def __init__(self, scale):
        self.scale = scale

    def load(self, device):
        self.device = device

    def encode_async(self, batch):
        return PendingOutput.from_device({"embedding": batch.stacked(self.device) * self.scale})

def build(options, device):
    model = Scale(options["scale"])
    return Encoder("toy", FirstBytes(), model, OutputSpec([pa.field("embedding", pa.list_(pa.float32(), 4))], 4),
                   lambda: {"encoder": "toy", "scale": options["scale"]})
'''


def test_a_new_family_is_its_own_folder_plus_one_registry_line(tmp_path, monkeypatch):
    """A family written outside the library, registered by one entry, runs through the extract step."""
    import pyarrow.parquet as pq

    from embedpipe.extract.step import ExtractSettings, ExtractStep

    package = tmp_path / "pkgs" / "toyfam"
    package.mkdir(parents=True)
    for name, text in (("__init__.py", TOY_INIT), ("schema.yaml", TOY_SCHEMA), ("build.py", TOY_BUILD)):
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.setitem(FAMILIES, "toy", "toyfam")  # the one registry line
    shard = tmp_path / "in" / "s1"
    shard.mkdir(parents=True)
    for name, data in (("a.bin", b"\x01\x02\x03\x04\x05"), ("b.bin", b"\x0a\x0b\x0c\x0d"), ("c.bin", b"\x00")):
        (shard / name).write_bytes(data)
    with pytest.raises(OptionError, match="encoder.frames: is not an option of toy"):
        build_encoder("toy", {"frames": 3})
    out = tmp_path / "out"
    before = signal.getsignal(signal.SIGINT)
    status = ExtractStep(ExtractSettings(
        encoder="toy", options={"name": "toy", "scale": 3}, input_dir=tmp_path / "in", shard="s1",
        output=out / "s1.parquet", errors=out / "s1.errors.parquet", parts_dir=out / "parts" / "s1",
        extensions=[".bin"], num_workers=0, gpu_slots="none")).run()
    assert status == 0
    rows = pq.read_table(out / "s1.parquet").drop_columns(list(IDENTITY_COLUMNS)).to_pylist()  # reuse's columns
    assert rows == [{"key": "s1/a.bin", "embedding": [3.0, 6.0, 9.0, 12.0], "size": 5},
                    {"key": "s1/b.bin", "embedding": [30.0, 33.0, 36.0, 39.0], "size": 4}]
    errors = pq.read_table(out / "s1.errors.parquet").to_pylist()
    assert [(e["key"], e["stage"], e["message"]) for e in errors] == [("s1/c.bin", "decode", "1 bytes: too short")]
    assert family("toy").width(family("toy").options({})) == 4
    assert signal.getsignal(signal.SIGINT) is before  # the step's stop handlers are gone again


def test_schema_errors_name_the_option_and_null_means_the_default():
    with pytest.raises(OptionError) as err:
        family("vjepa2").options({"outputs": ["mean", "token"]})
    assert err.value.key == "encoder.outputs"
    assert family("metis").options({"layer": None, "batch_size": None})["layer"] == 17


def test_a_bad_option_fails_the_job_before_it_waits_for_a_gpu(tmp_path, monkeypatch, caplog):
    from embedpipe.extract import gpu_slots
    from embedpipe.extract.step import ExtractSettings, ExtractStep

    monkeypatch.setattr(gpu_slots, "claim_gpu", lambda *a, **k: pytest.fail("claimed a GPU for a bad config"))
    (tmp_path / "in" / "s1").mkdir(parents=True)
    status = ExtractStep(ExtractSettings(
        encoder="metis", options={"stats_path": "s.pt", "compile": True}, input_dir=tmp_path / "in", shard="s1",
        output=tmp_path / "s1.parquet", errors=tmp_path / "s1.errors.parquet", parts_dir=tmp_path / "parts",
        gpu_slots="0,1")).run()
    assert status == 1 and "encoder.compile: is not an option of metis" in caplog.text
    assert not (tmp_path / "parts").exists()


def test_the_script_names_an_unknown_encoder_in_one_line(tmp_path):
    proc = run_script("extract.py", "--encoder", "clip", "--input_dir", tmp_path, "--shard", "s1", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].endswith("encoder.name: unknown encoder 'clip'; known: "
                                                         "vjepa2, metis, ecgfounder, ecg_jepa")


def test_a_clip_longer_than_the_model_was_trained_on_is_refused_naming_the_option(tiny_model):
    """The clip length is `encoder.num_frames` (default 16), never the checkpoint's frames_per_clip; a
    value the model cannot take is refused before any job (presets: 64) or when a custom model is built."""
    vjepa2 = family("vjepa2")
    vjepa2.check(vjepa2.options({"num_frames": 64}), files=False)
    with pytest.raises(OptionError, match=r"encoder\.num_frames: 66 frames is more than the model's 64"):
        vjepa2.check(vjepa2.options({"num_frames": 66}), files=False)
    with pytest.raises(OptionError, match=r"encoder\.num_frames: must be a multiple"):
        vjepa2.check(vjepa2.options({"num_frames": 15}), files=False)
    options = {"model": "t", "path": str(tiny_model), "device": "cpu"}  # the tiny model's config: 16 a clip
    assert build_encoder("vjepa2", options | {"num_frames": 16}).reader.num_frames == 16
    with pytest.raises(ValueError, match=r"encoder\.num_frames: 18 frames is more than the model's 16"):
        build_encoder("vjepa2", options | {"num_frames": 18})


def test_a_family_s_options_are_typed_frozen_and_resolved_once():
    """The result of the family's schema, not a dict: a field per option, of the schema's type; the
    batch `batch_size: 0` means is the number that runs (here a preset's), in the DAG and the job alike."""
    import dataclasses
    import typing

    options = family("vjepa2").options({"model": "vith", "batch_size": 0})
    assert isinstance(options, family("vjepa2").options_type) and options.family == "vjepa2"
    assert (options.batch_size, options["model"], options.path) == (128, "vith", None)
    hints = typing.get_type_hints(type(options))
    assert hints["num_frames"] is int and hints["path"] == str | None and hints["compile"] is bool
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.batch_size = 4  # type: ignore[misc]
    assert family("metis").options({}).batch_size == 64 and family("ecgfounder").options({"batch_size": 8})[
        "batch_size"] == 8
