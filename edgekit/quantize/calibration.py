"""Calibration inputs: a dataset name, an image folder or an .npz, prepared by the model's own
preprocessing (its metadata) and batched as the model takes them.

Bad data fails here, before any quantizer runs: an empty folder, an .npz whose arrays do not
match the model's inputs, images whose preprocessed shape does not fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.runtimes.base import TensorSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".webp")
DEFAULT_BATCH = 8
IMAGENET_CLASSES = 1000


def model_inputs(model: Path) -> list[TensorSpec]:
    """The graph inputs of an ONNX file (initializers excluded), read with onnx (no runtime)."""
    import onnx
    from onnx import helper

    proto = onnx.load(str(model), load_external_data=False)
    initializers = {init.name for init in proto.graph.initializer}
    specs = []
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
        specs.append(TensorSpec(value.name, np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name, dims))
    return specs


def calibration_batches(
    data: str, model: Path, meta: ModelMeta, size: int, seed: int = 0, split: str = "train"
) -> list[dict[str, np.ndarray]]:
    """Up to ``size`` samples from ``data`` as feed dicts, batched as ``model`` takes them."""
    return batch_feeds(calibration_arrays(data, model, meta, size, seed, split), model_inputs(model))


def calibration_arrays(
    data: str, model: Path, meta: ModelMeta, size: int, seed: int = 0, split: str = "train"
) -> dict[str, np.ndarray]:
    """Up to ``size`` preprocessed samples from ``data``: input name → array (samples first), unbatched."""
    specs = model_inputs(model)
    path = Path(data)
    if path.suffix.lower() == ".npz":
        arrays = _npz_inputs(path, specs, meta, size)
    else:
        if path.is_dir():
            _check_folder(path, meta)
            images = _folder_images(path, size, seed)
        else:
            images = _dataset_images(data, size, seed, split, meta)
        arrays = preprocess(images, meta)
    _check_shapes(arrays, specs, data)
    return arrays


def preprocess(images: list[np.ndarray], meta: ModelMeta) -> dict[str, np.ndarray]:
    """Images → one feed dict through the task's preprocessing named in the metadata."""
    from edgekit.tasks import TASKS, get_task
    from edgekit.tasks.preprocess import preprocess_images

    if meta.task in TASKS:
        try:
            task = get_task(meta.task)
        except ImportError:  # the task's module is not in this install; its preprocessing is the default
            task = None
        if task is not None:
            return task.preprocess(images, meta)[0]
    batch, _ = preprocess_images(images, meta)
    return {meta.input_name: batch}


def batch_feeds(arrays: dict[str, np.ndarray], specs: list[TensorSpec]) -> list[dict[str, np.ndarray]]:
    """Split sample arrays into feed dicts of the model's fixed batch (last one padded), or, for a
    dynamic batch, of equal sizes up to 8 (ORT's histogram calibrators need equal batches)."""
    count = len(next(iter(arrays.values())))
    fixed = specs[0].shape[0] if specs and specs[0].shape else None
    if isinstance(fixed, int) and fixed > 0:
        step = fixed
    else:
        step = max(d for d in range(1, min(DEFAULT_BATCH, count) + 1) if count % d == 0)
    batches = []
    for start in range(0, count, step):
        feed = {}
        for name, array in arrays.items():
            chunk = array[start : start + step]
            if isinstance(fixed, int) and len(chunk) < fixed:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - len(chunk), axis=0)])
            feed[name] = np.ascontiguousarray(chunk)
        batches.append(feed)
    return batches


def _dataset_images(spec: str, size: int, seed: int, split: str, meta: ModelMeta) -> list[np.ndarray]:
    """The first ``size`` images of ``split``. For the dataset the model was trained on (its
    metadata's ``extra.source``), the split is rebuilt as in training (same seed and options,
    e.g. shapes sizes): calibration then comes from the model's own train split, and evaluation
    on its test split never sees a training image."""
    from edgekit.datasets import check_labels, load_split

    options, split_seed = recorded_split(meta, spec, seed)
    try:
        loaded = load_split(spec, split=split, seed=split_seed, **options)
    except ModuleNotFoundError as exc:
        raise BadInputError(f"calibration dataset '{spec}' is not available in this install ({exc.name})") from None
    if meta.task != "unknown" and loaded.task != meta.task:
        raise BadInputError(f"calibration dataset '{spec}' is {loaded.task} data, the model is a {meta.task} model")
    check_labels(meta, loaded.labels, spec, use="calibrate")
    if not len(loaded):
        raise BadInputError(f"calibration dataset '{spec}' has no {split} images")
    return list(loaded.images[:size])


def recorded_split(meta: ModelMeta, spec: str, seed: int) -> tuple[dict, int]:
    """(dataset options, split seed) the model was trained with when ``spec`` is its dataset, else ({}, seed)."""
    from edgekit.meta_records import source_of

    source = source_of(meta)
    if not source.trained_on(spec):
        return {}, seed
    return dict(source.dataset_options), source.split_seed(seed)


def _check_folder(folder: Path, meta: ModelMeta) -> None:
    """A folder of class folders must hold a classifier's classes. Loose images (any task) pass, and
    so does any folder for a 1000-class ImageNet model (calibrating an ImageNet architecture on one's
    own images is legitimate): that only warns on stderr."""
    import sys

    from edgekit.datasets import check_labels
    from edgekit.datasets.image_folder import list_image_folder

    if meta.task != "classification" or not meta.labels:
        return
    try:
        classes = list_image_folder(folder)[0]
    except BadInputError:  # no class folders (or one): unlabelled calibration images
        return
    try:
        check_labels(meta, classes, str(folder), use="calibrate")
    except BadInputError as exc:
        if len(meta.labels) != IMAGENET_CLASSES:
            raise
        print(f"warning: {exc}", file=sys.stderr)


def _folder_images(folder: Path, size: int, seed: int) -> list[np.ndarray]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise BadInputError(f"no calibration images ({', '.join(IMAGE_SUFFIXES)}) found in {folder}")
    if len(files) > size:
        order = np.random.default_rng(seed).permutation(len(files))[:size]
        files = [files[i] for i in sorted(order)]
    from edgekit.frames import read_image

    return [read_image(file, "calibration image") for file in files]


def _npz_inputs(path: Path, specs: list[TensorSpec], meta: ModelMeta, size: int) -> dict[str, np.ndarray]:
    """An .npz holds either the model's inputs by name (already preprocessed) or raw ``images``."""
    from edgekit.fileio import read_npz

    arrays = read_npz(path, "calibration")
    names = [spec.name for spec in specs]
    if set(names) <= set(arrays):
        selected = {name: arrays[name][:size] for name in names}
        if any(len(a) == 0 for a in selected.values()):
            raise BadInputError(f"calibration file {path} holds no samples")
        return {name: a.astype(_dtype(specs, name), copy=False) for name, a in selected.items()}
    if "images" in arrays:
        images = arrays["images"][:size]
        if not len(images):
            raise BadInputError(f"calibration file {path} holds no images")
        return preprocess(list(images), meta)
    raise BadInputError(
        f"calibration file {path} has arrays [{', '.join(sorted(arrays))}] but the model expects inputs "
        f"[{', '.join(names)}] (or an 'images' array of HxWxC uint8 images)"
    )


def _dtype(specs: list[TensorSpec], name: str) -> str:
    return next(spec.dtype for spec in specs if spec.name == name)


def _check_shapes(arrays: dict[str, np.ndarray], specs: list[TensorSpec], source: str) -> None:
    by_name = {spec.name: spec for spec in specs}
    if set(arrays) != set(by_name):
        raise BadInputError(f"calibration data gives inputs {sorted(arrays)}, model expects {sorted(by_name)}")
    for name, array in arrays.items():
        expected = by_name[name].shape
        shape = array.shape
        fits = len(shape) == len(expected) and all(
            not isinstance(dim, int) or dim == got for dim, got in zip(expected[1:], shape[1:])
        )
        if not fits or not np.issubdtype(array.dtype, np.number):
            dims = ", ".join(str(d) if d is not None else "?" for d in expected)
            raise BadInputError(
                f"calibration data from {source} gives '{name}' of shape {tuple(shape)} {array.dtype}, "
                f"model expects [{dims}]"
            )
