"""Explain a number: per-layer profiles on every runtime, side by side, and layer-wise diffs.

``profile_model`` times each layer of a model on a runtime with the runtime's own profiler (ONNX
Runtime's trace, OpenVINO's performance counters, TensorRT's IProfiler), mapped back to ONNX node
names; ``side_by_side`` joins two profiles layer by layer; ``edgekit.profile.layers_diff`` finds the
first layer where two runs of a model part. Workstation tier: onnx is imported to read graphs.
"""

from edgekit.profile.records import LayerTime, Profile
from edgekit.profile.run import PROFILERS, PairRow, profile_model, side_by_side
from edgekit.profile.timing import ProfilePlan

__all__ = ["PROFILERS", "LayerTime", "PairRow", "Profile", "ProfilePlan", "profile_model", "side_by_side"]
