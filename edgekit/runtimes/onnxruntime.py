"""ONNX Runtime backends; the execution provider is the only thing that differs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.runtimes.base import Availability, Runtime, RuntimeOptions, TensorSpec, import_failure
from edgekit.system import cpu_name

# ONNX Runtime's type strings → numpy dtype names.
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


@dataclass(frozen=True)
class OrtOptions(RuntimeOptions):
    """``graph_optimization``: disable | basic | extended | all."""

    graph_optimization: str = "all"


class OrtRuntime(Runtime):
    """Shared ONNX Runtime logic; subclasses name their execution providers."""

    extra: ClassVar[str] = "ort"
    Options: ClassVar[type[RuntimeOptions]] = OrtOptions
    provider: ClassVar[str] = "CPUExecutionProvider"

    @classmethod
    def probe(cls) -> Availability:
        try:
            import onnxruntime as ort
        except Exception as exc:  # ImportError, or a broken binary wheel
            return import_failure(cls.name, "onnxruntime", cls.extra, exc)
        if cls.provider not in ort.get_available_providers():
            return Availability(
                cls.name,
                False,
                version=ort.__version__,
                reason=f"this onnxruntime build has no {cls.provider}",
                install=f"pip install 'edgekit[{cls.extra}]'",
            )
        return Availability(cls.name, True, version=ort.__version__, devices=cls.devices())

    @classmethod
    def devices(cls) -> tuple[str, ...]:
        return (cpu_name(),)

    def provider_options(self) -> dict[str, Any]:
        """Options passed to this runtime's execution provider."""
        return {}

    def _open(self) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        level = self.options.graph_optimization
        if level not in levels:
            raise BadInputError(f"graph_optimization must be one of {', '.join(levels)}, got '{level}'")
        options.graph_optimization_level = levels[level]
        options.log_severity_level = 3
        if self.options.threads:
            options.intra_op_num_threads = self.options.threads
            options.inter_op_num_threads = 1
        providers = [(self.provider, self.provider_options())]
        if self.provider != "CPUExecutionProvider":
            providers.append(("CPUExecutionProvider", {}))
        try:
            self._session = ort.InferenceSession(str(self.model_path), options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/InvalidProtobuf types
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInputError(f"onnxruntime cannot load {self.model_path}: {first_line}") from None
        return _specs(self._session.get_inputs()), _specs(self._session.get_outputs())

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = list(self.outputs)
        return dict(zip(names, self._session.run(names, dict(feeds))))

    def _prepare(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        # The bare session call: nothing but ORT's own work is inside the timed loop.
        run = self._session.run
        return lambda: run(None, feeds)

    def _close(self) -> None:
        del self._session

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if hasattr(self, "_session"):
            info["providers"] = self._session.get_providers()
        return info


class OrtCpuRuntime(OrtRuntime):
    """ONNX Runtime on the CPU execution provider."""

    name: ClassVar[str] = "ort-cpu"


def _specs(nodes: list[Any]) -> dict[str, TensorSpec]:
    return {
        node.name: TensorSpec(node.name, _ORT_DTYPES.get(node.type, node.type), tuple(node.shape))
        for node in nodes
    }
