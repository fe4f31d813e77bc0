"""Typed records of ``ModelMeta.extra``: what readers get from a good record, a missing one and one of
the wrong shape (a hand-edited file) — never a crash, never a wrong-typed value trusted."""

import pytest

from edgekit.datasets.fit import misfit_reason
from edgekit.deployment import deployment_settings
from edgekit.meta import ModelMeta
from edgekit.meta_records import assumed_of, deployment_of, source_of
from edgekit.quantize.calibration import recorded_split

TRAINED = ModelMeta(task="classification", labels=("0", "1"), extra={"source": {
    "dataset": "digits", "dataset_options": {"classes": "0-1"}, "seed": 3, "recipe": "lenet5",
    "checkpoint": "run/best.pt", "note": "kept"}})


def test_a_training_source_reads_typed_and_drives_its_readers():
    source = source_of(TRAINED)
    assert (source.dataset, source.dataset_options, source.seed, source.recipe) == \
        ("digits", {"classes": "0-1"}, 3, "lenet5")
    assert source.trained_on("digits") and not source.trained_on("shapes") and source.raw["note"] == "kept"
    assert recorded_split(TRAINED, "digits", 0) == ({"classes": "0-1"}, 3)
    assert recorded_split(TRAINED, "shapes", 7) == ({}, 7)
    assert misfit_reason(TRAINED, "classification", ("a", "b", "c"), "digits") == ""   # its own data set


@pytest.mark.parametrize("given", [None, "digits", ["digits"], {"dataset": 5, "seed": "x", "dataset_options": 1}])
def test_a_missing_or_malformed_source_is_empty(given):
    meta = ModelMeta(extra={} if given is None else {"source": given})
    source = source_of(meta)
    assert source.dataset is None and source.seed is None and source.dataset_options == {}
    assert source.split_seed(4) == 4 and not source.trained_on("digits")
    assert recorded_split(meta, "digits", 4) == ({}, 4)


def test_deployment_and_assumed_records():
    meta = ModelMeta(extra={"deployment": {"runtime": "openvino", "precision": "int8",
                                           "options": {"threads": 2, "hint": None}}, "assumed": ["task", "color"]})
    assert deployment_of(meta).runtime == "openvino" and deployment_of(meta).precision == "int8"
    assert deployment_settings(meta) == ("openvino", {"threads": 2})
    assert assumed_of(meta) == ("task", "color")
    odd = ModelMeta(extra={"deployment": ["openvino"], "assumed": "task"})
    assert deployment_settings(odd) == ("ort-cpu", {}) and assumed_of(odd) == ()
