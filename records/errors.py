"""ConfigError: a setting is invalid. Torch-free and import-free, so every records module (the typed
choices, the settings checks, the config) raises the same class without importing each other."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the fix, and ``field`` holds
    the field's name (the last part of a dotted name: "lr" for "train.lr") for callers that report
    where it came from (a sweep file's table), so nobody has to parse the message."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


__all__ = ["ConfigError"]
