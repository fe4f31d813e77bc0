"""The torch figure for a user's torch source: the module itself, run like a runtime.

Its outputs go through the same pre-processing, batching and post-processing as every runtime's
(``edgekit.tasks.run``), read from the exported file's metadata, so a Δ vs torch shows only what
the export and the runtime changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


class ZooRunner:
    """A zoo module (one NCHW float32 input, one output) behind the runtime calls the task runner makes."""

    def __init__(self, module, meta: ModelMeta) -> None:
        from edgekit.runtimes.base import TensorSpec

        self.module = module
        self.inputs = {meta.input_name: TensorSpec(meta.input_name, "float32", (None, meta.channels, *meta.input_size))}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            return {"output": self.module(torch.from_numpy(next(iter(feeds.values())))).numpy()}


def zoo_metrics(name: str, meta: ModelMeta, split: Split, batch_size: int, weights: str | Path | None = None,
                seed: int = 0) -> dict[str, Any]:
    """Metrics of zoo model ``name`` built as its export was (``weights``, else random with ``seed``) on ``split``."""
    from edgekit.evaluate.metrics import make_evaluator
    from edgekit.tasks import get_task
    from edgekit.tasks.run import predict_images
    from edgekit.zoo.build import build_model

    evaluator = make_evaluator(meta)
    runner = ZooRunner(build_model(name, weights=weights, seed=seed), meta)
    evaluator.update(predict_images(runner, get_task(meta.task), meta, split.images, batch_size), list(split.targets))
    return evaluator.compute()
