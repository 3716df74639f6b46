"""The errors a family's options and model files raise: each one line naming the config key or the file."""

from __future__ import annotations


class OptionError(ValueError):
    """A config value the family cannot use; `key` is the config key (`encoder.<option>`)."""

    def __init__(self, key: str, message: str) -> None:
        self.key, self.reason = key, message
        super().__init__(f"{key}: {message}")


class ModelFileError(Exception):
    """The model could not be built or loaded from what the configuration names; str() is the log line."""


class ModelLoadError(Exception):
    """Loading the model failed; the cause is the loader's exception (see model_error)."""
