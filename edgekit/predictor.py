"""The embedding API: load an exported .onnx and run it on images, torch-free.

    from edgekit import Predictor
    with Predictor("lenet5.onnx", runtime="ort-cpu") as predict:
        predictions = predict([image])          # HxW(xC) uint8 arrays

Pre- and post-processing come from the file's metadata (task, input size, colour,
mean/std, resize mode, labels); only numpy and the chosen runtime are imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta, read_meta
from edgekit.runtimes import get_runtime
from edgekit.tasks import get_task


class Predictor:
    """A model file bound to one runtime and to the task its metadata names."""

    def __init__(self, model: str | Path, runtime: str | None = None, **runtime_options: Any) -> None:
        self.model_path = Path(model)
        self.meta: ModelMeta = read_meta(self.model_path)
        if self.meta.task == "unknown":
            raise BadInputError(f"{self.model_path} has no edgekit task metadata: export it with edgekit")
        self.task = get_task(self.meta.task)
        if runtime is None:  # what `edgekit optimize` recorded in the file, else ort-cpu
            from edgekit.deployment import deployment_settings

            runtime, recorded = deployment_settings(self.meta)
            runtime_options = {**recorded, **runtime_options}
        self.runtime = get_runtime(runtime)(self.model_path, **runtime_options)

    def __enter__(self) -> Predictor:
        self.runtime.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runtime.close()

    def __call__(self, images: Sequence[np.ndarray]) -> list[Any]:
        """Predictions for a batch of images (one per image, in order)."""
        from edgekit.tasks.run import predict_images

        if not self.runtime.is_open:
            self.runtime.open()
        return predict_images(self.runtime, self.task, self.meta, images, batch_size=max(1, len(images)))
