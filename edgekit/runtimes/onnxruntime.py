"""ONNX Runtime backends; the execution provider is the only thing that differs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError, RuntimeUnavailableError, first_line
from edgekit.runtimes.base import STRING, Availability, Runtime, RuntimeOptions, TensorSpec, import_failure
from edgekit.system import cpu_name, physical_cores

# ONNX Runtime's element type names that differ from numpy's ("tensor(float)" → float32).
_ORT_ELEMENTS = {"float": "float32", "double": "float64", "string": STRING}
# ONNX Runtime's type-string prefixes of non-tensor values → TensorSpec.kind
_ORT_KINDS = {"seq(": "sequence", "optional(": "optional", "map(": "map"}


def ort_type(type_string: str) -> tuple[str, str]:
    """(dtype, kind) of an ONNX Runtime type string: 'tensor(uint16)' → ('uint16', 'tensor').

    Element types numpy lacks keep ORT's name (bfloat16, float8e4m3fn) and go unchecked;
    sequences, optionals and maps keep the whole type string.
    """
    if type_string.startswith("tensor(") and type_string.endswith(")"):
        element = type_string[len("tensor("):-1]
        return _ORT_ELEMENTS.get(element, element), "tensor"
    for prefix, kind in _ORT_KINDS.items():
        if type_string.startswith(prefix):
            return type_string, kind
    return type_string, "tensor"


@dataclass(frozen=True)
class OrtOptions(RuntimeOptions):
    """``graph_optimization``: disable | basic | extended | all; ``spinning``: whether intra-op
    threads spin-wait for work between runs (ONNX Runtime's default: yes). Spinning shortens
    back-to-back runs but takes the cores that pre/post-processing needs between them."""

    graph_optimization: str = "all"
    spinning: bool | None = None


class OrtRuntime(Runtime):
    """Shared ONNX Runtime logic; subclasses name their execution providers."""

    extra: ClassVar[str] = "ort"
    Options: ClassVar[type[RuntimeOptions]] = OrtOptions
    provider: ClassVar[str] = "CPUExecutionProvider"
    # InferenceSession.run is thread-safe
    concurrent_runs: ClassVar[bool] = True

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

    def execution_providers(self) -> list[tuple[str, dict[str, Any]]]:
        """(provider, options) in priority order; the CPU provider comes last as ORT's fallback."""
        providers = [(self.provider, self.provider_options())]
        if self.provider != "CPUExecutionProvider":
            providers.append(("CPUExecutionProvider", {}))
        return providers

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
        if self.options.spinning is not None:
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.options.spinning else "0")
        try:
            self._session = ort.InferenceSession(str(self.model_path), options, providers=self.execution_providers())
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/InvalidProtobuf types
            raise BadInputError(f"onnxruntime cannot load {self.model_path}: {first_line(exc)}") from None
        if self._session.get_providers()[0] != self.provider:
            # ORT falls back to the CPU silently when a provider fails to initialize.
            raise RuntimeUnavailableError(
                f"onnxruntime could not start {self.provider} for '{self.name}' "
                f"(got {', '.join(self._session.get_providers())}); check the CUDA/cuDNN/TensorRT libraries"
            )
        outputs = _specs(self._session.get_outputs())
        self._output_names = list(outputs)
        return _specs(self._session.get_inputs()), outputs

    def _run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        # InferenceSession.run is thread-safe and returns new arrays on every call.
        names = self._output_names
        if type(feeds) is not dict:
            feeds = dict(feeds)
        return dict(zip(names, self._session.run(names, feeds)))

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
        # the setting as used: ORT sizes its default intra-op pool to the physical cores
        info["threads_used"] = self.options.threads or physical_cores()
        return info


class OrtCpuRuntime(OrtRuntime):
    """ONNX Runtime on the CPU execution provider."""

    name: ClassVar[str] = "ort-cpu"

    @classmethod
    def make_options(cls, **options: Any) -> RuntimeOptions:
        made = super().make_options(**options)
        if made.device is not None and made.device.lower() != "cpu":
            raise BadInputError(f"runtime 'ort-cpu' runs on the CPU only, not '{made.device}' (for a GPU: -r ort-cuda)")
        return made


def _specs(nodes: list[Any]) -> dict[str, TensorSpec]:
    specs = {}
    for node in nodes:
        dtype, kind = ort_type(node.type)
        specs[node.name] = TensorSpec(node.name, dtype, tuple(node.shape or ()), kind)
    return specs


# ---- GPU execution providers ----------------------------------------------------------------
