"""What a model file holds, read from its header without torch and without loading a tensor: the
names of a torch checkpoint's tensors, a safetensors file's header, whether a Hugging Face folder has
weights. The preflight compares them with what the family's loader looks for, so another family's
checkpoint stops the dry run instead of the GPU job.

A torch checkpoint is a pickle (in a zip since torch 1.6, `<name>/data.pkl`; before, the file
itself). It is read here by an unpickler that builds nothing but dicts, lists and placeholders: no
global is looked up, so reading a file runs none of its code, and tensors stay in their storages
(never read). Whatever cannot be read this way is "cannot tell", never a stop.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from embedpipe.encoders.family import Family

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization's MAGIC_NUMBER (the pre-zip format)
MAX_PICKLE_BYTES = 256 * 1024 * 1024  # data.pkl holds names and shapes; past this, do not read it
MAX_DEPTH = 6
MAX_LEGACY_BYTES = 4 * 1024**3  # a pre-zip checkpoint is read from the file itself: past this, cannot tell
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


class Tensor:
    """A tensor's place in a checkpoint: its data are never read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


class Opaque:
    """Any other object a pickle names (a storage type, torch.Size...): a placeholder that takes
    whatever it is built with."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class StateDict(dict):
    """OrderedDict and dict: a state dict's `_metadata` attribute arrives as a pickle BUILD."""


def _tensor(*args: Any, **kwargs: Any) -> Tensor:
    return Tensor()


class HeaderUnpickler(pickle.Unpickler):
    """The structure of a torch checkpoint's pickle: dicts with their keys, tensors as `Tensor`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in (("collections", "OrderedDict"), ("builtins", "dict")):
            return StateDict
        if module.split(".")[0] == "torch" and name.startswith("_rebuild"):
            return _tensor  # _rebuild_tensor_v2, _rebuild_parameter, ...: a tensor, whatever its kind
        return Opaque

    def persistent_load(self, pid: Any) -> Any:
        return Opaque()  # a storage: ('storage', type, key, location, numel), its bytes left where they are


MAX_NAMES = 1_000_000  # far past any model's tensors: a pickle past it is not a plain state dict


class TooManyNames(ValueError):
    pass


def tensor_names(tree: Any) -> set[str]:
    """Dotted paths of every tensor under the dicts of `tree` (`model.encoder.patch_embed.proj.weight`).
    Each dict is walked once (a pickle can share one dict many times, which a naive walk would expand
    exponentially) and at most MAX_NAMES names are collected; dict.items is called on the dict type
    itself, since a pickle's BUILD can shadow a StateDict's own attributes."""
    names: set[str] = set()
    seen: set[int] = set()
    stack: list[tuple[Any, str, int]] = [(tree, "", 0)]
    while stack:
        node, prefix, depth = stack.pop()
        if isinstance(node, Tensor):
            names.add(prefix.rstrip("."))
            if len(names) > MAX_NAMES:
                raise TooManyNames(f"more than {MAX_NAMES} tensor names")
        elif isinstance(node, dict) and depth <= MAX_DEPTH and id(node) not in seen:
            seen.add(id(node))
            stack.extend((value, f"{prefix}{key}.", depth + 1) for key, value in dict.items(node))
    return names


def _load_pickle(fh: BinaryIO) -> Any:
    return HeaderUnpickler(fh).load()


def read_torch_checkpoint(path: Path) -> Any | None:
    """The pickled structure of a torch checkpoint file, or None when it is not one this can read."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                pickles = [i for i in archive.infolist() if i.filename.endswith("data.pkl")]
                if len(pickles) != 1 or pickles[0].file_size > MAX_PICKLE_BYTES:
                    return None
                with archive.open(pickles[0]) as fh:
                    return _load_pickle(io.BytesIO(fh.read()))
        if path.stat().st_size > MAX_LEGACY_BYTES:
            return None  # the legacy format keeps tensors after the pickles; a huge one is not read here
        with open(path, "rb") as fh:
            if fh.read(1) != b"\x80":  # a pickle's PROTO opcode: torch.save always writes one
                return None
            fh.seek(0)
            if _load_pickle(fh) != TORCH_LEGACY_MAGIC:
                return None
            _load_pickle(fh), _load_pickle(fh)  # the protocol version and the system info
            return _load_pickle(fh)
    except Exception:  # noqa: BLE001 - a file this reader does not understand: cannot tell
        return None


def safetensors_header(path: Path) -> dict[str, Any] | None:
    """A safetensors file's header (tensor name → dtype, shape, offsets), or None when it is not one:
    8 bytes of little-endian length, then that much JSON."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return None
            (length,) = struct.unpack("<Q", head)
            if not 2 <= length <= min(MAX_PICKLE_BYTES, path.stat().st_size - 8):
                return None
            header = json.loads(fh.read(length))
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def hf_weights(folder: Path) -> list[str]:
    """The weight files transformers' from_pretrained would load from a model folder."""
    return [name for name in HF_WEIGHTS if (folder / name).is_file()]


def model_file_problem(fam: Family, path: str | None) -> str | None:
    """Why encoder.path, which exists, is not a model `fam` loads, from its header; None when it is, or
    when the header cannot tell. The existing start-up check has already said folder vs file and a
    Hugging Face config.json's model_type; this reads what the job's loader reads next."""
    if not path:
        return None
    where = Path(path)
    if fam.model_type and where.is_dir():
        if not hf_weights(where):
            return (f"{path}: no weights in it (none of {', '.join(HF_WEIGHTS)}); from_pretrained in the job would "
                    f"fail: give encoder.path {fam.expects}")
        weights = where / "model.safetensors"
        if weights.is_file() and safetensors_header(weights) is None:
            return f"{weights}: not a safetensors file (its header cannot be read); download it again"
        return None
    if fam.checkpoint_holds is None or not where.is_file():
        return None
    if safetensors_header(where) is not None:
        return f"{path}: a safetensors file, which torch.load in the job cannot read; give encoder.path {fam.expects}"
    tree = read_torch_checkpoint(where)
    if tree is None:
        return None
    try:
        names = frozenset(tensor_names(tree))
    except Exception:  # noqa: BLE001 - a structure this reader does not understand (TooManyNames too): cannot tell
        return None
    if fam.checkpoint_holds(names):
        return None
    # another family's checkpoint is named, so the fix may be encoder.name rather than the path
    other = next((f.name for f in _families(fam) if f.checkpoint_holds and f.checkpoint_holds(names)), None)
    found = f"{other}'s checkpoint" if other else f"a checkpoint with {len(names)} tensors ({_sample(names)})"
    return f"{path} is {found}, not {fam.name}'s: give encoder.path {fam.expects}" + \
        (f", or set encoder.name: {other}" if other else "")


def _families(fam: Family) -> list[Family]:
    from embedpipe.encoders import FAMILIES, family

    return [family(name) for name in FAMILIES if name != fam.name]


def _sample(names: frozenset[str]) -> str:
    shown = sorted(names)[:3]
    return ", ".join(shown) + (", ..." if len(names) > 3 else "") if shown else "no tensor in a dict"
