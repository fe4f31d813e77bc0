"""The model zoo: classic CNN architectures by name, as data.

Preprocessing (input size, colour, mean/std) is part of each entry, not code,
so it can be written into the exported file's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgekit.meta import ModelMeta
from edgekit.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ZooEntry:
    """One architecture: how to build it and how its input must be prepared."""

    name: str
    builder: str
    family: str
    input_size: tuple[int, int] = (224, 224)
    min_input_size: int = 32
    color: str = "RGB"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    num_classes: int = 1000
    task: str = "classification"
    kwargs: dict[str, Any] = field(default_factory=dict)
    parameters: int = 0    # as data, so listing the zoo builds nothing (a test counts them on torch)

    def meta(self, input_size: tuple[int, int] | None = None, labels: tuple[str, ...] = ()) -> ModelMeta:
        """The metadata an export of this entry carries."""
        return ModelMeta(
            task=self.task,
            model_name=self.name,
            input_size=input_size or self.input_size,
            color=self.color,
            mean=self.mean,
            std=self.std,
            resize="center-crop" if self.num_classes == 1000 else "stretch",
            labels=labels,
        )


def _tv(name: str, family: str, min_input_size: int = 32, **kwargs: Any) -> ZooEntry:
    return ZooEntry(name, f"torchvision.models:{name}", family, min_input_size=min_input_size, kwargs=kwargs,
                    parameters=PARAMETERS[name])


# Parameter counts of each architecture as built (10 classes for LeNet-5, 1,000 for the others)
PARAMETERS = {
    "lenet5": 61706, "alexnet": 61100840, "vgg11": 132863336, "vgg13": 133047848, "vgg16": 138357544,
    "vgg19": 143667240, "googlenet": 6624904, "resnet18": 11689512, "resnet34": 21797672,
    "resnet50": 25557032, "resnext50_32x4d": 25028904, "densenet121": 7978856, "squeezenet1_1": 1235496,
    "mobilenet_v2": 3504872, "mobilenet_v3_small": 2542856, "efficientnet_b0": 5288548,
}


_ENTRIES = [
    ZooEntry(
        "lenet5", "edgekit.zoo.lenet:lenet5", "LeNet", input_size=(32, 32), min_input_size=32,
        color="GRAY", mean=(0.5,), std=(0.5,), num_classes=10, parameters=PARAMETERS["lenet5"],
    ),
    _tv("alexnet", "AlexNet", min_input_size=63),
    _tv("vgg11", "VGG"),
    _tv("vgg13", "VGG"),
    _tv("vgg16", "VGG"),
    _tv("vgg19", "VGG"),
    _tv("googlenet", "GoogLeNet", aux_logits=False, init_weights=True, transform_input=False),
    _tv("resnet18", "ResNet"),
    _tv("resnet34", "ResNet"),
    _tv("resnet50", "ResNet"),
    _tv("resnext50_32x4d", "ResNeXt"),
    _tv("densenet121", "DenseNet"),
    _tv("squeezenet1_1", "SqueezeNet", min_input_size=48),
    _tv("mobilenet_v2", "MobileNet"),
    _tv("mobilenet_v3_small", "MobileNet"),
    _tv("efficientnet_b0", "EfficientNet"),
]

ZOO: Registry[ZooEntry] = Registry("model")
for _entry in _ENTRIES:
    ZOO.add(_entry.name, _entry, aliases=(_entry.name.replace("_", "-"),))


def get_entry(name: str) -> ZooEntry:
    """The zoo entry called ``name`` (raises BadInputError with a suggestion)."""
    return ZOO.get(name)


def entries() -> list[ZooEntry]:
    return list(_ENTRIES)
