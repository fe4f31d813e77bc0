"""How a model file says it should be run: the runtime and options `edgekit optimize` chose and
recorded in its metadata (``extra["deployment"]``). Robot tier: standard library only."""

from __future__ import annotations

from typing import Any

from edgekit.meta import ModelMeta

DEFAULT_RUNTIME = "ort-cpu"


def deployment_settings(meta: ModelMeta) -> tuple[str, dict[str, Any]]:
    """(runtime, runtime options) recorded by `edgekit optimize`; ONNX Runtime CPU with its defaults
    for a file that records none."""
    deployment = meta.extra.get("deployment")
    if not isinstance(deployment, dict) or not deployment.get("runtime"):
        return DEFAULT_RUNTIME, {}
    options = deployment.get("options") or {}
    return str(deployment["runtime"]), {str(k): v for k, v in options.items() if v is not None}
