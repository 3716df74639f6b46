"""A family's options as its schema makes them: one frozen dataclass per family, generated from the
schema (each option a field of the schema's type, with its default), read as attributes
(`options.batch_size`) or as a read-only mapping (`options["batch_size"]`, `dict(options)`).

Torch-free: the Snakefile checks a config's encoder block with it when it builds the DAG.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import fields, make_dataclass
from typing import Any, ClassVar

# JSON Schema's types as Python's; an option of several (["string", "null"]) is their union.
JSON_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool, "array": list,
                               "object": dict, "null": type(None)}


class FamilyOptions(Mapping[str, Any]):
    """The base of each family's options class: immutable, and a mapping of option → value."""

    family: ClassVar[str]

    def __getitem__(self, key: str) -> Any:
        if key not in self.names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]


def python_type(spec: dict[str, Any]) -> Any:
    """The Python type of one option's schema: its `type` (a union where it lists several), the type of
    its `enum` or `const` values where it states none; Any where the schema leaves it open."""
    kinds = spec.get("type")
    if kinds is None:
        values = spec.get("enum") or ([spec["const"]] if "const" in spec else [])
        kinds = sorted({next(k for k, t in JSON_TYPES.items() if type(v) is t) for v in values}) or None
    if kinds is None:
        return Any
    types = [JSON_TYPES[k] for k in ([kinds] if isinstance(kinds, str) else kinds)]
    union = types[0]
    for t in types[1:]:
        union = union | t
    return union


def options_class(family: str, properties: dict[str, dict[str, Any]]) -> type[FamilyOptions]:
    """The frozen dataclass of `family`'s options: one field per property of its schema."""
    name = "".join(part.capitalize() for part in family.split("_")) + "Options"
    cls = make_dataclass(name, [(key, python_type(spec)) for key, spec in properties.items()],
                         bases=(FamilyOptions,), frozen=True, namespace={"__module__": __name__, "family": family})
    return cls
