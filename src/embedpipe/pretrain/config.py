"""Pretraining settings from a config: a preset name or a YAML file, then overrides (a workflow's
config block). Keys are MyJepaConfig's (the model) and PretrainSettings' (the training); ECG-JEPA's
own config names are read too, so its ViTS_mimic.yaml works as it is apart from what MyJEPA drops.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from embedpipe.pretrain.model import MyJepaConfig
from embedpipe.pretrain.settings import PretrainSettings
from embedpipe.readers.ecg import LEADS, TARGET_RATE, canonical_lead

PRESETS: dict[str, dict[str, Any]] = {
    "ViTS_mimic": {},  # the reference's: dim 384, depth 8, 6 heads; predictor 192 wide, 8 deep
    # A few seconds on a CPU: demos and tests.
    "tiny": {"dim": 32, "depth": 2, "num_heads": 2, "pred_dim": 16, "pred_depth": 2, "pred_num_heads": 2,
             "proj_hidden": 64, "proj_dim": 16, "steps": 20, "batch_size": 8, "warmup_steps": 2,
             "checkpoint_every": 10, "num_workers": 1, "log_every": 5},
}
# ECG-JEPA's names for the same settings.
ALIASES = {"learning_rate_warmup_steps": "warmup_steps", "gradient_clip": "grad_clip",
           "checkpoint_interval": "checkpoint_every", "opt_betas": "betas", "opt_eps": "eps"}
# ECG-JEPA keys MyJEPA has no use for, with the only value it can honour (None: any value, ignored).
IGNORED = {"dropout": 0.0, "attn_dropout": 0.0, "layer_scale_eps": 0.0, "gradient_accumulation_steps": 1,
           "datasets": None, "final_weight_decay": None}
NOT_SET_HERE = {"out", "data", "input_dir", "model"}  # given by the caller, not by a config


def read_config(config: str | None) -> dict[str, Any]:
    """A preset's values, or a YAML file's."""
    if not config:
        return {}
    if config in PRESETS:
        return dict(PRESETS[config])
    path = Path(config)
    if not path.is_file():
        raise ValueError(f"config {config!r}: neither a preset ({', '.join(PRESETS)}) nor a file")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config is a mapping of settings")
    return values


def build_settings(out: str | Path, data: list[str], values: dict[str, Any],
                   input_dir: str | Path | None = None) -> PretrainSettings:
    model_keys = {f.name for f in fields(MyJepaConfig)}
    train_keys = {f.name for f in fields(PretrainSettings)} - NOT_SET_HERE
    defaults = vars(MyJepaConfig()) | {f.name: f.default for f in fields(PretrainSettings)}
    model: dict[str, Any] = {}
    train: dict[str, Any] = {}
    for key, value in values.items():
        name = ALIASES.get(key, key)
        value = _typed(key, value, defaults.get(name))
        if name in model_keys:
            model[name] = value
        elif name in train_keys:
            train[name] = tuple(value) if name == "betas" else value
        elif name in IGNORED:
            if IGNORED[name] is not None and value != IGNORED[name]:
                raise ValueError(f"config {key}: {value}, but MyJEPA supports only {IGNORED[name]}")
        elif name == "sampling_frequency":
            if value != TARGET_RATE:
                raise ValueError(f"config sampling_frequency: {value}; embedpipe reads ECGs at {TARGET_RATE} Hz")
        elif name == "channels":
            if [canonical_lead(c) for c in value] != list(LEADS):
                raise ValueError(f"config channels: {value}; MyJEPA trains on the 12 standard leads in order {LEADS}")
        else:
            raise ValueError(f"config {key}: not a setting (model: {sorted(model_keys)}; training: "
                             f"{sorted(train_keys)})")
    return PretrainSettings(out=Path(out), data=list(data), input_dir=Path(input_dir) if input_dir else None,
                            model=MyJepaConfig.from_dict(model), **train)


def _typed(key: str, value: Any, default: Any) -> Any:
    """A number where the default is one (YAML reads `1e-3`, without a dot, as a string); null is the default."""
    if value is None:
        return default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"config {key}: {value!r} is not true or false")
        return value
    if isinstance(default, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"config {key}: {value!r} is not a number") from None
        if isinstance(default, float):
            return number
        if number != int(number):
            raise ValueError(f"config {key}: {value!r} is not a whole number")
        return int(number)
    return value
