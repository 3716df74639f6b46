"""A model path of the wrong kind (a text file, a folder where a checkpoint belongs, another family's
checkpoint) ends the job with one line naming it and what was expected, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from embedpipe.encoders.errors import ModelFileError, ModelLoadError, OptionError

MAX_REASON = 400


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


def check_model_path(family: str, expects: str, model_type: str | None, path: str | None) -> None:
    """Raise ModelFileError when `path` is plainly not what `family` loads (cheap: nothing is loaded)."""
    if not path:
        return
    where = Path(path)
    if model_type:
        if not where.is_dir():
            raise ModelFileError(line(family, expects, path, "not a folder"))
        config = where / "config.json"
        if not config.is_file():
            raise ModelFileError(line(family, expects, path, "no config.json in it"))
        try:
            found = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        except (ValueError, AttributeError):
            raise ModelFileError(line(family, expects, path, "its config.json is not a JSON object")) from None
        if found != model_type:
            raise ModelFileError(line(family, expects, path, f"its config.json says model_type {found!r}"))
    elif not where.is_file():
        raise ModelFileError(line(family, expects, path, "not a file"))


def model_error(family: str, expects: str, path: str | None, model: str, exc: BaseException) -> ModelFileError:
    """The one-line error for an exception raised while building or loading the model."""
    cause = exc.__cause__ if isinstance(exc, ModelLoadError) and exc.__cause__ else exc
    if isinstance(cause, OptionError):  # another file the options name (metis's stats_path): that key
        return ModelFileError(str(cause))
    text = " ".join(part.strip() for part in str(cause).splitlines() if part.strip()) or type(cause).__name__
    if not path:
        return ModelFileError(f"cannot load the {family} model {model!r}: {type(cause).__name__}: {text[:MAX_REASON]}")
    text = text.removeprefix(f"{path}: ")  # the line names the file already
    return ModelFileError(line(family, expects, path, f"{type(cause).__name__}: {text[:MAX_REASON]}"))


def line(family: str, expects: str, path: str, reason: str) -> str:
    return f"encoder.path {path} ({what_is(Path(path))}): cannot load the {family} encoder from it: {reason}; " \
           f"expected {expects}"
