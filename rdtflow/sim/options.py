"""Turning a user's `sim.options` mapping into an environment's settings, with errors that name the key.

The options are free-form in the config schema because each environment has its own; each
environment declares them as a frozen dataclass, and this one function checks a mapping
against it, so every simulator reports a typo or a wrong type the same way. A field typed
`tuple[str, ...]` takes a YAML list of strings (builtin-pick-place's `relations`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from rdtflow.errors import ConfigError

Settings = TypeVar("Settings")
KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
LIST_KINDS = {int: "a list of integers", float: "a list of numbers", str: "a list of strings"}


def settings_from_options(cls: type[Settings], options: dict[str, Any], env: str) -> Settings:
    """`cls(**options)`, where an unknown key, a wrong type or a value `cls` refuses is a ConfigError."""
    fields = {field.name: field for field in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    for key, value in options.items():
        if key not in fields:
            raise ConfigError(
                f"sim.options.{key} is not an option of {env}; its options are {', '.join(fields)} "
                "(docs/simulators.md)"
            )
        expected = hints[key]
        if get_origin(expected) is tuple:
            item = get_args(expected)[0]
            if not isinstance(value, list) or not all(isinstance(entry, item) for entry in value):
                yaml_hint = ('; quote "on", "off", "yes" and "no": YAML reads them bare as true or false'
                             if item is str and isinstance(value, list) and any(isinstance(e, bool) for e in value) else "")
                raise ConfigError(f"sim.options.{key} of {env} is {value!r}; it must be {LIST_KINDS[item]}{yaml_hint}")
            continue
        accepted = (int, float) if expected is float else (expected,)
        if isinstance(value, bool) != (expected is bool) or not isinstance(value, accepted):
            raise ConfigError(f"sim.options.{key} of {env} is {value!r}; it must be {KINDS.get(expected, expected.__name__)}")
    try:
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in options.items()})
    except ValueError as error:
        raise ConfigError(f"sim.options of {env}: {error}") from None


def require_positive(settings: object, *names: str) -> None:
    """For a settings dataclass's __post_init__: these fields must be greater than zero."""
    for name in names:
        if getattr(settings, name) <= 0:
            raise ValueError(f"{name} must be greater than 0, not {getattr(settings, name)}")
