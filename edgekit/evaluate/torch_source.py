"""The torch figure of `eval`: a user's torch source or a rebuilt zoo module, run by
``edgekit.torch_runner.TorchRunner`` like a runtime.

Its outputs go through the same pre-processing, batching and post-processing as every runtime's
(``edgekit.tasks.run``), read from the exported file's metadata, so a Δ vs torch shows only what
the export and the runtime changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.datasets import Split
from edgekit.inputs.specs import InputSpec
from edgekit.meta import ModelMeta
from edgekit.source_kinds import ModelSource


def source_metrics(source: ModelSource, meta: ModelMeta, split: Split, batch_size: int, dynamic_batch: bool,
                   weights: str | Path | None = None, inputs: Sequence[InputSpec] = ()) -> dict[str, Any]:
    """Metrics of the torch module ``source`` names (``weights`` loaded) on ``split``."""
    from edgekit.evaluate.metrics import make_evaluator
    from edgekit.exporters.config import ExportConfig
    from edgekit.exporters.user_module import load_source
    from edgekit.tasks import get_task
    from edgekit.tasks.run import predict_images
    from edgekit.torch_runner import TorchRunner

    loaded = load_source(source, ExportConfig(dynamic_batch=dynamic_batch), weights, inputs)
    evaluator = make_evaluator(meta)
    predictions = predict_images(TorchRunner.from_loaded(loaded), get_task(meta.task), meta, split.images,
                                 batch_size)
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


def zoo_metrics(rebuild: ZooRebuild, meta: ModelMeta, split: Split, batch_size: int) -> dict[str, Any]:
    """Metrics of the rebuilt zoo module on ``split``, through the task's own pre/post-processing."""
    from edgekit.evaluate.metrics import make_evaluator
    from edgekit.tasks import get_task
    from edgekit.tasks.run import predict_images
    from edgekit.torch_runner import TorchRunner

    evaluator = make_evaluator(meta)
    runner = TorchRunner.from_zoo(rebuild.name, meta.input_name, meta.channels, meta.input_size, rebuild.weights,
                                  rebuild.seed)
    evaluator.update(predict_images(runner, get_task(meta.task), meta, split.images, batch_size), list(split.targets))
    return evaluator.compute()
