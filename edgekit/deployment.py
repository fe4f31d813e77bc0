"""How a model file says it should be run: the runtime and options `edgekit optimize` chose and
recorded in its metadata (``extra["deployment"]``). Robot tier: standard library only."""

from __future__ import annotations

from typing import Any

from edgekit.meta import ModelMeta

DEFAULT_RUNTIME = "ort-cpu"


def deployment_settings(meta: ModelMeta) -> tuple[str, dict[str, Any]]:
    """(runtime, runtime options) recorded by `edgekit optimize` (``meta_records.deployment_of``); ONNX
    Runtime CPU with its defaults for a file that records none."""
    from edgekit.meta_records import deployment_of

    deployment = deployment_of(meta)
    if deployment.runtime is None:
        return DEFAULT_RUNTIME, {}
    return deployment.runtime, deployment.options
