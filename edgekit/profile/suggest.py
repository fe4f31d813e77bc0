"""What a layer diff suggests keeping in float, and the `edgekit quantize` command that does it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

#: quantize's defaults, left out of the printed command
RECIPE_DEFAULTS = {"mode": "int8-static", "method": "minmax", "activations": "u8"}


def suspects(layers: Sequence, first, outputs: Sequence[str], keep: int,
             reduced: bool) -> tuple[str, ...]:
    """Nodes to keep in float, most telling first: the first divergent layer's, then those making the outputs
    the disagreement comes from (``attribution``), then the layers adding the most error of their own;
    named as the candidate's graph names them (what ``quantize --exclude`` takes). Two graphs in the same
    precision get only the first divergent layer: there is nothing to keep in float."""
    if keep < 1 or (first is None and not reduced):
        return ()
    by_tensor = {layer.tensor: layer for layer in layers}
    ranked = [first] if first is not None else []
    ranked += [by_tensor[name] for name in outputs if name in by_tensor]
    if reduced:
        ranked += sorted(layers, key=lambda x: -x.introduced)
    names = [layer.candidate_node or layer.node for layer in ranked if layer.candidate_node or layer.node]
    return tuple(dict.fromkeys(names))[:keep] if reduced else tuple(dict.fromkeys(names))[:1]


def quantize_command(source: Path, quantized: Path, nodes: Sequence[str]) -> str:
    """`edgekit quantize` with the quantized file's recipe and ``nodes`` (and its own exclusions) kept in float."""
    import shlex

    from edgekit.meta import read_meta

    recipe = read_meta(quantized).recipe or {}
    parts = ["edgekit", "quantize", str(source), "-o", str(quantized.with_name(f"{quantized.stem}-keep.onnx"))]
    for flag, key in (("--mode", "mode"), ("--calib", "calib_data"), ("--calib-size", "calib_size"),
                      ("--method", "method"), ("--activations", "activations")):
        if recipe.get(key) not in (None, "", RECIPE_DEFAULTS.get(key)):
            parts += [flag, str(recipe[key])]
    if recipe.get("per_channel") is False:
        parts.append("--per-tensor")
    if not recipe.get("calib_data"):
        parts += ["--calib", "DATA"]
    for node in dict.fromkeys([*recipe.get("excluded_nodes", []), *nodes]):
        parts += ["--exclude", node]
    return " ".join(shlex.quote(part) for part in parts)
