"""Where a measurement was taken: machine, OS, Python and library versions."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from edgekit import __version__
from edgekit.system import cpu_count, cpu_name


@dataclass(frozen=True)
class Environment:
    """The facts needed to tell whether two measurements are comparable."""

    cpu: str
    cpus: int
    machine: str
    os: str
    python: str
    numpy: str
    edgekit: str

    @classmethod
    def capture(cls) -> Environment:
        import numpy

        return cls(
            cpu=cpu_name(), cpus=cpu_count(), machine=platform.machine(),
            os=f"{platform.system()} {platform.release()}", python=platform.python_version(),
            numpy=numpy.__version__, edgekit=__version__,
        )
