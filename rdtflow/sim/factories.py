"""Importing the function a "module:function" path names (sim.env factories, demo writers).

Its own module because both the registry (in the workflow's process) and every simulator
worker process build environments from such paths.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from rdtflow.errors import ConfigError

DOCS = "docs/simulators.md"


def import_object(path: str, key: str) -> Callable:
    """The function a "module:function" path names; a path that does not import is a ConfigError naming `key`."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"{key} '{path}': module '{module_name}' does not import ({error}); install it, or put its folder "
            f"on PYTHONPATH ({DOCS})"
        ) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ConfigError(f"{key} '{path}': module '{module_name}' has no function '{attribute}' ({DOCS})")
    return function
