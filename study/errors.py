"""The errors a user can cause. Each CLI prints one as a single line and exits with code 2.

Tracebacks are for bugs; these say what was wrong, the value, and what to do.
"""

from __future__ import annotations


class UsageError(Exception):
    """A mistake in the user's input or set-up: printed as one line, exit code 2."""


class DataError(UsageError):
    """The data set could not be found, is damaged, or is not what its name says."""


class CheckpointError(UsageError):
    """A checkpoint is missing, unreadable or not one of ours."""


class EncodeError(UsageError):
    """Input the encoder cannot take, or a source without a model."""
