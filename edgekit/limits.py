"""The one validation layer for values from outside: numeric ranges, the thread rule, bounded YAML and JSON.

Every door checks through here before any work is done: command-line flags (``check_numbers``),
suite files (``matrix/suite.py``), ``Predictor(...)``/``open_runtime(...)`` keywords (runtime options,
``check_keywords``), optimize spaces and model metadata. Each refusal is a one-line BadInputError.
Standard library only (the robot tier reads metadata through ``json_problem``); yaml is passed in.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError

#: The thread rule: at most 4 threads per core (more only thrash), never capped below 16 (a small
#: machine may still test oversubscription) nor above 1024 (100,000 threads ran a machine out of memory).
THREADS_PER_CORE, THREADS_FLOOR, THREADS_CEILING = 4, 16, 1024
MAX_INPUT_SIDE = 4096   # pixels a side of an export size; a larger one allocates tens of GB before anything fails
MAX_DEPTH = 64          # nesting of a YAML document or a metadata JSON value
MAX_YAML_NODES = 200_000          # values in a YAML document (aliases expanded: a "billion laughs" is 10^9)
                                  # or in one metadata value
MAX_YAML_BYTES = 4 * 2**20
MAX_JSON_CHARS = 8 * 2**20        # one metadata value (ImageNet-21k's labels are ~0.4 MB)


def max_threads() -> int:
    """The most threads any door accepts (threads, streams, opencv_threads): see THREADS_PER_CORE."""
    return min(THREADS_CEILING, max(THREADS_FLOOR, THREADS_PER_CORE * (os.cpu_count() or 1)))


def _thread_rule() -> str:
    return f"{THREADS_PER_CORE} per core on {os.cpu_count() or 1} cores, never under {THREADS_FLOOR} " \
           f"nor over {THREADS_CEILING}"


@dataclass(frozen=True)
class Limit:
    """The accepted range of a numeric value: finite, ``low`` (exclusive if ``open_low``) to ``high``."""

    low: float
    high: float
    open_low: bool = False
    note: str = ""

    def accepts(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        return math.isfinite(value) and above and value <= self.high

    def describe(self) -> str:
        low = f"more than {_number(self.low)}" if self.open_low else f"at least {_number(self.low)}"
        return f"a number {low} and at most {_number(self.high)}" + (f" ({self.note})" if self.note else "")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


_THREADS = Limit(1, max_threads(), note=_thread_rule())

# One table for every door's numeric values (flag name without "--", dashes as underscores).
LIMITS: dict[str, Limit] = {
    "batch": Limit(1, 4096), "batch_size": Limit(1, 65536), "threads": _THREADS, "streams": _THREADS,
    "opencv_threads": Limit(0, max_threads(), note=_thread_rule()),
    "warmup": Limit(0, 1_000_000), "runs": Limit(1, 10_000_000), "duration": Limit(0, 86_400, open_low=True),
    "atol": Limit(0, 1e6), "rtol": Limit(0, 1e6), "min_cosine": Limit(-1, 1), "max_drop": Limit(0, 100),
    "eval_size": Limit(1, 10_000_000), "calib_size": Limit(1, 1_000_000), "epochs": Limit(1, 100_000),
    "lr": Limit(0, 100, open_low=True), "per_class": Limit(1, 10_000_000), "patience": Limit(0, 100_000),
    "seed": Limit(0, 2**32 - 1), "opset": Limit(1, 100), "rounds": Limit(1, 1000),
    "time_limit": Limit(0, 30 * 86_400, open_low=True), "allow_batch": Limit(2, 4096),
    "input_size": Limit(1, MAX_INPUT_SIDE),
}


def check_number(name: str, value: Any, label: str | None = None) -> None:
    """Refuse ``value`` unless ``LIMITS[name]`` accepts it (None and bools pass); ``label`` names it."""
    if value is None or isinstance(value, bool):
        return
    limit = LIMITS[name]
    if not isinstance(value, (int, float)) or not limit.accepts(value):
        raise BadInputError(f"{label or name} must be {limit.describe()}, got {value}")


def check_numbers(**values: Any) -> None:
    """Command-line flags: NaN, infinities and out-of-range values refused, named ``--flag-name``."""
    for name, value in values.items():
        check_number(name, value, f"--{name.replace('_', '-')}")


def check_keywords(**values: Any) -> None:
    """Keyword arguments of the Python API, named as given."""
    for name, value in values.items():
        check_number(name, value, name)


def check_option(name: str, value: Any) -> None:
    """A runtime option from any door: finite when a number, within ``LIMITS`` when it has a limit."""
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInputError(f"option {name} must be a finite number, got {value}")
    if name in LIMITS and isinstance(value, (int, float)):
        check_number(name, value, f"option {name}")


def check_timing(timing: Any, label: str) -> None:
    """A measurement plan (matrix Timing: warmup, min_runs, min_duration_s, max_runs, rounds) by the flags'
    limits; a duration of 0 means "runs alone decide"."""
    check_number("warmup", timing.warmup, f"{label} warmup")
    check_number("runs", timing.min_runs, f"{label} runs")
    check_number("runs", timing.max_runs, f"{label} runs")
    check_number("rounds", timing.rounds, f"{label} rounds")
    if timing.min_duration_s != 0:
        check_number("duration", timing.min_duration_s, f"{label} duration")


# ---- JSON (metadata values): robot tier, standard library only --------------------------------------
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_problem(text: str) -> str:
    """Why JSON ``text`` is too long or nests too deeply to parse safely ('' when it is not)."""
    if len(text) > MAX_JSON_CHARS:
        return f"is {len(text)} characters long (at most {MAX_JSON_CHARS})"
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return ""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode()
    depth = max(accumulate(map(_STEP.__getitem__, brackets)), default=0)
    return f"nests deeper than {MAX_DEPTH} levels (got {depth})" if depth > MAX_DEPTH else ""


def load_json(text: str, what: str) -> Any:
    """``json.loads`` of bounded ``text``; too long or too deep is a BadInputError naming ``what``
    (a json.JSONDecodeError passes through for the caller)."""
    problem = json_problem(text)
    if problem:
        raise BadInputError(f"{what} {problem}")
    return json.loads(text)


def data_problem(value: Any) -> str:
    """Why a Python value (dicts, lists, tuples) holds too many values or nests too deeply to write as
    JSON ('' when it does not); walked without recursion, so a self-containing list is refused too."""
    stack, count = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            return f"nests deeper than {MAX_DEPTH} levels"
        if count > MAX_YAML_NODES:
            return f"holds more than {MAX_YAML_NODES} values"
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for pair in item.items() for child in pair)
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
    return ""


# ---- YAML: safe, bounded, located -------------------------------------------------------------------
def load_yaml(yaml: Any, path: Path) -> Any:
    """The data of a YAML file read safely and boundedly (see ``compose_yaml``); None when empty."""
    node = compose_yaml(yaml, path)
    return None if node is None else construct_yaml(yaml, node, path)


def compose_yaml(yaml: Any, path: Path) -> Any:
    """The node tree of the YAML file ``path`` (``yaml``: the imported module), or None when empty.

    Bounded: at most MAX_YAML_BYTES, MAX_DEPTH levels and MAX_YAML_NODES values with aliases
    expanded; plain YAML tags only. Any problem is a BadInputError ``path:line: why``.
    """
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise BadInputError(f"{path}: the file is {size} bytes (at most {MAX_YAML_BYTES})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    loader = _bounded_loader(yaml)(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, problem = f":{mark.line + 1}" if mark else "", getattr(exc, "problem", None) or exc
        if getattr(exc, "too_deep", False):
            raise BadInputError(f"{path}{line}: {problem}") from None
        raise BadInputError(f"{path}{line}: not valid YAML ({problem})") from None
    finally:
        loader.dispose()
    if node is not None:
        _measure(node, {}, set(), _plain_tags(yaml), path)
    return node


def construct_yaml(yaml: Any, node: Any, path: Path) -> Any:
    """The Python value of a node from ``compose_yaml`` (safe types only)."""
    try:
        return yaml.constructor.SafeConstructor().construct_document(node)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        mark = getattr(exc, "problem_mark", None) or node.start_mark
        raise BadInputError(f"{path}:{mark.line + 1}: {getattr(exc, 'problem', None) or exc}") from None


@functools.lru_cache(maxsize=2)
def _bounded_loader(yaml: Any) -> type:
    """A SafeLoader whose composer refuses documents nesting deeper than MAX_DEPTH (before recursing)."""

    class BoundedLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.depth >= MAX_DEPTH:
                error = yaml.composer.ComposerError(None, None, f"it nests deeper than {MAX_DEPTH} levels",
                                                    self.peek_event().start_mark)
                error.too_deep = True
                raise error
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedLoader


@functools.lru_cache(maxsize=2)
def _plain_tags(yaml: Any) -> frozenset[str]:
    safe = {tag for tag in yaml.constructor.SafeConstructor.yaml_constructors if tag}
    return frozenset(safe | {"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})


def _measure(node: Any, memo: dict[int, tuple[int, int]], busy: set[int], tags: frozenset[str],
             path: Path) -> tuple[int, int]:
    """(values, levels) of ``node`` with aliases expanded, each shared node measured once."""
    key = id(node)
    if key in memo:
        return memo[key]
    if node.tag not in tags:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise _located(path, node, f"tag {tag} is not allowed (plain YAML values only)")
    if key in busy:
        raise _located(path, node, "an alias refers to the list or mapping that holds it")
    busy.add(key)
    values, levels = 1, 1
    for child in _children(node):
        child_values, child_levels = _measure(child, memo, busy, tags, path)
        values, levels = values + child_values, max(levels, child_levels + 1)
        if values > MAX_YAML_NODES:
            raise _located(path, node, f"it holds more than {MAX_YAML_NODES} values with aliases expanded "
                                       "(a YAML bomb?)")
        if levels > MAX_DEPTH:
            raise _located(path, node, f"it nests deeper than {MAX_DEPTH} levels with aliases expanded")
    busy.discard(key)
    memo[key] = (values, levels)
    return values, levels


def _children(node: Any) -> list:
    if isinstance(node.value, list):
        return [part for item in node.value for part in (item if isinstance(item, tuple) else (item,))]
    return []


def _located(path: Path, node: Any, message: str) -> BadInputError:
    return BadInputError(f"{path}:{node.start_mark.line + 1}: {message}")
