"""The errors a user can fix, apart from the bugs they cannot (rdtflow.cli reports them differently).

Every stage raises one of these when the cause is the user's data, config or files: the
message names the file, key or number and what to change. Anything else that escapes a stage
is rdtflow's own fault and is reported as an internal error, with its traceback.
"""

from __future__ import annotations


class RdtflowError(Exception):
    """A problem with the user's inputs; the message says what to change."""


class ConfigError(RdtflowError, ValueError):
    """A configuration that would not train as the user wrote it."""


class MissingFile(RdtflowError, FileNotFoundError):
    """A file or folder the user named, or an earlier stage should have written, is not there."""


class BadCheckpoint(RdtflowError, ValueError):
    """A checkpoint folder rdtflow cannot use as it is (its message says why and what to do)."""
