"""A family: one encoder package's options, start-up checks, builder, output width and exports.

Importable without torch (the Snakefile reads families when it builds the DAG); `build` imports the
family's model code only when a job runs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from embedpipe.encoders import model_files
from embedpipe.encoders.errors import ModelFileError, OptionError  # noqa: F401  (OptionError: the families' import)
from embedpipe.encoders.options import FamilyOptions, options_class

if TYPE_CHECKING:
    import torch

    from embedpipe.encoders.roles import Encoder

Options = Mapping[str, Any]  # a family's options: its FamilyOptions (options.py), or a dict by hand
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Export:
    """`snakemake <target>`: a file (or, per shard, a folder) under `<run>/export/` in the format of
    the script the family replaces. `writer` is called as writer(shard files, out) — or (one shard
    file, out) when `per_shard`; it imports the export's code when it runs."""

    target: str
    output: str
    writer: Callable[..., int]
    directory: bool = False
    per_shard: bool = False
    # Why this run's options leave nothing to export: (config key, message), or None.
    unavailable: Callable[[Options], tuple[str, str] | None] = lambda options: None

    def write(self, shards: list[Path], out: Path, column: str | None = None) -> int:
        """`column`: export another column than the function's default (the scripts' --column)."""
        chosen = {"column": column} if column else {}
        return self.writer(shards[0], out, **chosen) if self.per_shard else self.writer(shards, out, **chosen)


def no_checks(options: Options, files: bool) -> None:
    return None


@dataclass(frozen=True)
class Family:
    name: str
    schema_file: Path  # the family's options: JSON Schema in YAML, with their defaults
    builder: Callable[[Options, torch.device], Encoder]  # imports the model code when called
    expects: str  # what encoder.path must hold, in words: the one-line error of a wrong path says it
    # Start-up checks beyond the schema; `files`: also check that the files the options name exist
    # (false for a demo, whose files a rule makes). Raise OptionError.
    checks: Callable[[Options, bool], None] = no_checks
    # The embedding width the options fix before any model file is read (validate checks it), or None.
    width: Callable[[Options], int | None] = lambda options: None
    exports: tuple[Export, ...] = field(default_factory=tuple)
    # The batch `batch_size: 0` means for these options (a preset's, the family's): resolved once, by
    # options(), so the DAG, the job's log and the model all see the number that runs.
    default_batch: Callable[[Options], int] | None = None
    # For a Hugging Face folder, the model_type its config.json states: transformers loads another
    # family's config with a warning only, and its weights into a randomly initialised model with another.
    model_type: str | None = None
    # For a checkpoint file: whether the names of its tensors (dotted paths through its dicts, as
    # config/model_header.py reads them without torch) are what the family's loader looks for. The
    # preflight stops a dry run on another family's checkpoint with it; None: not checked.
    checkpoint_holds: Callable[[frozenset[str]], bool] | None = None

    @cached_property
    def schema(self) -> dict[str, Any]:
        """The schema file; `x-shared` names a file of properties it shares with other families
        (its own entries are merged over them)."""
        schema = yaml.safe_load(self.schema_file.read_text(encoding="utf-8"))
        if shared := schema.pop("x-shared", None):
            common = yaml.safe_load((self.schema_file.parent / shared).read_text(encoding="utf-8"))["properties"]
            own = schema["properties"]
            schema["properties"] = {k: common.get(k, {}) | own.get(k, {}) for k in [*common, *own]}
        return schema

    @cached_property
    def options_type(self) -> type[FamilyOptions]:
        """The family's options as a typed, frozen dataclass, one field per option of its schema."""
        return options_class(self.name, self.schema["properties"])

    def defaults(self) -> dict[str, Any]:
        """Each option's default, as the family's schema states it."""
        return {k: spec["default"] for k, spec in self.schema["properties"].items() if "default" in spec}

    def options(self, given: Options) -> FamilyOptions:
        """`given` (the config's `encoder` block) checked against the family's schema, with its
        defaults filled in (a null value means the default; batch_size 0, the family's batch), as the
        family's typed options. Unknown options are errors."""
        known = self.schema["properties"]
        unknown = sorted(set(given) - set(known))
        if unknown:
            names = ", ".join(f"encoder.{k}" for k in unknown)
            which = "is not an option" if len(unknown) == 1 else f"{names} are not options"
            listed = ", ".join(sorted(set(known) - {"name"}))
            raise OptionError(f"encoder.{unknown[0]}", f"{which} of {self.name} (its options: {listed})")
        defaults = self.defaults()
        given = {k: v for k, v in given.items() if v is not None or k not in defaults}
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(self.schema).iter_errors(given))
        if error is not None:
            # The option, not the item of it: `encoder.outputs`, not `encoder.outputs.1`.
            key = f"encoder.{error.absolute_path[0]}" if error.absolute_path else "encoder"
            raise OptionError(key, error.message)
        options = defaults | given
        options["name"] = self.name
        if "batch_size" in options and not options["batch_size"] and self.default_batch is not None:
            options["batch_size"] = self.default_batch(options)
        if not PLAIN_NAME.fullmatch(options.get("model") or "x"):
            # it names files (merge_all's <model>_embeddings_all.pt) and Snakemake patterns
            raise OptionError("encoder.model", f"{options['model']!r} must be a plain name (letters, digits, "
                              "'.', '_', '-', starting with a letter or digit): it names the run's files")
        return self.options_type(**options)

    def check(self, options: FamilyOptions, files: bool = True, made: Collection[str] = ()) -> FamilyOptions:
        """Options (as `options()` returns them) that pass the family's start-up checks. `made`: model
        files a rule of this run makes (pretrain's final.pt); an encoder.path among them is not looked for."""
        files = files and options.get("path") not in made
        self.checks(options, files)
        if files:
            try:  # what the path holds (a file where a folder belongs...) stops the dry run, not the GPU job
                self.check_model_path(options.get("path"))
            except ModelFileError as exc:
                raise OptionError("encoder.path", str(exc).removeprefix("encoder.path ")) from None
        return options

    def check_model_path(self, path: str | None) -> None:
        """ModelFileError when `path` is plainly not what the family loads (cheap: nothing is loaded)."""
        model_files.check_model_path(self.name, self.expects, self.model_type, path)

    def model_error(self, path: str | None, model: str, exc: BaseException) -> ModelFileError:
        """The one-line error for an exception raised while building or loading the model."""
        return model_files.model_error(self.name, self.expects, path, model, exc)

    def build(self, options: Options, device: torch.device) -> Encoder:
        return self.builder(options, device)
