"""One dataset repository, several models (the EchoJEPA dataset's `jepa-l-embeddings/` …): each run
is uploaded into its own folder, and the repository's root card lists one `configs:` entry per
model, so `load_dataset(repo, "vitl")` reads that folder's Parquet files and nothing else.

The root card is merged, never rewritten: the entries of the other models, the other header keys
and the body stay as they are; this run's entry is added (or updated, when it names the same folder)
and a line for its folder is added to the body. A config name already used for another folder is
refused, so one model can never take over another's name.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

# The header keys a new root card takes from the first model's card.
SHARED_KEYS = ("pretty_name", "license", "license_name", "license_link", "task_categories", "tags")
FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


def config_name_of(path_in_repo: str, config_name: str | None = None) -> str:
    """The config a model's folder is read by: `config_name`, else the folder's path with '-' for '/'."""
    return config_name or path_in_repo.replace("/", "-")


class ConfigClash(ValueError):
    """The root card's config of that name reads another folder."""


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """(YAML header, body) of a README.md, parsed as the Hub parses cards (CRLF, a header at the end)."""
    from huggingface_hub import DatasetCard

    card = DatasetCard(text)
    return card.data.to_dict(), card.text


def folder_configs(card_text: str | None) -> list[str]:
    """The config names of a root card that read a folder: a repository of several models."""
    if not card_text:
        return []
    configs = split_card(card_text)[0].get("configs") or []
    return [c.get("config_name") for c in configs
            if any("/" in f.get("path", "") for f in c.get("data_files") or [] if isinstance(f, dict))]


def folder_entry(folder: str, config_name: str) -> dict[str, Any]:
    return {"config_name": config_name, "data_files": [{"split": "train", "path": f"{folder}/train-*.parquet"}]}


def merged_root_card(existing: str | None, model_card: str, folder: str, config_name: str, repo_id: str) -> str:
    """The repository's README.md with this run's config; `existing`: the card there now, if any."""
    header, body = split_card(existing) if existing else ({}, "")
    if not existing:
        model_header, _ = split_card(model_card)
        header = {k: model_header[k] for k in SHARED_KEYS if k in model_header}
        body = (f"\n# {header.get('pretty_name') or repo_id}\n\nOne folder per model, each a config of this "
                "dataset (`load_dataset(repo, config)`); each folder's README.md is that model's card.\n\n")
    entry = folder_entry(folder, config_name)
    configs = list(header.get("configs") or [])
    for config in configs:
        if config.get("config_name") == config_name and config.get("data_files") != entry["data_files"]:
            raise ConfigClash(f"the repository's config {config_name!r} reads {config.get('data_files')}, not "
                              f"{folder}/: choose another upload.config_name")
    header["configs"] = [c for c in configs if c.get("config_name") != config_name] + [entry]
    line = f"- `{folder}/`: `load_dataset(\"{repo_id}\", \"{config_name}\")`, its card `{folder}/README.md`\n"
    if f"`{folder}/`" not in body:
        body = body.rstrip("\n") + "\n" + line
    text = "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n" + body
    split_card(text)  # raises on a header the Hub would reject as YAML, before anything is pushed
    return text
