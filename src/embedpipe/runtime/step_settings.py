"""A step's settings: one frozen dataclass per config block, whose field defaults are the only defaults
in code (config/config.yaml, the schema and the configuration reference are checked against them).

A rule passes its step's whole block as one JSON value (`--settings`); the script builds its argparse
from the class, so `--help` lists every setting and a flag given by hand overrides the block.
Standard library only: the Snakefile reads settings classes when it builds the DAG.
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, asdict, field, fields
from typing import Any, TypeVar

T = TypeVar("T")


class SettingError(ValueError):
    """A value of a step's block the step cannot use; the message names the config key."""


def setting(default: Any = MISSING, help: str = "", factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field with its help text (argparse's, and the configuration reference's); `factory`
    for a mutable default (a list)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def default_of(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def defaults(cls: type) -> dict[str, Any]:
    """Every setting's default, by name: what config/config.yaml's block must say."""
    return {f.name: default_of(f) for f in fields(cls)}


def helps(cls: type) -> dict[str, str]:
    """Every setting's meaning, by name: --help's and the configuration reference's."""
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}


def _converter(hint: Any) -> Callable[[str], Any] | None:
    """How a flag's text becomes the field's value; None for a bool (an on/off flag)."""
    options = [a for a in typing.get_args(hint) if a is not type(None)] if _is_union(hint) else [hint]
    if options == [bool]:
        return None
    if set(options) == {str, int}:  # "auto" or a count
        return lambda text: int(text) if text.lstrip("-").isdigit() else text
    if options[0] in (int, float, str):
        return options[0]
    return json.loads  # lists and mappings: JSON on the command line


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def add_arguments(parser: argparse.ArgumentParser, cls: type, block: str) -> None:
    """`--settings` (the block as JSON) and one flag per field, each overriding the block."""
    parser.add_argument("--settings", default="{}", help=f"the config's `{block}` block as JSON")
    group = parser.add_argument_group(f"the `{block}` block, one flag per setting (a flag overrides --settings)")
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        text = f"{f.metadata.get('help', '')} (default: {default_of(f)})"
        convert = _converter(hints[f.name])
        if convert is None:
            group.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=text)
        else:
            group.add_argument(f"--{f.name}", type=convert, default=argparse.SUPPRESS, help=text)


def from_block(cls: type[T], block: dict[str, Any], block_name: str, **overrides: Any) -> T:
    """The settings of a config block (null: the default), then the overrides (flags given by hand)."""
    known = {f.name for f in fields(cls)}
    if unknown := sorted(set(block) - known):
        raise SettingError(f"{block_name}.{unknown[0]}: not a setting of {block_name} ({', '.join(sorted(known))})")
    return cls(**{k: v for k, v in block.items() if v is not None} | overrides)


def from_args(cls: type[T], args: argparse.Namespace, block_name: str) -> T:
    """The block given as --settings with each flag given by hand over it."""
    try:
        block = json.loads(args.settings)
    except ValueError as exc:
        raise SettingError(f"--settings: not JSON ({exc})") from None
    if not isinstance(block, dict):
        raise SettingError(f"--settings: the `{block_name}` block must be a JSON object")
    given = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return from_block(cls, block, block_name, **given)


def as_json(settings: Any) -> str:
    """The one JSON value a rule passes (compact: it is one shell word)."""
    return json.dumps(asdict(settings), separators=(",", ":"), sort_keys=True)
