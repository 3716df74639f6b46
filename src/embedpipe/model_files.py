"""A model path of the wrong kind (a text file, a folder where a checkpoint belongs, another family's
checkpoint) ends the job with one line naming it and what was expected, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from embedpipe.encoders.family import OptionError

EXPECTED = {
    "vjepa2": "a V-JEPA 2 model folder (config.json with model_type vjepa2, and its weights)",
    "metis": "a w2v-BERT 2.0 model folder (config.json with model_type wav2vec2-bert, and its weights)",
    "ecgfounder": "an ECGFounder checkpoint file (a .pth holding {'state_dict': Net1D weights})",
    "ecg_jepa": "an ECG-JEPA checkpoint file (pretrain.py's .pt, or an encoder state dict)",
}
# Hugging Face folders: transformers loads another family's config with only a warning, and its
# weights into a randomly initialised model with another, so the type is checked here.
MODEL_TYPES = {"vjepa2": "vjepa2", "metis": "wav2vec2-bert"}
MAX_REASON = 400


class ModelFileError(Exception):
    """The model could not be built or loaded from what the configuration names; str() is the log line."""


class ModelLoadError(Exception):
    """Loading the model failed; the cause is the loader's exception (see model_error)."""


def what_is(path: Path) -> str:
    if not path.exists():
        return "does not exist"
    if path.is_dir():
        return "a folder"
    with open(path, "rb") as fh:
        head = fh.read(4096)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"a {path.stat().st_size}-byte binary file"
    return "a text file"


def check_model_path(family: str, path: str | None) -> None:
    """Raise ModelFileError when `path` is plainly not what `family` loads (cheap: nothing is loaded)."""
    if not path or family not in EXPECTED:
        return
    where = Path(path)
    if family in MODEL_TYPES:
        if not where.is_dir():
            raise ModelFileError(line(family, path, "not a folder"))
        config = where / "config.json"
        if not config.is_file():
            raise ModelFileError(line(family, path, "no config.json in it"))
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        except (ValueError, AttributeError):
            raise ModelFileError(line(family, path, "its config.json is not a JSON object")) from None
        if model_type != MODEL_TYPES[family]:
            raise ModelFileError(line(family, path, f"its config.json says model_type {model_type!r}"))
    elif not where.is_file():
        raise ModelFileError(line(family, path, "not a file"))


def model_error(family: str, path: str | None, model: str, exc: BaseException) -> ModelFileError:
    """The one-line error for an exception raised while building or loading the model."""
    cause = exc.__cause__ if isinstance(exc, ModelLoadError) and exc.__cause__ else exc
    if isinstance(cause, OptionError):  # another file the options name (metis's stats_path): that key
        return ModelFileError(str(cause))
    text = " ".join(part.strip() for part in str(cause).splitlines() if part.strip()) or type(cause).__name__
    if not path:
        return ModelFileError(f"cannot load the {family} model {model!r}: {type(cause).__name__}: {text[:MAX_REASON]}")
    text = text.removeprefix(f"{path}: ")  # the line names the file already
    return ModelFileError(line(family, path, f"{type(cause).__name__}: {text[:MAX_REASON]}"))


def line(family: str, path: str, reason: str) -> str:
    expected = EXPECTED.get(family, f"a {family} model")
    return f"encoder.path {path} ({what_is(Path(path))}): cannot load the {family} encoder from it: {reason}; " \
           f"expected {expected}"
