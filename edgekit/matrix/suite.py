"""Suite files: a matrix in YAML, validated in full (with the file's line numbers) before any cell runs.

The file is read safely and boundedly (edgekit.limits: depth, aliases expanded, plain tags only) and
every number is checked against the limits the command-line flags use (threads by the one thread rule).

    name: ci
    models: [lenet5, mobilenet_v3_small]      # zoo names, .onnx/.xml files or torch sources (paths relative
      - model: nets.py:digits_net             # to the suite file); a torch source may come as a mapping with
        weights: digits.pt                    # its state_dict, input specs and metadata
        inputs: ["input:?x1x8x8"]
        meta: {task: classification, labels: [zero, one, two, ...]}
    runtimes: [ort-cpu, openvino]             # or: all
    precisions: [fp32, int8]                  # fp32 | fp16 | bf16 | int8
    batches: [1]
    threads: [2]                              # null: the runtime's default
    scenarios: [single-stream]                # single-stream | multi-stream | offline
    input_size: 64                            # export size of the zoo's ImageNet models (optional)
    options: {}                               # runtime options for every cell
    data: {classification: digits, detection: shapes}
    evaluation: {samples: 64, calib_samples: 32, agreement_samples: 16, seed: 0}
    timing: {warmup: 10, runs: 10, duration: 2.0, rounds: 3}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit import limits
from edgekit.errors import BadInputError
from edgekit.matrix.cells import PRECISIONS, SCENARIOS, Evaluation, MatrixSpec, Timing, TorchModel
from edgekit.registry import suggest

LIST_KEYS = {"models": str, "runtimes": str, "precisions": str, "batches": int, "threads": (int, type(None)),
             "scenarios": str}
KEYS = (*LIST_KEYS, "name", "input_size", "options", "data", "evaluation", "timing")
TIMING_KEYS = {"warmup": int, "runs": int, "duration": (int, float), "rounds": int}
EVALUATION_KEYS = {"samples": int, "calib_samples": int, "agreement_samples": int, "seed": int}
# the edgekit.limits entry each number is checked against (the flags' limits: one table for every door)
LIMIT_OF = {"batches": "batch", "threads": "threads", "input_size": "input_size", "warmup": "warmup", "runs": "runs",
            "duration": "duration", "rounds": "rounds", "samples": "eval_size", "calib_samples": "calib_size",
            "agreement_samples": "eval_size", "seed": "seed"}
MODEL_KEYS = ("model", "weights", "inputs", "meta")


class _Located:
    """A YAML node's value with the line it starts on, for errors that point into the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, node, message: str) -> BadInputError:
        return BadInputError(f"{self.path}:{node.start_mark.line + 1}: {message}")

    def scalar(self, node, kinds, what: str) -> Any:
        import yaml

        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, f"{what} must be {_names(kinds)}, "
                             f"got a {'list' if isinstance(node, yaml.SequenceNode) else 'mapping'}")
        value = limits.construct_yaml(yaml, node, self.path)
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        ok = any(isinstance(value, k) and not (isinstance(value, bool) and k is not bool) for k in kinds)
        if not ok:
            raise self.error(node, f"{what} must be {_names(kinds)}, got {value!r}")
        return value

    def items(self, node, what: str, allowed) -> dict[str, Any]:
        import yaml

        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping")
        found = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, str, f"a key of {what}")
            if allowed is not None and key not in allowed:
                raise self.error(key_node, f"unknown key '{key}' in {what}{suggest(key, list(allowed))} "
                                           f"(known: {', '.join(allowed)})")
            if key in found:
                raise self.error(key_node, f"key '{key}' appears twice in {what}")
            found[key] = value_node
        return found

    def values(self, node, kinds, what: str) -> list[tuple[Any, Any]]:
        """A list (or one scalar) of values of ``kinds``, each with its node."""
        import yaml

        nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if not nodes:
            raise self.error(node, f"{what} must not be empty")
        return [(self.scalar(n, kinds, f"each of {what}"), n) for n in nodes]

    def bounded(self, node, value: Any, key: str, what: str) -> None:
        """Refuse ``value`` outside the edgekit.limits range of ``key`` (NaN and infinities included)."""
        try:
            limits.check_number(LIMIT_OF[key], value, what)
        except BadInputError as exc:
            raise self.error(node, str(exc)) from None


def load_suite(path: str | Path) -> MatrixSpec:
    """The MatrixSpec of a suite file; any problem is a BadInputError naming the file and line."""
    from edgekit.store.db import require

    yaml = require("yaml", "reading a suite file")
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"suite file not found: {path}")
    root = limits.compose_yaml(yaml, path)   # safe, bounded (depth, aliases expanded), plain tags only
    where = _Located(path)
    if root is None:
        raise BadInputError(f"{path}:1: the suite is empty (it needs at least 'models')")
    top = where.items(root, "the suite", KEYS)
    if "models" not in top:
        raise where.error(root, "the suite has no 'models' list")
    lists = {key: where.values(top[key], kinds, key) for key, kinds in LIST_KEYS.items()
             if key in top and key != "models"}
    fields: dict[str, Any] = {"name": where.scalar(top["name"], str, "name") if "name" in top else path.stem}
    fields["models"] = tuple(_model(where, node, path.parent) for node in _nodes(where, top["models"], "models"))
    if "runtimes" in lists:
        fields["runtimes"] = _runtimes(where, lists["runtimes"])
    for key, choices in (("precisions", PRECISIONS), ("scenarios", SCENARIOS)):
        if key in lists:
            fields[key] = tuple(_choice(where, v, n, choices, key[:-1]) for v, n in lists[key])
    for key in ("batches", "threads"):
        if key in lists:
            for value, node in lists[key]:
                if value is not None and value < 1:
                    raise where.error(node, f"{key} must be at least 1, got {value}")
                where.bounded(node, value, key, key)
            fields[key] = tuple(v for v, _ in lists[key])
    if "input_size" in top:
        size = where.scalar(top["input_size"], int, "input_size")
        if size < 32:
            raise where.error(top["input_size"], f"input_size must be at least 32, got {size}")
        where.bounded(top["input_size"], size, "input_size", "input_size")
        fields["input_size"] = (size, size)
    if "options" in top:
        fields["options"] = _options(where, top["options"])
    fields["timing"] = _timing(where, top.get("timing"))
    fields["evaluation"] = _evaluation(where, top.get("evaluation"), top.get("data"))
    return MatrixSpec(**fields)


def _options(where: _Located, node) -> tuple[tuple[str, Any], ...]:
    """Runtime options for every cell, checked as ``-O KEY=VALUE`` is (threads by the one thread rule)."""
    options = []
    for key, value_node in where.items(node, "options", None).items():
        value = where.scalar(value_node, (str, int, float, bool), f"option {key}")
        try:
            limits.check_option(key, value)
        except BadInputError as exc:
            raise where.error(value_node, str(exc)) from None
        options.append((key, value))
    return tuple(sorted(options))


def _nodes(where: _Located, node, what: str) -> list:
    """The items of a list (or one item given alone)."""
    import yaml

    nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
    if not nodes:
        raise where.error(node, f"{what} must not be empty")
    return nodes


def _model(where: _Located, node, folder: Path) -> str | TorchModel:
    """A zoo name, a model file or a torch source; a mapping gives a torch source its weights, inputs, meta."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        return _torch_entry(where, node, folder)
    value = where.scalar(node, str, "each of models")
    if _is_torch(value):
        return _torch_model(where, node, _located(value, folder))
    if Path(value).suffix:
        candidate = Path(value) if Path(value).is_absolute() else folder / value
        if not candidate.is_file():
            raise where.error(node, f"model file not found: {value} (relative paths start at {folder})")
        return str(candidate)
    from edgekit.zoo.catalog import ZOO

    try:
        return ZOO.canonical(value)
    except BadInputError as exc:
        raise where.error(node, str(exc)) from None


def _torch_entry(where: _Located, node, folder: Path) -> TorchModel:
    import yaml

    items = where.items(node, "a model entry", MODEL_KEYS)
    if "model" not in items:
        raise where.error(node, "a model entry needs 'model' (file.py:factory, package.module:factory, .ts, .pt2)")
    value = where.scalar(items["model"], str, "model")
    weights = None
    if "weights" in items:
        text = where.scalar(items["weights"], str, "weights")
        weights = Path(text) if Path(text).is_absolute() else folder / text
        if not weights.is_file():
            raise where.error(items["weights"], f"weights file not found: {text} (relative paths start at {folder})")
    inputs = tuple(v for v, _ in where.values(items["inputs"], str, "inputs")) if "inputs" in items else ()
    meta = limits.construct_yaml(yaml, items["meta"], where.path) if "meta" in items else {}
    if not isinstance(meta, dict):
        raise where.error(items["meta"], "meta must be a mapping of metadata keys (task, labels, mean, std...)")
    return _torch_model(where, node, _located(value, folder), str(weights) if weights else None, inputs, meta,
                        items["model"])


def _torch_model(where: _Located, node, source: str, weights: str | None = None, inputs: tuple[str, ...] = (),
                 meta: dict | None = None, source_node=None) -> TorchModel:
    from edgekit.sources import parse_source

    try:
        parsed = parse_source(source)
    except BadInputError as exc:
        raise where.error(source_node or node, str(exc)) from None
    if not parsed.is_torch:
        raise where.error(source_node or node, f"{source} is not a torch source: weights, inputs and meta are for "
                                               "file.py:factory, package.module:factory, TorchScript and .pt2")
    try:
        return TorchModel.make(source, weights, inputs, meta)
    except BadInputError as exc:
        raise where.error(node, str(exc)) from None


def _is_torch(value: str) -> bool:
    from edgekit.sources import EXPORTED_PROGRAM_SUFFIXES, TORCHSCRIPT_SUFFIXES

    return _is_factory(value) or Path(value).suffix.lower() in TORCHSCRIPT_SUFFIXES + EXPORTED_PROGRAM_SUFFIXES


def _is_factory(value: str) -> bool:
    location, colon, factory = value.rpartition(":")
    return bool(colon and location and factory.isidentifier())


def _located(value: str, folder: Path) -> str:
    """A torch source with its file's path made absolute from the suite's folder (other values as given)."""
    if _is_factory(value):
        location, _, factory = value.rpartition(":")
        if location.endswith(".py") and not Path(location).is_absolute():
            return f"{folder / location}:{factory}"
        return value
    return str(folder / value) if _is_torch(value) and not Path(value).is_absolute() else value


def _runtimes(where: _Located, values: list[tuple[Any, Any]]) -> tuple[str, ...]:
    from edgekit.runtimes import RUNTIMES

    if [v for v, _ in values] == ["all"]:
        return tuple(RUNTIMES.names())
    names = []
    for value, node in values:
        try:
            names.append(RUNTIMES.canonical(value))
        except BadInputError as exc:
            raise where.error(node, str(exc)) from None
    return tuple(dict.fromkeys(names))


def _choice(where: _Located, value: str, node, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise where.error(node, f"unknown {what} '{value}'{suggest(value, list(choices))} "
                          f"(known: {', '.join(choices)})")
    return value


def _timing(where: _Located, node) -> Timing:
    if node is None:
        return Timing()
    nodes = where.items(node, "timing", TIMING_KEYS)
    values = {k: where.scalar(n, TIMING_KEYS[k], f"timing.{k}") for k, n in nodes.items()}
    for key, value in values.items():
        if value < (0 if key == "warmup" else 1) and not (key == "duration" and value > 0):
            raise where.error(node, f"timing.{key} must be {'0 or more' if key == 'warmup' else 'positive'}, "
                              f"got {value}")
        where.bounded(nodes[key], value, key, f"timing.{key}")
    from edgekit.bench.latency import LoopPlan

    plan = LoopPlan.from_options(values.get("warmup", 10), values.get("runs"), values.get("duration"))
    return Timing(plan.warmup, plan.min_runs, plan.min_duration_s, plan.max_runs, values.get("rounds", 3))


def _evaluation(where: _Located, node, data_node) -> Evaluation:
    values = {}
    if node is not None:
        nodes = where.items(node, "evaluation", EVALUATION_KEYS)
        values = {k: where.scalar(n, int, f"evaluation.{k}") for k, n in nodes.items()}
        for key, value in values.items():
            if value < (0 if key == "seed" else 1):
                raise where.error(node, f"evaluation.{key} must be positive, got {value}")
            where.bounded(nodes[key], value, key, f"evaluation.{key}")
    if data_node is not None:
        from edgekit.tasks import TASKS

        data = {}
        for task, value_node in where.items(data_node, "data", None).items():
            if task not in TASKS:
                raise where.error(value_node, f"unknown task '{task}' in data{suggest(task, TASKS.names())} "
                                              f"(known: {', '.join(TASKS.names())})")
            data[task] = where.scalar(value_node, str, f"data.{task}")
        values["data"] = data
    return Evaluation(**values)


def _names(kinds) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    words = {str: "a string", int: "an integer", float: "a number", bool: "true/false", type(None): "null"}
    return " or ".join(words.get(k, k.__name__) for k in kinds)
