"""Write docs/configuration-reference.md from the schemas, so no page has to state a default by hand.

    .venv/bin/python docs/gen_reference.py           # rewrite the page
    .venv/bin/python docs/gen_reference.py --check   # exit 1 when the committed page is stale

Sources: config/schema.yaml (descriptions, types, defaults), config/config.yaml (the defaults every
run shares: Snakemake merges it under each run's file, so its values win over the schema's), and each
encoder family's src/embedpipe/encoders/<family>/schema.yaml with the file its `x-shared` names.
Families are found as folders holding a schema.yaml. A block a step's settings class holds
(`embedpipe.runtime.step_settings`) takes its defaults and, where the schema has no description, its
meanings from the class: the only defaults in code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from embedpipe.discover.settings import HfDatasetOptions, ShardOptions
from embedpipe.evaluate.settings import EvaluationSettings
from embedpipe.extract.settings import ExtractOptions
from embedpipe.publish.kinds import KINDS
from embedpipe.publish.settings import CardOptions, UploadOptions
from embedpipe.runtime.step_settings import defaults as class_defaults
from embedpipe.runtime.step_settings import helps
from embedpipe.store.merge_settings import MergeOptions
from embedpipe.validate.settings import ValidationConfig

REPO = Path(__file__).resolve().parents[1]
CONFIG_SCHEMA = REPO / "config" / "schema.yaml"
CONFIG_DEFAULTS = REPO / "config" / "config.yaml"
ENCODERS = REPO / "src" / "embedpipe" / "encoders"
PAGE = REPO / "docs" / "configuration-reference.md"
NOTHING = object()  # no default anywhere (None is a real default: null)
SETTINGS = {"extract": ExtractOptions, "validate": ValidationConfig, "evaluate": EvaluationSettings,
            "upload": UploadOptions, "dataset": CardOptions, "shards": ShardOptions, "hf_dataset": HfDatasetOptions,
            "merge": MergeOptions}

Schema = dict[str, Any]


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def family_schema(path: Path) -> tuple[Schema, str | None]:
    """The family's schema with its `x-shared` properties merged under its own, as
    embedpipe.encoders.family.Family.schema does (shared keys first, own entries win)."""
    schema = load(path)
    shared = schema.pop("x-shared", None)
    if shared:
        common = load(path.parent / shared)["properties"]
        own = schema["properties"]
        schema["properties"] = {k: common.get(k, {}) | own.get(k, {}) for k in [*common, *own]}
    return schema, shared


def text(value: str) -> str:
    """Schema prose in a table cell: one line, and nothing Markdown would read as a table bar,
    HTML tag, emphasis or link, on GitHub and in MkDocs alike."""
    value = " ".join(value.split())
    for char, escaped in (("\\", "\\\\"), ("|", "\\|"), ("*", "\\*"), ("[", "\\["), ("]", "\\]"),
                          ("<", "&lt;"), (">", "&gt;")):
        value = value.replace(char, escaped)
    return value


def code(value: Any) -> str:
    shown = value if isinstance(value, str) else json.dumps(value)
    return f"`{shown}`"


def type_of(spec: Schema) -> str:
    """Type, allowed values and bounds, as one cell."""
    if "const" in spec:
        return f"always {code(spec['const'])}"
    if "oneOf" in spec or "anyOf" in spec:
        return " or ".join(type_of(alt) for alt in spec.get("oneOf", spec.get("anyOf")))
    kinds = spec.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    if "enum" in spec:
        shown = ", ".join(code(v) for v in spec["enum"])
        return f"one of {shown}"
    if "array" in kinds and "items" in spec:
        kinds[kinds.index("array")] = f"array of {type_of(spec['items'])}"
    out = " or ".join(kinds) or "any"
    bounds = [f"≥ {spec['minimum']}" if "minimum" in spec else "",
              f"> {spec['exclusiveMinimum']}" if "exclusiveMinimum" in spec else "",
              f"≤ {spec['maximum']}" if "maximum" in spec else "",
              f"at least {spec['minItems']} item{'s' if spec['minItems'] != 1 else ''}" if "minItems" in spec else "",
              "no repeats" if spec.get("uniqueItems") else ""]
    bounds = [b for b in bounds if b]
    return out + (f" ({', '.join(bounds)})" if bounds else "")


def lookup(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return NOTHING
        tree = tree[part]
    return tree


def from_class(key: str) -> tuple[Any, str]:
    """(default, meaning) of a key a step's settings class holds; (NOTHING, "") otherwise."""
    block, _, name = key.partition(".")
    cls = SETTINGS.get(block)
    if cls is None or name not in class_defaults(cls):
        return NOTHING, ""
    return class_defaults(cls)[name], helps(cls)[name]


def default_cell(spec: Schema, base: Any, required: bool, key: str = "") -> str:
    """config/config.yaml's value (`base`) where it has one (it is what a run gets), else the settings
    class's, else the schema's."""
    own = from_class(key)[0]
    own = spec.get("default", NOTHING) if own is NOTHING else own
    value = base if base is not NOTHING else own
    if value is NOTHING:
        return "required" if required else "—"
    if own is not NOTHING and base is not NOTHING and own != base:
        return f"{code(base)} (config/config.yaml; the schema says {code(own)})"
    return code(value)


def rows(properties: Schema, required: list[str], prefix: str, anchor: str,
         defaults: Any) -> Iterator[str]:
    """One table row per key; an object with properties of its own is followed by its keys (dotted)."""
    for name, spec in properties.items():
        key = f"{prefix}{name}"
        base = lookup(defaults, key) if defaults is not None else NOTHING
        meaning = spec.get("description") or from_class(key)[1]
        if key == "metadata.kind":  # the kinds are a registry, not a schema enum
            spec = spec | {"enum": list(KINDS)}
        yield (f'| <a id="{anchor}{name}"></a>`{key}` | {type_of(spec)} | '
               f"{default_cell(spec, base, name in required, key)} | {text(meaning)} |")
        if "properties" in spec:
            yield from rows(spec["properties"], spec.get("required", []), f"{key}.", f"{anchor}{name}.", defaults)


TABLE_HEAD = ["| key | type | default | meaning |", "|---|---|---|---|"]


def render() -> str:
    schema = load(CONFIG_SCHEMA)
    defaults = load(CONFIG_DEFAULTS)
    props, required = schema["properties"], schema.get("required", [])
    out = [
        "<!-- Generated by docs/gen_reference.py from config/schema.yaml, config/config.yaml and",
        "     src/embedpipe/encoders/*/schema.yaml. Do not edit: run `.venv/bin/python docs/gen_reference.py`. -->",
        "",
        "# Configuration reference",
        "",
        "Every key a run's config file may set, its type, its default and what it does, generated from the",
        "schemas that check a config before any job starts. A key not listed here is an error. A default",
        "is the value in `config/config.yaml` (the file every run's `--configfile` is merged over), else the",
        "schema's own; a *required* key has none: the run's file sets it (inside a block: when it sets the block).",
        "How to write a config file and run it: [Configuration](configuration.md).",
        "",
        f"{text(schema.get('description', ''))}",
        "",
        "## Top-level keys",
        "",
        *TABLE_HEAD,
    ]
    top = {k: v for k, v in props.items() if "properties" not in v}
    out += rows(top, required, "", "", defaults)
    for name, spec in props.items():
        if "properties" not in spec:
            continue
        out += ["", f"## {name}", ""]
        if "description" in spec:
            out += [text(spec["description"]), ""]
        out += TABLE_HEAD
        out += rows(spec["properties"], spec.get("required", []), f"{name}.", f"{name}.", defaults)

    families = sorted(p.parent.name for p in ENCODERS.glob("*/schema.yaml"))
    if not families:  # the encoders moved: a reference without them would pass --check silently
        raise SystemExit(f"no encoder family schema under {ENCODERS.relative_to(REPO)}/*/schema.yaml")
    out += ["", "## Encoder families", "",
            "The `encoder` block holds `name` and the options of that family only: each family's schema",
            "(`src/embedpipe/encoders/<family>/schema.yaml`) checks them and fills these defaults; an option",
            "another family takes is an error. The anchors are `encoder.<family>.<option>`.", ""]
    out += [f"- [{f}](#encoder-{f})" for f in families]
    for fam in families:
        fschema, shared = family_schema(ENCODERS / fam / "schema.yaml")
        out += ["", f"### encoder: {fam}", ""]
        if "description" in fschema:
            out += [text(fschema["description"]) + ".", ""]
        if shared:
            out += [f"Options shared with the other ECG family come from `src/embedpipe/encoders/{Path(shared).name}`;",
                    "this family's own entries override them.", ""]
        out += TABLE_HEAD
        out += rows(fschema["properties"], fschema.get("required", []), "encoder.", f"encoder.{fam}.", None)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page differs from what would be written")
    args = parser.parse_args(argv)
    page = render()
    rel = PAGE.relative_to(REPO)
    if args.check:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != page:
            print(f"{rel} is stale: run .venv/bin/python docs/gen_reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
