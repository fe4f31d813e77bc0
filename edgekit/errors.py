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


def first_line(exc: BaseException, skip: tuple[str, ...] = ()) -> str:
    """The first informative line of an exception's message (lines starting with ``skip`` are
    noise, e.g. C++ source locations), or its type name when the message is empty."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(skip)] if skip else lines
    return (useful or lines or [type(exc).__name__])[0]
