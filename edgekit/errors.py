"""Exception types raised by the library; the CLI maps them to one line and an exit code."""


class EdgekitError(Exception):
    """Base class for every error edgekit raises on purpose."""

    exit_code = 2


class BadInputError(EdgekitError, ValueError):
    """The user gave something edgekit cannot use (missing file, bad name, bad shape)."""


class RuntimeUnavailableError(EdgekitError):
    """A runtime was asked for but its package or device is missing."""


class CheckFailedError(EdgekitError):
    """A check the user asked for failed (export validation, compare, regression gate)."""

    exit_code = 1
