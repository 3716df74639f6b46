"""encoder.path read from its header without torch, as the family's loader will read it: the tiny
random-weight models in the official formats pass, another family's model stops."""

from __future__ import annotations

import json
import struct

import pytest

from embedpipe.config.model_header import (
    model_file_problem,
    read_torch_checkpoint,
    safetensors_header,
    tensor_names,
)
from embedpipe.encoders import family

torch = pytest.importorskip("torch")


def test_the_tiny_official_format_models_pass(tiny_model, tiny_metis, tiny_ecg):
    assert model_file_problem(family("vjepa2"), str(tiny_model)) is None
    assert model_file_problem(family("metis"), str(tiny_metis)) is None
    assert model_file_problem(family("ecgfounder"), str(tiny_ecg / "ecgfounder.pth")) is None
    assert model_file_problem(family("ecg_jepa"), str(tiny_ecg / "ecg_jepa.pt")) is None


def test_another_ecg_familys_checkpoint_is_named(tiny_ecg):
    reason = model_file_problem(family("ecgfounder"), str(tiny_ecg / "ecg_jepa.pt"))
    assert reason is not None and "is ecg_jepa's checkpoint, not ecgfounder's" in reason
    assert "set encoder.name: ecg_jepa" in reason
    reason = model_file_problem(family("ecg_jepa"), str(tiny_ecg / "ecgfounder.pth"))
    assert reason is not None and "is ecgfounder's checkpoint, not ecg_jepa's" in reason


@pytest.mark.parametrize("layout", [
    lambda w: {"model": {"encoder.patch_embed.proj.weight": w}, "config": {"num_heads": 2}},
    lambda w: {"model": {"module.target_encoder.patch_embed.proj.weight": w}},
    lambda w: {"encoder": {"_orig_mod.patch_embed.proj.weight": w}},
    lambda w: {"patch_embed.proj.weight": torch.nn.Parameter(w)},
])
@pytest.mark.parametrize("zipped", [True, False])
def test_every_layout_read_checkpoint_takes_passes(tmp_path, layout, zipped):
    path = tmp_path / "c.pt"
    torch.save(layout(torch.zeros(4, 12, 25)), path, _use_new_zipfile_serialization=zipped)
    assert model_file_problem(family("ecg_jepa"), str(path)) is None
    assert "is ecg_jepa's checkpoint" in model_file_problem(family("ecgfounder"), str(path))


def test_a_checkpoint_of_nothing_known_names_some_tensors(tmp_path):
    path = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(2, 3).state_dict(), path)
    assert tensor_names(read_torch_checkpoint(path)) == {"weight", "bias"}
    reason = model_file_problem(family("ecgfounder"), str(path))
    assert reason is not None and "a checkpoint with 2 tensors (bias, weight)" in reason


def test_what_cannot_be_read_is_not_a_stop(tmp_path):
    for name, data in (("text.pth", b"hello"), ("half.pth", b"\x80\x02"), ("empty.pth", b"")):
        (tmp_path / name).write_bytes(data)
        assert model_file_problem(family("ecgfounder"), str(tmp_path / name)) is None


def test_a_safetensors_file_or_a_folder_without_weights_stops(tmp_path, tiny_model):
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    assert safetensors_header(path) == json.loads(header)
    assert "a safetensors file" in model_file_problem(family("ecg_jepa"), str(path))
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model / "config.json").read_text())
    assert "no weights in it" in model_file_problem(family("vjepa2"), str(folder))
    (folder / "model.safetensors").write_bytes(b"not a header")
    assert "not a safetensors file" in model_file_problem(family("vjepa2"), str(folder))


def test_reading_a_pickle_runs_none_of_its_code(tmp_path):
    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "touched"), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Boom()}, path)
    tree = read_torch_checkpoint(path)
    assert not (tmp_path / "touched").exists() and tensor_names(tree) == {"state_dict.x"}


def _zipped_pickle(tmp_path, payload: bytes):
    import zipfile

    path = tmp_path / "crafted.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    return path


def test_a_crafted_checkpoint_neither_explodes_nor_crashes_the_dag_build(tmp_path):
    import collections
    import pickle

    from embedpipe.config.model_header import read_torch_checkpoint, tensor_names
    from embedpipe.encoders import family

    # one dict shared 20 ways on each of 6 levels: 20**6 paths if walked naively, one walk here
    node: dict = {"weight": None}
    for _ in range(6):
        node = {str(i): node for i in range(20)}
    assert tensor_names(read_torch_checkpoint(_zipped_pickle(tmp_path, pickle.dumps(node, protocol=2)))) == set()

    class Shadowing:  # pickles as an OrderedDict whose BUILD sets an attribute named `items`
        def __reduce__(self):
            return collections.OrderedDict, (), {"items": 1}, None, iter([("w", 1)])

    path = _zipped_pickle(tmp_path, pickle.dumps({"state_dict": Shadowing()}, protocol=2))
    assert tensor_names(read_torch_checkpoint(path)) == set()
    # cannot tell is no stop, and never a traceback
    reason = model_file_problem(family("ecgfounder"), str(path))
    assert reason is None or "not ecgfounder's" in reason
