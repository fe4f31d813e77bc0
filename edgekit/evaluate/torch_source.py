"""The torch figure for a user's torch source: the module itself, run like a runtime.

Its outputs go through the same pre-processing, batching and post-processing as every runtime's
(``edgekit.tasks.run``), read from the exported file's metadata, so a Δ vs torch shows only what
the export and the runtime changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.datasets import Split
from edgekit.inputs.specs import InputSpec
from edgekit.meta import ModelMeta
from edgekit.sources import ModelSource


class TorchRunner:
    """A loaded user model behind the runtime calls the task runner makes (``inputs``, ``run``)."""

    def __init__(self, loaded) -> None:
        self.loaded = loaded
        self.inputs: dict[str, InputSpec] = {spec.name: spec for spec in loaded.inputs}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from edgekit.exporters.user_module import torch_outputs

        return torch_outputs(self.loaded, feeds)


def source_metrics(source: ModelSource, meta: ModelMeta, split: Split, batch_size: int, dynamic_batch: bool,
                   weights: str | Path | None = None, inputs: Sequence[InputSpec] = ()) -> dict[str, Any]:
    """Metrics of the torch module ``source`` names (``weights`` loaded) on ``split``."""
    from edgekit.evaluate.metrics import make_evaluator
    from edgekit.exporters.config import ExportConfig
    from edgekit.exporters.user_module import load_source
    from edgekit.tasks import get_task
    from edgekit.tasks.run import predict_images

    loaded = load_source(source, ExportConfig(dynamic_batch=dynamic_batch), weights, inputs)
    evaluator = make_evaluator(meta)
    predictions = predict_images(TorchRunner(loaded), get_task(meta.task), meta, split.images, batch_size)
    evaluator.update(predictions, list(split.targets))
    return evaluator.compute()


@dataclass(frozen=True)
class ZooRebuild:
    """A zoo module as its export built it: ``weights`` (a state_dict file) or random with ``seed``."""

    name: str
    weights: str | None = None
    seed: int = 0

    @property
    def label(self) -> str:
        return f"zoo {self.name} ({f'weights {self.weights}' if self.weights else f'random weights, seed {self.seed}'})"

    def build(self):
        from edgekit.zoo.build import build_model

        return build_model(self.name, weights=self.weights, seed=self.seed)


def zoo_rebuild(source: Mapping[str, Any], weights: str | Path | None = None) -> ZooRebuild | str:
    """How to rebuild the zoo module an export's ``source`` record names, or why it cannot be: an export
    from a weights file needs that file (``weights``, checked by digest); a random one, its seed."""
    import re

    from edgekit.hashing import weights_digest

    name, recorded = str(source["zoo"]), str(source.get("weights", ""))
    seeded = re.fullmatch(r"random\(seed=(-?\d+)\)", recorded)   # the record before the seed had its own field
    seed = source.get("seed", int(seeded.group(1)) if seeded else None)
    if weights is not None:
        if seed is not None or weights_digest(weights) != recorded:
            return f"--weights {weights} are not the weights the model was exported with"
        return ZooRebuild(name, str(weights))
    if not isinstance(seed, int):
        return f"the model was exported from zoo {name} with a weights file: give it with --weights"
    return ZooRebuild(name, seed=seed)


class ZooRunner:
    """A zoo module (one NCHW float32 input, one output) behind the runtime calls the task runner makes."""

    def __init__(self, module, meta: ModelMeta) -> None:
        from edgekit.runtimes.base import TensorSpec

        self.module = module
        self.inputs = {meta.input_name: TensorSpec(meta.input_name, "float32", (None, meta.channels, *meta.input_size))}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return module_outputs(self.module, feeds, ["output"])


def module_outputs(module, feeds: Mapping[str, np.ndarray], output_names: Sequence[str]) -> dict[str, np.ndarray]:
    """A torch module's outputs on numpy feeds (in input order), named ``output_names``."""
    import torch

    tensors = [torch.from_numpy(np.ascontiguousarray(array)) for array in feeds.values()]
    with torch.inference_mode():
        result = module(*tensors)
    results = list(result) if isinstance(result, (tuple, list)) else [result]
    return {name: tensor.numpy() for name, tensor in zip(output_names, results)}


def zoo_metrics(rebuild: ZooRebuild, meta: ModelMeta, split: Split, batch_size: int) -> dict[str, Any]:
    """Metrics of the rebuilt zoo module on ``split``, through the task's own pre/post-processing."""
    from edgekit.evaluate.metrics import make_evaluator
    from edgekit.tasks import get_task
    from edgekit.tasks.run import predict_images

    evaluator = make_evaluator(meta)
    runner = ZooRunner(rebuild.build(), meta)
    evaluator.update(predict_images(runner, get_task(meta.task), meta, split.images, batch_size), list(split.targets))
    return evaluator.compute()
