"""The errors a user can cause. Each CLI prints one as a single line and exits with code 2.

Tracebacks are for bugs; these say what was wrong, the value, and what to do.
"""

from __future__ import annotations

EXIT_USAGE = 2  # a usage error: the message names the value and the fix
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: what was finished is saved


class UsageError(Exception):
    """A mistake in the user's input or set-up: printed as one line, exit code 2."""


class DataError(UsageError):
    """The data set could not be found, is damaged, or is not what its name says."""


class CheckpointError(UsageError):
    """A checkpoint is missing, unreadable or not one of ours."""


class EncodeError(UsageError):
    """Input the encoder cannot take, or a source without a model."""
