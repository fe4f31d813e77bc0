"""Training recipe ``detector``: the small CenterNet-style detector on shapes (or a COCO file).

Heatmap targets are Gaussians at each box centre (stride 4) trained with CenterNet's
penalty-reduced focal loss; log size and centre offset are regressed with L1 plus a GIoU
term on the decoded boxes, at the cells around each centre (weighted by the Gaussian).
The result is checkpointed, evaluated with COCO mAP on the
held-out split and exported to ONNX with the decoding parameters in its metadata.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.datasets import Split, load_split
from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.tasks.detection import DEFAULT_DECODER, DetectionTask
from edgekit.tasks.preprocess import resize
from edgekit.train.base import TrainConfig, TrainResult

INPUT_SIZE = 128
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
DEFAULTS = {"epochs": 15, "batch_size": 32, "lr": 4e-3}
# recipe options (-O KEY=VALUE): dataset sizes, model width, stop after time_limit seconds,
# validate every N epochs on eval_size val images, CPU threads, horizontal flips
OPTIONS = {"train_size": None, "val_size": None, "test_size": None, "width": 16, "features": 48,
           "time_limit": None, "eval_every": 1, "eval_size": 200, "threads": 1, "augment": True}
KINDS = {"train_size": (int, 1), "val_size": (int, 1), "test_size": (int, 1), "width": (int, 1), "features": (int, 1),
         "time_limit": (float, 0), "eval_every": (int, 0), "eval_size": (int, 1), "threads": (int, 1),
         "augment": (bool, 0)}
# One thread: on a shared 2-core machine two threads wait on each other (3× slower under load),
# and a fixed count keeps runs bitwise reproducible. ``threads`` overrides it on an idle machine.


def detector_meta(labels: tuple[str, ...], source: dict[str, Any]) -> ModelMeta:
    """Metadata of an exported detector: everything the numpy post-processing needs."""
    return ModelMeta(task="detection", model_name="detector", input_size=(INPUT_SIZE, INPUT_SIZE), color="RGB",
                     mean=MEAN, std=STD, resize="letterbox", labels=tuple(labels),
                     extra={"decoder": dict(DEFAULT_DECODER), "source": source})


def _options(config: TrainConfig) -> dict[str, Any]:
    from edgekit.train.loop import check_config

    check_config(config, OPTIONS, KINDS)
    if config.transfer_from is not None:
        raise BadInputError("the detector recipe trains from scratch; it takes no --transfer-from")
    if config.optimizer not in (None, "adam"):
        raise BadInputError(f"the detector recipe trains with adam (AdamW), not '{config.optimizer}'")
    return {**OPTIONS, **config.options}


def dataset_options(config: TrainConfig, options: dict[str, Any]) -> dict[str, Any]:
    """What ``load_split`` needs besides the name and seed to rebuild the same splits."""
    if config.data == "shapes":
        return {f"{s}_size": options[f"{s}_size"] for s in ("train", "val", "test") if options[f"{s}_size"]}
    if config.data.lower().endswith(".json"):
        return {"fractions": [0.8, 0.1, 0.1]}
    raise BadInputError(f"the detector trains on 'shapes' or a COCO .json file, got '{config.data}'")


def load_data(config: TrainConfig, options: dict[str, Any]) -> dict[str, Split]:
    """train/val/test splits of ``config.data`` (shapes, or a COCO .json split 80/10/10 by seed)."""
    kwargs = dataset_options(config, options)
    splits = {s: load_split(config.data, s, config.seed, **kwargs) for s in ("train", "val", "test")}
    if splits["train"].task != "detection":
        raise BadInputError(f"dataset '{config.data}' is not a detection dataset")
    return splits


def to_model_space(split: Split) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Letterbox every image to 128×128 uint8 and map its boxes the same way."""
    images = np.empty((len(split), INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    boxes, labels = [], []
    for index, (image, target) in enumerate(zip(split.images, split.targets)):
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[:, :, None]
        image = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[:, :, :3]
        if image.shape[:2] == (INPUT_SIZE, INPUT_SIZE):
            images[index], scale, shift = image, (1.0, 1.0), (0.0, 0.0)
        else:
            pixels, t = resize(image.astype(np.float32), (INPUT_SIZE, INPUT_SIZE), "letterbox")
            images[index], scale, shift = pixels.round().clip(0, 255), (t.scale_x, t.scale_y), (t.offset_x, t.offset_y)
        box = np.asarray(target["boxes"], np.float32).reshape(-1, 4) * np.tile(scale, 2) + np.tile(shift, 2)
        boxes.append(box.astype(np.float32))
        labels.append(np.asarray(target["labels"], np.int64).reshape(-1))
    return images, boxes, labels


def make_targets(boxes: list[np.ndarray], labels: list[np.ndarray], num_classes: int, stride: int = 4):
    """Heatmap (N×C×H×W), regression targets (N×4×H×W: log w, log h, offset x, y) and weights (N×H×W)."""
    cells = INPUT_SIZE // stride
    heatmap = np.zeros((len(boxes), num_classes, cells, cells), np.float32)
    regression = np.zeros((len(boxes), 4, cells, cells), np.float32)
    weight = np.zeros((len(boxes), cells, cells), np.float32)
    grid = np.arange(cells, dtype=np.float32)
    for n, (image_boxes, image_labels) in enumerate(zip(boxes, labels)):
        for box, label in zip(image_boxes / stride, image_labels):
            width, height = max(box[2] - box[0], 1e-3), max(box[3] - box[1], 1e-3)
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            px, py = min(int(cx), cells - 1), min(int(cy), cells - 1)
            sx, sy = max(width / 6 * 0.8, 0.6), max(height / 6 * 0.8, 0.6)
            gauss = np.exp(-((grid[None, :] - px) ** 2) / (2 * sx**2) - ((grid[:, None] - py) ** 2) / (2 * sy**2))
            np.maximum(heatmap[n, label], gauss, out=heatmap[n, label])
            region = (gauss > 0.3) & (gauss > weight[n])
            weight[n][region] = gauss[region]
            values = (np.log(width), np.log(height), cx - grid[None, :], cy - grid[:, None])
            for channel, value in enumerate(values):
                regression[n, channel][region] = np.broadcast_to(value, region.shape)[region]
    return heatmap, regression, weight


def detection_loss(outputs, heatmap, regression, weight):
    """CenterNet focal loss on the heatmap plus weighted L1 on log size and offset."""
    import torch

    scores, size, offset = outputs
    scores = scores.clamp(1e-4, 1 - 1e-4)
    positive = heatmap.eq(1).float()
    count = positive.sum().clamp(min=1.0)
    pos_loss = (torch.log(scores) * (1 - scores) ** 2 * positive).sum()
    neg_loss = (torch.log(1 - scores) * scores**2 * (1 - heatmap) ** 4 * (1 - positive)).sum()
    focal = -(pos_loss + neg_loss) / count
    w = weight.unsqueeze(1)
    norm = weight.sum().clamp(min=1.0)
    size_loss = ((size - regression[:, :2]).abs() * w).sum() / norm
    offset_loss = ((offset - regression[:, 2:]).abs() * w).sum() / norm
    return focal + size_loss + offset_loss + (giou_loss(size, offset, regression) * weight).sum() / norm


def giou_loss(size, offset, regression):
    """1 - GIoU between the boxes decoded at every cell and their targets (N×H×W)."""
    import torch

    rows = torch.arange(size.shape[2], dtype=size.dtype).view(1, -1, 1)
    cols = torch.arange(size.shape[3], dtype=size.dtype).view(1, 1, -1)

    def corners(log_size, centre):
        half = torch.exp(log_size.clamp(-4.0, 4.0)) / 2
        cx, cy = cols + centre[:, 0], rows + centre[:, 1]
        return cx - half[:, 0], cy - half[:, 1], cx + half[:, 0], cy + half[:, 1]

    px1, py1, px2, py2 = corners(size, offset)
    tx1, ty1, tx2, ty2 = corners(regression[:, :2], regression[:, 2:])
    inter = ((torch.min(px2, tx2) - torch.max(px1, tx1)).clamp(min=0)
             * (torch.min(py2, ty2) - torch.max(py1, ty1)).clamp(min=0))
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - inter
    hull = (torch.max(px2, tx2) - torch.min(px1, tx1)) * (torch.max(py2, ty2) - torch.min(py1, ty1))
    iou = inter / union.clamp(min=1e-6)
    return 1 - iou + (hull - union) / hull.clamp(min=1e-6)


def predict_torch(model, images: np.ndarray, meta: ModelMeta, batch_size: int = 100) -> list:
    """Run the torch model on HWC uint8 images and decode with the numpy task (as any runtime)."""
    import torch

    task = DetectionTask()
    predictions = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            chunk = list(images[start : start + batch_size])
            feeds, transforms = task.preprocess(chunk, meta)
            outputs = model(torch.from_numpy(feeds[meta.input_name]))
            named = {name: t.numpy() for name, t in zip(meta.extra["decoder"]["outputs"], outputs)}
            predictions.extend(task.postprocess(named, meta, transforms))
    return predictions


def evaluate_torch(model, split: Split, meta: ModelMeta) -> dict[str, float]:
    """COCO mAP of the torch model on ``split``."""
    from edgekit.evaluate.coco_metrics import coco_map

    predictions = predict_torch(model, split.images, meta)
    return coco_map(predictions, list(split.targets), len(meta.labels))


def train_detector(config: TrainConfig) -> TrainResult:
    """Train, evaluate on the test split, checkpoint and export the detector."""
    import torch

    from edgekit.train.loop import output_dir

    options = _options(config)
    folder = Path(config.output_dir)
    if folder.exists() and not folder.is_dir():
        raise BadInputError(f"output directory {folder} is a file")
    splits = load_data(config, options)
    checkpoint, onnx_path = folder / "detector.pt", folder / "detector.onnx"
    source = {"recipe": "detector", "checkpoint": str(checkpoint.resolve()), "dataset": config.data,
              "dataset_options": dataset_options(config, options), "seed": config.seed}
    meta = detector_meta(splits["train"].labels, source)
    with output_dir(folder):  # created and checked writable before the training; removed if it fails empty
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(int(options["threads"]))
        try:
            start = time.perf_counter()
            model, history = fit(config, options, splits, meta)
            seconds = time.perf_counter() - start
        finally:
            torch.set_num_threads(previous_threads)
        tested = evaluate_torch(model, splits["test"], meta)
        metrics = {k: tested[k] for k in ("map50", "map50_95", "map75")}
        recipe = {"recipe": "detector", "epochs": config.epochs or DEFAULTS["epochs"], "epochs_run": len(history),
                  "batch_size": config.batch_size or DEFAULTS["batch_size"], "lr": config.lr or DEFAULTS["lr"],
                  "optimizer": "adamw", "options": json.loads(json.dumps(options, default=str)),
                  "train_seconds": round(seconds, 2), "test_metrics": metrics}
        save_model(model, meta.with_(recipe=recipe), checkpoint, onnx_path, config.seed)
    return TrainResult("detector", checkpoint, onnx_path, metrics, seconds, len(history), tuple(history))


def fit(config: TrainConfig, options: dict[str, Any], splits: dict[str, Split], meta: ModelMeta):
    """Train through the shared loop (AdamW, one-cycle LR, horizontal flips, last weights kept);
    returns the model and per-epoch history."""
    import torch

    from edgekit.train.loop import FitSettings
    from edgekit.train.loop import fit as fit_loop
    from edgekit.zoo.detector import centernet_small

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    epochs = config.epochs or DEFAULTS["epochs"]
    batch_size = config.batch_size or DEFAULTS["batch_size"]
    images, boxes, labels = to_model_space(splits["train"])
    heatmap, regression, weight = (torch.from_numpy(a) for a in make_targets(boxes, labels, len(meta.labels)))
    images = torch.from_numpy(images).permute(0, 3, 1, 2)  # NHWC storage = channels_last, fast on CPU
    model = centernet_small(len(meta.labels), options["width"], options["features"])
    model = model.to(memory_format=torch.channels_last)
    steps = (len(images) + batch_size - 1) // batch_size
    mean = torch.tensor(MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD).view(1, 3, 1, 1) * 255
    val = splits["val"].take(options["eval_size"])

    def batches(epoch: int):
        order = torch.randperm(len(images), generator=generator)
        for step in range(steps):
            index = order[step * batch_size : (step + 1) * batch_size]
            batch = (images[index].float(), heatmap[index], regression[index], weight[index])
            yield _flip(*batch, generator) if options["augment"] else batch

    def loss(net, batch):
        inputs = ((batch[0] - mean) / std).contiguous(memory_format=torch.channels_last)
        return detection_loss(net(inputs), *batch[1:])

    def validate(net, epoch: int):
        if not options["eval_every"] or (epoch % options["eval_every"] and epoch != epochs):
            return None
        metrics = evaluate_torch(net, val, meta)
        return {"val_map50": metrics["map50"], "val_map50_95": metrics["map50_95"]}

    limit = float(options["time_limit"]) if options["time_limit"] else None
    settings = FitSettings(epochs=epochs, lr=config.lr or DEFAULTS["lr"], optimizer="adam", weight_decay=1e-4,
                           schedule="onecycle", warmup_fraction=0.15, metric="val_map50_95", keep_best=False,
                           time_limit_s=limit)
    result = fit_loop(model, model.parameters(), batches, steps, loss, validate, settings, config.progress)
    return model.eval(), list(result.history)


def _flip(images, heatmap, regression, weight, generator):
    """Mirror a random half of the batch left-right (offset x becomes 1 - offset x)."""
    import torch

    chosen = torch.rand(len(images), generator=generator) < 0.5
    if not chosen.any():
        return images, heatmap, regression, weight
    images, heatmap, regression, weight = images.clone(), heatmap.clone(), regression.clone(), weight.clone()
    images[chosen] = images[chosen].flip(-1)
    heatmap[chosen] = heatmap[chosen].flip(-1)
    weight[chosen] = weight[chosen].flip(-1)
    flipped = regression[chosen].flip(-1)
    flipped[:, 2] = 1 - flipped[:, 2]
    regression[chosen] = flipped
    return images, heatmap, regression, weight


def save_model(model, meta: ModelMeta, checkpoint: Path, onnx: Path, seed: int) -> None:
    """Write the checkpoint (state_dict, architecture, metadata) and the verified ONNX: both or neither."""
    from edgekit.exporters.config import ExportConfig
    from edgekit.exporters.torch_onnx import export_module
    from edgekit.fileio import atomic_path
    from edgekit.zoo.build import torch_bytes
    from edgekit.zoo.detector import OUTPUT_NAMES

    options = meta.recipe["options"] if meta.recipe else OPTIONS
    state = {"format": "edgekit-detector/1", "state_dict": model.state_dict(), "labels": list(meta.labels),
             "width": options["width"], "features": options["features"], "meta": json.dumps(asdict(meta))}
    with atomic_path(checkpoint) as temporary:
        temporary.write_bytes(torch_bytes(state))
        export_module(model.eval(), meta, onnx, ExportConfig(dynamic_batch=True, batch=2, seed=seed),
                      output_names=OUTPUT_NAMES)


def evaluate_checkpoint(
    checkpoint: str | Path, meta: ModelMeta, split: Split, batch_size: int = 64,
) -> dict[str, float]:
    """COCO mAP of the torch model in ``checkpoint`` on ``split`` (the reference for runtimes)."""
    from edgekit.evaluate.metrics import make_evaluator

    evaluator = make_evaluator(meta)
    evaluator.update(predict_torch(load_detector(checkpoint), split.images, meta, batch_size), list(split.targets))
    return evaluator.compute()


def load_detector(checkpoint: str | Path):
    """The torch model saved by ``train_detector``."""
    from edgekit.exporters.checkpoint import torch_load
    from edgekit.zoo.build import load_weights
    from edgekit.zoo.detector import centernet_small

    path = Path(checkpoint)
    state = torch_load(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != "edgekit-detector/1":
        raise BadInputError(f"{path} is not an edgekit detector checkpoint (made by `edgekit train detector`)")
    labels, width, features = state.get("labels"), state.get("width"), state.get("features")
    if not (isinstance(labels, list) and labels and isinstance(width, int) and isinstance(features, int)):
        raise BadInputError(f"checkpoint {path} lacks valid labels, width or features entries")
    model = centernet_small(len(labels), width, features)
    load_weights(model, state.get("state_dict"), f"checkpoint {path}")
    return model.eval()
