"""Which model outputs the disagreement comes from: each output of the candidate replaced by the
reference's, one at a time, and the task's own agreement measured again.

Relative error per tensor says little about what a task is sensitive to: a detector's box-size output
can have the smallest error of all and still cost the most mAP, because IoU at high thresholds hangs on
it. So the outputs are judged the way compare judges the whole model: a detector by its decoded boxes
(1 − mean IoU of matched boxes, plus boxes found on one side only), anything else by the output's own
relative error. An output whose exact value removes a large share of the disagreement is one whose
layer is worth keeping in float.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: share of the disagreement an output must explain to be named
MIN_SHARE = 0.1


def output_shares(meta, reference: Sequence[Mapping[str, np.ndarray]],
                  candidate: Sequence[Mapping[str, np.ndarray]]) -> dict[str, float]:
    """Output name → share of the disagreement that goes away when that output alone is exact (0..1)."""
    names = [name for name in reference[0] if name in candidate[0]]
    base = disagreement(meta, reference, candidate)
    if not names or base <= 0:
        return {}
    shares = {}
    for name in names:
        fixed = [{**cand, name: ref[name]} for ref, cand in zip(reference, candidate)]
        shares[name] = max(0.0, (base - disagreement(meta, reference, fixed)) / base)
    return shares


def disagreement(meta, reference, candidate) -> float:
    """A detector: 1 − mean IoU of matched boxes plus the share of boxes on one side only; else the summed
    relative L2 error of the outputs."""
    if meta.task == "detection":
        from edgekit.parity import box_agreement

        try:
            boxes = box_agreement(meta, reference, candidate, 0.5, 0.05)
        except Exception:  # a detector edgekit cannot decode: fall back to the raw tensors
            boxes = None
        if boxes is not None and not boxes.nothing_to_compare:
            unmatched = (boxes.missing + boxes.extra) / max(1, boxes.reference_boxes)
            return (1.0 - boxes.mean_iou) + unmatched
    total = 0.0
    for name in reference[0]:
        ref = np.concatenate([np.asarray(r[name], np.float64).ravel() for r in reference])
        cand = np.concatenate([np.asarray(c[name], np.float64).ravel() for c in candidate])
        norm = float(np.linalg.norm(ref))
        total += float(np.linalg.norm(ref - cand)) / norm if norm > 0 else 0.0
    return total


def named_outputs(shares: Mapping[str, float]) -> list[str]:
    """Outputs explaining at least ``MIN_SHARE`` of the disagreement, largest first."""
    return [name for name, share in sorted(shares.items(), key=lambda item: -item[1]) if share >= MIN_SHARE]
