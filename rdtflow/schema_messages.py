"""One readable line for a JSON-schema error: the key path, what is wrong, what to write.

jsonschema's own text ("Additional properties are not allowed ('lr_shceduler' was
unexpected)", followed by a dump of the schema) makes the user hunt for the key; a run
config is written by hand, so the message says ``train.lr_shceduler: unknown key; did you
mean lr_scheduler?`` instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from jsonschema import ValidationError
from jsonschema.exceptions import best_match

_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}
_BOUND_WORDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))


def key_path(prefix: str, parts: Iterable[str | int]) -> str:
    """``train.augment.image``, ``split.held_out[0]``; the empty path is the top level."""
    path = prefix
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "the top level"


def expected(schema: dict) -> str:
    """What a schema node accepts, in words: ``an integer >= 1``, ``one of cpu, gpu``."""
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches:
        return " or ".join(expected(branch) for branch in branches)
    if "enum" in schema:
        return "one of " + ", ".join(str(value) for value in schema["enum"])
    if "const" in schema:
        return str(schema["const"])
    types = schema.get("type", [])
    words = " or ".join(_TYPE_WORDS[name] for name in ([types] if isinstance(types, str) else types)) or "a value"
    bounds = [f"{symbol} {schema[key]}" for key, symbol in _BOUND_WORDS if key in schema]
    if schema.get("minItems"):
        bounds.append(f"of at least {schema['minItems']} item(s)")
    return f"{words} {' and '.join(bounds)}" if bounds else words


def _suggestion(word: Any, choices: list[Any]) -> str:
    """'did you mean X?' for a near miss, else the valid choices."""
    close = difflib.get_close_matches(str(word), [str(choice) for choice in choices], n=1)
    return f"did you mean {close[0]}?" if close else f"valid: {', '.join(str(choice) for choice in choices)}"


def _shown(value: Any) -> str:
    """The offending value, short enough for one line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _branch_error(error: ValidationError) -> ValidationError | None:
    """For a value that matches no alternative: the error inside the one alternative of its
    own shape (an unknown key in a mapping, a wrong item in a list), where there is one."""
    inside = [sub for sub in error.context if sub.relative_path or sub.validator in ("additionalProperties", "required")]
    return best_match(inside) if inside else None


def describe(error: ValidationError, prefix: str = "") -> str:
    """The message for one error; ``prefix`` is the key the validated mapping sits under."""
    if error.validator in ("oneOf", "anyOf") and (inner := _branch_error(error)) is not None:
        return describe(inner, prefix)
    parts = list(error.absolute_path)
    if error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        unknown = [key for key in error.instance if key not in known]
        return "; ".join(
            f"{key_path(prefix, [*parts, key])}: unknown key; {_suggestion(key, known)}" for key in unknown
        )
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return "; ".join(f"{key_path(prefix, [*parts, key])}: missing; this key is required" for key in missing)
    path = key_path(prefix, parts)
    if error.validator == "enum":
        return f"{path}: {_shown(error.instance)} is not allowed; {_suggestion(error.instance, error.validator_value)}"
    return f"{path}: got {_shown(error.instance)}, expected {expected(error.schema)}"
