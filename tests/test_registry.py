import pytest

from edgekit.errors import BadInputError
from edgekit.registry import Registry
from edgekit.runtimes import RUNTIMES, get_runtime
from edgekit.zoo import get_entry


def test_typo_gets_a_suggestion():
    with pytest.raises(BadInputError, match="did you mean 'resnet18'"):
        get_entry("resnet81")
    with pytest.raises(BadInputError, match="unknown runtime 'ort-cpy' — did you mean 'ort-cpu'"):
        get_runtime("ort-cpy")


def test_aliases_resolve_to_canonical_names():
    assert get_runtime("onnxruntime").name == "ort-cpu"
    assert get_entry("mobilenet-v2").name == "mobilenet_v2"
    assert RUNTIMES.canonical("ORT-CPU") == "ort-cpu"


def test_listing_names_imports_nothing():
    registry = Registry("thing")
    registry.add("lazy", "edgekit_module_that_does_not_exist:Thing")
    assert registry.names() == ["lazy"]
    with pytest.raises(ModuleNotFoundError):
        registry.get("lazy")
