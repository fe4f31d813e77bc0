"""What `edgekit optimize` searches: the model, the budget, the data, the runtimes and settings, the time.

Checked when made, by the limits the flags use (edgekit.limits), so a config built in Python is refused
as the command line is: NaN budgets, thread counts past the one thread rule, huge sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.errors import BadInputError
from edgekit.limits import check_number, check_numbers, check_timing
from edgekit.matrix.cells import Timing, TorchModel
from edgekit.optimize.measure import FULL, QUICK


@dataclass(frozen=True)
class OptimizeConfig:
    """What to search. ``data`` is both calibration and evaluation data unless ``calib``/``eval`` say
    otherwise; ``max_drop`` is in points (top-1 %, mAP x 100; top-1 disagreement % without labels)."""

    model: str
    max_drop: float
    torch_model: TorchModel | None = None   # for a torch source: its weights, inputs, meta (``model`` is its name)
    data: str | None = None
    calib: str | None = None
    eval: str | None = None
    runtimes: tuple[str, ...] = ("ort-cpu", "openvino")
    allow_batch: int | None = None
    scenario: str = "single-stream"
    time_limit_s: float | None = None
    eval_size: int = 300
    calib_size: int = 64
    sensitivity_nodes: int = 12      # layers probed one at a time (the rest are not tried)
    sensitivity_samples: int = 64    # eval subset of the probe
    fallback_layers: int = 3         # at most this many sensitive layers kept in float
    threads: tuple[int | None, ...] | None = None   # None: the runtime's default, 1, half the cores
    input_size: tuple[int, int] | None = None
    quick: Timing = QUICK
    full: Timing = FULL
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_drop < 0:
            raise BadInputError(f"--max-drop must be 0 or more, got {self.max_drop}")
        if self.allow_batch is not None and self.allow_batch < 2:
            raise BadInputError(f"--allow-batch must be at least 2, got {self.allow_batch}")
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            raise BadInputError(f"--time-limit must be positive, got {self.time_limit_s}")
        if self.eval_size < 1 or self.calib_size < 1:
            raise BadInputError("--eval-size and --calib-size must be at least 1")
        if not self.runtimes:
            raise BadInputError("--runtimes is empty")
        if self.scenario not in ("single-stream", "offline"):
            raise BadInputError(f"--scenario must be single-stream or offline, got '{self.scenario}'")
        self._check_limits()

    def _check_limits(self) -> None:
        """NaN, infinities and huge values refused by the limits every door shares (edgekit.limits)."""
        check_numbers(max_drop=self.max_drop, allow_batch=self.allow_batch, time_limit=self.time_limit_s,
                      eval_size=self.eval_size, calib_size=self.calib_size, seed=self.seed)
        for count in self.threads or ():
            check_numbers(threads=count)
        for side in self.input_size or ():
            check_number("input_size", side, "--input-size")
        check_timing(self.quick, "quick timing")
        check_timing(self.full, "full timing")
