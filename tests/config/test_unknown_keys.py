"""A misspelt config key: one line naming it and the closest valid key, at the top level or in a block."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from embedpipe.config.unknown_keys import unknown_key, unknown_key_problem

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "config" / "schema.yaml"
DEFAULTS = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_the_defaults_have_no_unknown_key():
    assert unknown_key_problem(DEFAULTS, SCHEMA) is None


def test_a_top_level_typo_names_the_closest_key():
    config = copy.deepcopy(DEFAULTS) | {"encodr": 1}
    assert unknown_key_problem(config, SCHEMA) == ("encodr", "unknown; did you mean 'encoder'?")


def test_a_typo_in_a_block_names_the_block_key():
    config = copy.deepcopy(DEFAULTS)
    config["shards"]["max_shard"] = 3
    assert unknown_key_problem(config, SCHEMA) == ("shards.max_shard", "unknown; did you mean 'shards.max_shards'?")


def test_nothing_close_lists_the_keys_and_the_encoder_block_is_its_familys():
    schema = {"additionalProperties": False, "properties": {"run": {}, "encoder": {"properties": {"name": {}}}}}
    assert unknown_key({"run": "x", "zzz": 1}, schema) == ("zzz", "unknown; the keys here: run, encoder")
    assert unknown_key({"run": "x", "encoder": {"name": "vjepa2", "batch_sise": 1}}, schema) is None
