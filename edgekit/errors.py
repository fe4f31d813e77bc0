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


# Lines that say where an error happened or that a report follows, not why (C++ source locations,
# OpenVINO's frontend banners); a line ending in ':' only introduces the next one.
NOISE_PREFIXES = ("Exception from src/", "Check '", "FrontEnd API failed", "Model wasn't fully converted",
                  "Summary:", "Traceback (most recent call last)", "File \"")


WEAK_PREFIXES = ("[ONNX Frontend] Conversion failed for",)  # names the node; a reason usually follows


def first_line(exc: BaseException, skip: tuple[str, ...] = ()) -> str:
    """The first informative line of an exception's message, or its type name when it is empty.

    Noise (``skip``, ``NOISE_PREFIXES``, lines that end in ':' and only introduce the next) and
    weak lines (``WEAK_PREFIXES``) are passed over when a better line follows, e.g. OpenVINO's
    "-- No conversion rule found for ..." or "Argument shapes are inconsistent."."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    noise = (*skip, *NOISE_PREFIXES)
    plain = [line for line in lines if not line.startswith(noise)]
    useful = [line for line in plain if not line.endswith(":")]
    strong = [line for line in useful if not line.startswith(WEAK_PREFIXES)]
    line = (strong or useful or plain or lines or [type(exc).__name__])[0]
    return line[3:] if line.startswith("-- ") else line

class Terminated(BaseException):
    """A termination signal (SIGTERM, SIGHUP) arrived while a command ran.

    The CLI's handler raises it so the stack unwinds as for Ctrl-C and every ``finally`` block
    (temporary files, scratch folders) runs; it is a BaseException so ``except Exception`` cannot
    swallow it. Exit code: 128 + the signal number, as a shell reports a killed command.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(signal.Signals(signum).name)
