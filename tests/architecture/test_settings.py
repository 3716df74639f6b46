"""Each step's settings class holds the only defaults in code: config/config.yaml's block, the schema's
`default:`s and the generated configuration reference must say the same, and a rule passes the block
as one JSON value that the script reads back whole."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
import yaml

from embedpipe.discover.settings import HfDatasetOptions, ShardOptions
from embedpipe.evaluate.settings import EvaluationSettings
from embedpipe.extract.settings import ExtractOptions
from embedpipe.plan.settings import PlanOptions
from embedpipe.publish.settings import CardOptions, UploadOptions
from embedpipe.runtime.step_settings import SettingError, add_arguments, as_json, defaults, from_args, from_block
from embedpipe.store.merge_settings import MergeOptions
from embedpipe.validate.settings import ValidationConfig

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
# block → (settings class, the class's fields the config block does not hold: set by the rule itself)
STEPS = {
    "extract": (ExtractOptions, set()),
    "validate": (ValidationConfig, {"expected_dim"}),
    "evaluate": (EvaluationSettings, set()),
    "upload": (UploadOptions, set()),
    "dataset": (CardOptions, set()),
    "shards": (ShardOptions, set()),
    "hf_dataset": (HfDatasetOptions, set()),
    "merge": (MergeOptions, set()),
    "plan": (PlanOptions, set()),
}
NOT_SETTINGS = {"enabled"}  # whether the step runs: the DAG's choice, not the step's


@pytest.mark.parametrize("block", sorted(STEPS))
def test_config_yaml_holds_each_setting_once_with_the_class_default(block):
    cls, derived = STEPS[block]
    given = {k: v for k, v in CONFIG[block].items() if k not in NOT_SETTINGS}
    names = {f.name for f in fields(cls)}
    assert set(given) <= names, f"{block}: config.yaml keys the class lacks: {set(given) - names}"
    missing = names - derived - set(given)
    assert not missing, f"{block}: settings config.yaml does not show: {missing}"
    wrong = {k: (v, defaults(cls)[k]) for k, v in given.items() if v is not None and v != defaults(cls)[k]}
    assert not wrong, f"{block}: config.yaml value ≠ the class default: {wrong}"


@pytest.mark.parametrize("block", sorted(STEPS))
def test_the_schema_states_no_default_other_than_the_class(block):
    cls, _ = STEPS[block]
    props = SCHEMA["properties"][block]["properties"]
    stated = {k: p["default"] for k, p in props.items() if "default" in p and k not in NOT_SETTINGS}
    wrong = {k: (v, defaults(cls).get(k, MISSING)) for k, v in stated.items() if defaults(cls).get(k, MISSING) != v}
    assert not wrong, f"{block}: schema default ≠ the class default: {wrong}"
    assert set(props) - NOT_SETTINGS <= {f.name for f in fields(cls)}, f"{block}: a schema key the class lacks"


def test_the_configuration_reference_states_the_class_defaults():
    reference = (REPO / "docs" / "configuration-reference.md").read_text()
    for block, (cls, derived) in STEPS.items():
        for name, value in defaults(cls).items():
            if name in derived or value is None:
                continue
            row = next((line for line in reference.splitlines() if f"`{block}.{name}`" in line), None)
            assert row is not None, f"{block}.{name} is not in the configuration reference"
            cell = row.split(" | ")[2]  # key | type | default | meaning
            assert yaml.safe_load(cell.split("`")[1]) == value, f"{block}.{name}: the reference shows {cell}"


def test_a_rule_passes_the_block_as_one_json_value_and_a_flag_given_by_hand_wins():
    parser = argparse.ArgumentParser()
    add_arguments(parser, ExtractOptions, "extract")
    block = from_block(ExtractOptions, {"save_every": 7, "num_workers": "auto", "limit": "50"}, "extract")
    assert (block.save_every, block.limit) == (7, 50)
    args = parser.parse_args(["--settings", as_json(block), "--save_every", "3", "--require_gpu"])
    again = from_args(ExtractOptions, args, "extract")
    assert (again.save_every, again.limit, again.require_gpu, again.part_mb) == (3, 50, True, 512)
    assert from_args(ExtractOptions, parser.parse_args(["--num_workers", "2"]), "extract").num_workers == 2


def test_a_setting_the_block_does_not_have_is_named():
    with pytest.raises(SettingError, match=r"extract\.save_evry: not a setting of extract"):
        from_block(ExtractOptions, {"save_evry": 5}, "extract")
    with pytest.raises(SettingError, match=r"extract\.save_every: 0 must be more than 0"):
        from_block(ExtractOptions, {"save_every": 0}, "extract")
