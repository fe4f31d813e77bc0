"""Segmentation and embeddings end to end: train both reference models, score them on torch, every FP32
runtime and ORT INT8 (static QDQ, as `edgekit quantize` makes it), and time gallery matching.

    python benchmarks/dense_tasks.py --no-results                       # both recipes in full (a few minutes each)
    python benchmarks/dense_tasks.py --segmenter runs/seg/segmenter.onnx --embedder runs/emb/embedder.onnx
    python benchmarks/dense_tasks.py --only gallery                     # the gallery timing alone

Targets: segmenter test mIoU ≥ 0.85, runtimes within ±0.001 mIoU of torch, INT8 drop ≤ 0.01 (1 pt);
embedder (on glyph-identities: 49 known characters, the digits unseen) AUC ≥ 0.95 on the unseen
identities, runtimes within ±0.002 AUC, INT8 drop ≤ 0.01 AUC; a 1,000-entry gallery matched in ≤ 1 ms
(median of 2,000 queries). The embedder on digits-identities (5 known digits, 5 unseen) is reported
beside it with the runtime and INT8 targets only: five known identities hold it near 0.94.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sidebyside import Results, add_results_flag  # noqa: E402

TASKS = {  # part → (recipe, dataset, primary metric, min value or None, runtime tolerance, max INT8 drop)
    "segmenter": ("segmenter", "shapes-masks", "miou", 0.85, 0.001, 0.01),
    "embedder": ("embedder", "glyph-identities", "auc", 0.95, 0.002, 0.01),
    "embedder-digits": ("embedder", "digits-identities", "auc", None, 0.002, 0.01),
}
GALLERY_SIZE, QUERIES, MATCH_BUDGET_S = 1000, 2000, 1e-3


def train(part: str, seed: int, folder: Path) -> tuple[Path, float]:
    """Train ``part``'s recipe on its data set: its ONNX and the training seconds."""
    from edgekit.train import RECIPES, TrainConfig

    def progress(epoch, epochs, loss, name, metric, best):
        print(f"  {part} epoch {epoch}/{epochs}: loss {loss:.4f}, {name} {metric}", flush=True)

    recipe, dataset = TASKS[part][:2]
    result = RECIPES.get(recipe)(TrainConfig(data=dataset, output_dir=folder, seed=seed, progress=progress))
    return result.onnx, result.seconds


def score(part: str, onnx: Path, folder: Path, results: Results) -> bool:
    """Torch, every FP32 runtime and ORT INT8 on the model's test split; True when the targets are met."""
    from edgekit.evaluate.across_runtimes import compare_runtimes
    from edgekit.quantize import QuantizeConfig, quantize

    _, dataset, metric, minimum, tolerance, max_drop = TASKS[part]
    fp32 = compare_runtimes(onnx, "all")
    torch_value = fp32.reference[metric] if fp32.reference else float("nan")
    int8 = folder / f"{part}-int8.onnx"
    quantize(onnx, int8, QuantizeConfig(mode="int8-static", backend="ort", calib=dataset))
    quantized = compare_runtimes(int8, "ort-cpu", reference=False).records[0]
    rows = [("torch", fp32.reference or {})] + [(f"{r.runtime} fp32", r.metrics) for r in fp32.records]
    rows.append(("ort-cpu int8", quantized.metrics))
    names = [k for k in quantized.metrics if k != "count"]
    print(f"\n{part} on {dataset} ({fp32.split} split, {quantized.count} images)")
    print(f"{'':14s}" + "".join(f"{n:>18s}" for n in names))
    for label, metrics in rows:
        print(f"{label:14s}" + "".join(f"{metrics.get(n, float('nan')):18.4f}" for n in names))
        results.note(f"{part} {label}: " + ", ".join(f"{n} {metrics.get(n, float('nan')):.4f}" for n in names))
    worst = max(abs(r.metrics[metric] - torch_value) for r in fp32.records)
    drop = torch_value - quantized.metrics[metric]
    met = (minimum is None or torch_value >= minimum) and worst <= tolerance and drop <= max_drop
    wanted = f"≥ {minimum}" if minimum is not None else "no target: 5 known identities"
    verdict = (f"{part}: torch {metric} {torch_value:.4f} ({wanted}), runtimes within {worst:.4f} "
               f"(≤ {tolerance}), INT8 drop {drop:+.4f} (≤ {max_drop}): {'met' if met else 'MISSED'}")
    print(verdict)
    results.note(verdict)
    return met


def gallery_timing(results: Results) -> bool:
    """Median time of ``Gallery.match`` over a 1,000-entry gallery of the reference embedder's length."""
    from edgekit.gallery import Gallery
    from edgekit.train.embedder import OPTIONS

    dims = int(OPTIONS["dims"])

    rng = np.random.default_rng(0)
    gallery = Gallery(threshold=1.0)
    for index, vector in enumerate(rng.normal(size=(GALLERY_SIZE, dims))):
        gallery.add(f"person{index % 100}", vector)
    queries = rng.normal(size=(QUERIES, dims)).astype(np.float32)
    times = np.empty(QUERIES)
    for index, query in enumerate(queries):
        start = time.perf_counter()
        gallery.match(query)
        times[index] = time.perf_counter() - start
    median, p99 = np.median(times), np.percentile(times, 99)
    met = median <= MATCH_BUDGET_S
    verdict = (f"gallery match, {GALLERY_SIZE} entries × {dims}-d: median {median * 1e6:.1f} µs, "
               f"p99 {p99 * 1e6:.1f} µs (≤ {MATCH_BUDGET_S * 1e3:g} ms): {'met' if met else 'MISSED'}")
    print(verdict)
    results.note(verdict)
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segmenter", type=Path, help="score this segmenter ONNX instead of training one")
    parser.add_argument("--embedder", type=Path, help="score this glyph-identities embedder instead of training one")
    parser.add_argument("--embedder-digits", type=Path, help="score this digits-identities embedder instead")
    parser.add_argument("--only", choices=(*TASKS, "gallery"), help="run one part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="keep checkpoints, ONNX and INT8 files here")
    add_results_flag(parser)
    args = parser.parse_args()
    results = Results("dense_tasks", enabled=not args.no_results)
    output = args.output or Path(tempfile.mkdtemp(prefix="edgekit-dense-"))
    met = []
    for part in TASKS:
        if args.only not in (None, part):
            continue
        given = getattr(args, part.replace("-", "_"))
        if given is None:
            given, seconds = train(part, args.seed, output / part)
            print(f"{part} trained in {seconds:.0f} s")
            results.note(f"{part} trained in {seconds:.0f} s (seed {args.seed})")
        met.append(score(part, given, output, results))
    if args.only in (None, "gallery"):
        met.append(gallery_timing(results))
    results.write()
    print(f"files in {output}")
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
