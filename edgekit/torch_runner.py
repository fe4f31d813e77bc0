"""Torch as one more runner: a module (a zoo architecture rebuilt as its export built it, or a user's
torch source as loaded for export) behind the calls a runtime answers (``inputs``, ``run``), so the
export check, `compare` and `eval` run the torch reference one way, through the task's own pre- and
post-processing where they need predictions. Workstation tier: torch imported inside functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


class TorchRunner:
    """``run(feeds)`` → outputs named as the export names them; ``inputs`` as a runtime declares them."""

    def __init__(self, call, inputs: Mapping[str, Any]) -> None:
        self._call = call
        self.inputs = dict(inputs)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._call(feeds)

    @classmethod
    def from_loaded(cls, loaded) -> TorchRunner:
        """A user's torch source as ``exporters.user_module.load_source`` loaded it."""
        from edgekit.exporters.user_module import torch_outputs

        return cls(lambda feeds: torch_outputs(loaded, feeds), {spec.name: spec for spec in loaded.inputs})

    @classmethod
    def from_zoo(cls, name: str, input_name: str = "input", channels: int = 3, size: tuple[int, int] = (224, 224),
                 weights: str | Path | None = None, seed: int = 0, output_names: Sequence[str] = ("output",)
                 ) -> TorchRunner:
        """Zoo model ``name`` built with ``weights`` or seeded random weights, as its export was."""
        from edgekit.deps import require
        from edgekit.runtimes.base import TensorSpec
        from edgekit.zoo.build import build_model

        require("torch", "torch")
        module = build_model(name, weights=weights, seed=seed)
        spec = TensorSpec(input_name, "float32", (None, channels, *size))
        return cls(lambda feeds: module_outputs(module, feeds, output_names), {input_name: spec})

    @classmethod
    def for_source(cls, source, weights, batch: int, input_size, specs, meta=None) -> TorchRunner:
        """The reference for a parsed model source: a zoo name (the export's default seed) or a torch source."""
        from edgekit.exporters.config import ExportConfig

        if source.kind == "zoo":
            channels, size = (meta.channels, meta.input_size) if meta is not None else (3, (224, 224))
            return cls.from_zoo(source.location, channels=channels, size=size, weights=weights,
                                seed=ExportConfig().seed)
        from edgekit.exporters.user_module import load_source

        return cls.from_loaded(load_source(source, ExportConfig(batch=batch, input_size=input_size), weights, specs))


def predict_with_module(module, meta, images, output_names: Sequence[str], batch_size: int) -> list:
    """A torch module's predictions through the model's task (the numpy pre- and post-processing every
    runtime gets), so training recipes judge torch as they judge the exported file."""
    from edgekit.runtimes.base import TensorSpec
    from edgekit.tasks import get_task
    from edgekit.tasks.run import predict_images

    module.eval()
    spec = TensorSpec(meta.input_name, "float32", (None, meta.channels, *meta.input_size))
    runner = TorchRunner(lambda feeds: module_outputs(module, feeds, output_names), {meta.input_name: spec})
    return predict_images(runner, get_task(meta.task), meta, list(images), batch_size)


def module_metrics(module, meta, split, output_names: Sequence[str], batch_size: int) -> dict[str, float]:
    """The task's evaluator over ``split`` for a torch module (``predict_with_module``)."""
    from edgekit.evaluate.metrics import make_evaluator

    evaluator = make_evaluator(meta)
    evaluator.update(predict_with_module(module, meta, split.images, output_names, batch_size), list(split.targets))
    return evaluator.compute()


def module_outputs(module, feeds: Mapping[str, np.ndarray], output_names: Sequence[str]) -> dict[str, np.ndarray]:
    """A torch module's outputs on numpy feeds (in input order), named ``output_names``."""
    import torch

    tensors = [torch.from_numpy(np.ascontiguousarray(array)) for array in feeds.values()]
    with torch.inference_mode():
        result = module(*tensors)
    results = list(result) if isinstance(result, (tuple, list)) else [result]
    return {name: tensor.numpy() for name, tensor in zip(output_names, results)}
