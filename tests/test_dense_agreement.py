"""Segmenters and embedders compared by what they output (issue 22): masks by the share of pixels that
agree and mIoU, embeddings by per-sample cosine of unit vectors, on real ONNX Runtime and OpenVINO runs
of tiny graphs built here (and their INT8 from edgekit's quantizer); one class everywhere or vectors
that do not depend on the input compare nothing and never pass; ``meta set embedding.threshold=``
changes one field of the record, and a threshold outside [0, 2] is refused when written and read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from edgekit.compare import CompareInputs, compare
from edgekit.compare_files import Budget, judge_budget
from edgekit.errors import BadInputError
from edgekit.matrix.cells import Timing
from edgekit.matrix.variants import Variant
from edgekit.meta import ModelMeta, read_meta
from edgekit.parity import compare_outputs, dense_agreement
from edgekit.tasks.embedding import embedding_agreement
from edgekit.tasks.segmentation import mask_agreement

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

LABELS = ("background", "circle", "square", "triangle")
SEGMENTER = ModelMeta(task="segmentation", model_name="tinyseg", input_size=(64, 64), labels=LABELS,
                      mean=(0.5,) * 3, std=(0.25,) * 3)
RECORD = {"threshold": 0.5, "distance": "euclidean", "far": 0.01}
EMBEDDER = ModelMeta(task="embedding", model_name="tinyemb", input_size=(16, 16), color="GRAY", mean=(0.5,),
                     std=(0.25,), extra={"embedding": RECORD})


def save(path: Path, nodes, inputs, outputs, weights: dict[str, np.ndarray], meta: ModelMeta) -> Path:
    from edgekit.exporters.metadata import set_metadata

    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(a if a.dtype.kind == "i" else a.astype(np.float32), n)
                               for n, a in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    set_metadata(model, meta)
    onnx.save(model, str(path))
    return path


def segmenter(path: Path, constant: bool = False) -> Path:
    """Per-pixel colour classes (N×4×64×64 scores): background 1.0, red, green and blue each 2·own channel
    minus the other two, through a ReLU layer of ±channels; ``constant``: background everywhere."""
    colours = 3 * np.eye(3) - 1
    weights = {"w1": np.concatenate([np.eye(3), -np.eye(3)])[:, :, None, None], "b1": np.zeros(6),
               "w2": np.concatenate([np.zeros((1, 6)), np.hstack([colours, -colours])])[:, :, None, None],
               "b2": np.array([1.0, 0.0, 0.0, 0.0])}
    if constant:
        weights["w2"] = np.zeros((4, 6, 1, 1))
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Conv", ["r", "w2", "b2"], ["logits"])]
    return save(path, nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 64, 64])],
                [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4, 64, 64])], weights, SEGMENTER)


def scenes(count: int, seed: int) -> np.ndarray:
    """Grey 64×64 images (noise of 3 levels) with three red, green or blue rectangles each."""
    rng = np.random.default_rng(seed)
    images = 128 + rng.normal(0, 3, (count, 64, 64, 3))
    palette = np.array([[220, 50, 50], [50, 200, 50], [50, 50, 220]])
    for image in images:
        for colour in rng.integers(0, 3, 3):
            (y, x), (h, w) = rng.integers(0, 48, 2), rng.integers(8, 24, 2)
            image[y:y + h, x:x + w] = palette[colour] + rng.normal(0, 3, (min(h, 64 - y), min(w, 64 - x), 3))
    return np.clip(images, 0, 255).astype(np.uint8)


def embedder(path: Path, constant: bool = False) -> Path:
    """Flatten, a 256×16 projection (N×16 vectors); ``constant``: the same vector for every input."""
    rng = np.random.default_rng(1)
    weights = {"w": rng.standard_normal((256, 16)) * (0.0 if constant else 0.1), "b": rng.standard_normal(16),
               "shape": np.array([-1, 256], np.int64)}
    nodes = [helper.make_node("Reshape", ["input", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["embedding"])]
    return save(path, nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 16, 16])],
                [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 16])], weights, EMBEDDER)


@pytest.fixture(scope="module")
def segmenters(tmp_path_factory) -> dict[str, Path]:
    """The segmenter, its INT8 (edgekit's quantizer, 8 scenes), a broken INT8 (class 1's weight scale
    negated: a sign error), the constant segmenter, and 16 other scenes as its inputs (.npz)."""
    from edgekit.quantize.base import QuantizeConfig, quantize
    from edgekit.quantize.calibration import preprocess

    folder = tmp_path_factory.mktemp("dense")
    fp32 = segmenter(folder / "seg.onnx")
    np.savez(folder / "calib.npz", images=scenes(8, seed=1))
    np.savez(folder / "scenes.npz", input=preprocess(list(scenes(16, seed=2)), SEGMENTER)["input"])
    int8 = quantize(fp32, folder / "int8.onnx", QuantizeConfig(calib=str(folder / "calib.npz"), calib_size=8)).path
    model = onnx.load(str(int8))
    weights = {init.name: init for init in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights
                and list(weights[n.input[0]].dims[:2]) == [4, 6])  # the class scores' weights
    scale = weights[node.input[1]]
    sign = np.float32([1, -1, 1, 1]) if numpy_helper.to_array(scale).size == 4 else np.float32(-1)
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * sign, scale.name))
    onnx.save(model, str(folder / "broken.onnx"))
    return {"fp32": fp32, "int8": int8, "broken": folder / "broken.onnx", "scenes": folder / "scenes.npz",
            "constant": segmenter(folder / "constant.onnx", constant=True)}


def on_scenes(segmenters) -> CompareInputs:
    return CompareInputs(inputs=segmenters["scenes"])


def test_int8_segmenter_is_judged_by_its_masks_not_raw_tolerances(segmenters):
    record = compare(segmenters["fp32"], ["ort-cpu"], candidate=segmenters["int8"], io=on_scenes(segmenters))
    (result,) = record.results
    masks = result.dense
    assert record.passed and record.precision == "fp32 vs int8" and result.budget.dense is masks
    assert not result.parity.passed and result.parity.max_abs > 1e-3  # raw tolerances would fail it
    assert masks.masks == 16 and masks.classes == 4 and masks.pixel_agreement >= Budget().min_pixels
    assert masks.min_pixels == Budget().min_pixels and masks.miou >= Budget().min_miou
    assert result.summary().startswith("masks: ") and " % pixels agree, mIoU " in result.summary()
    assert result.summary().endswith(": ok") and "vs reference" in result.summary()
    broken = compare(segmenters["fp32"], ["ort-cpu"], candidate=segmenters["broken"], io=on_scenes(segmenters))
    broken = broken.results[0]
    assert not broken.passed and broken.dense.pixel_agreement < 0.97 and broken.summary().endswith(": FAILED")


def test_fp32_runtimes_agree_on_masks_and_the_line_names_the_measure(segmenters, tmp_path):
    record = compare(segmenters["fp32"], ["ort-cpu", "openvino"], io=on_scenes(segmenters))
    (result,) = record.results
    assert record.passed and result.budget is None and result.dense.min_pixels == 0.99
    assert result.dense.pixel_agreement >= 0.999 and result.summary() == result.dense.summary()
    cli = run_cli("compare", str(segmenters["fp32"]), "--runtimes", "ort-cpu,openvino", "--inputs",
                  str(segmenters["scenes"]), "--json", str(tmp_path / "c.json"))
    assert cli.returncode == 0, cli.stderr
    assert "openvino vs ort-cpu: masks: " in cli.stdout and "pixels agree, mIoU" in cli.stdout.replace("\n", " ")
    row = json.loads((tmp_path / "c.json").read_text())["results"][0]
    assert row["dense"]["kind"] == "masks" and row["dense"]["passed"] and row["summary"].startswith("masks: ")


def test_one_class_everywhere_compares_nothing_and_does_not_pass(segmenters, tmp_path):
    constant = segmenters["constant"]
    record = compare(constant, ["ort-cpu", "openvino"], io=on_scenes(segmenters))  # FP32: raw tensors tried too
    (result,) = record.results
    assert not record.passed and result.dense.nothing_to_compare.startswith("every pixel of both sides' masks is")
    assert "masks: every pixel" in result.parity.note and result.parity.nothing_to_compare
    int8 = tmp_path / "constant-int8.onnx"
    model = onnx.load(str(constant))
    from edgekit.exporters.metadata import set_metadata

    set_metadata(model, read_meta(constant).with_(precision="int8"))
    onnx.save(model, str(int8))
    reduced = compare(constant, ["ort-cpu"], candidate=int8, io=on_scenes(segmenters)).results[0]
    assert not reduced.passed and reduced.summary().startswith("masks: nothing to compare: every pixel")


def test_the_matrix_judges_a_segmenter_by_its_masks(segmenters):
    from edgekit.matrix.quality import EvalData, agreement, judge_file, outputs_on
    from edgekit.runtimes import open_runtime

    data = EvalData("scenes", None, list(scenes(8, seed=3)), "scenes")
    references = {}
    for name in ("fp32", "constant"):
        with open_runtime("ort-cpu", segmenters[name]) as session:
            references[name] = outputs_on(session, SEGMENTER, data.agreement_images)
    quality = judge_file(segmenters["int8"], "ort-cpu", {}, SEGMENTER, data, references["fp32"])
    assert quality.agreement_top1_pct >= 99.0 and quality.miou >= 0.95 and quality.cosine is None
    assert quality.agreement.startswith("masks: ") and not quality.nothing_to_compare
    top1, cosine, nothing = agreement(references["constant"], references["constant"], SEGMENTER)
    assert top1 is None and cosine is None and nothing.startswith("every pixel of both sides' masks is class 0")


def test_quantize_records_and_reports_a_segmenters_mask_agreement(segmenters):
    """The INT8 file's recorded check and the precision report judge masks, not the logits' top-1."""
    from edgekit.quantize.report import MeasureConfig, measure
    from edgekit.quantize.select import build_variants

    check = read_meta(segmenters["int8"]).recipe["check"]
    assert check["agreement"].startswith("masks: ") and check["miou"] >= 0.95 and check["top1_agreement_pct"] >= 99
    quick = MeasureConfig(runtimes=("ort-cpu",), threads=1, timing=Timing(1, 3, 0.0, 3, 1))
    feeds = [{"input": np.load(segmenters["scenes"])["input"]}]
    variants = [*build_variants(segmenters["fp32"], []), Variant(segmenters["broken"], name="broken", precision="int8")]
    report = measure(variants, SEGMENTER, quick, parity_feeds=feeds)
    assert report.row("broken", "ort-cpu").top1_agreement_pct < 97 and report.row("broken", "ort-cpu").cosine is None


def test_mask_agreement_figures_and_guards():
    truth = np.zeros((2, 4, 4), np.int64)
    truth[0, :2], truth[1, :, :1] = 1, 2
    guess = truth.copy()
    guess[0, 0, 0] = 0  # one pixel of class 1 lost to class 0
    scores = lambda classes: (np.arange(3)[None, :, None, None] == classes[:, None]).astype(np.float32)  # noqa: E731
    agreement = mask_agreement(scores(truth), scores(guess), min_pixels=0.99, min_miou=0.9)
    assert agreement.pixel_agreement == pytest.approx(31 / 32) and agreement.classes == 3
    assert agreement.miou == pytest.approx((20 / 21 + 7 / 8 + 1) / 3) and not agreement.passed
    assert mask_agreement(truth, guess, 0.95, 0.9).passed  # class maps (argmax in the graph) too
    same = mask_agreement(scores(truth[:1].repeat(2, 0)), scores(guess[:1].repeat(2, 0)))
    assert same.nothing_to_compare.startswith("all 2 reference masks are the same") and not same.passed
    broken = scores(guess)
    broken[1, 0, 0, 0] = np.nan
    assert mask_agreement(scores(truth), broken).summary() == "masks: the candidate's scores hold NaN or " \
                                                              "infinite values: FAILED"
    tiny = dense_agreement(SEGMENTER, [{"logits": scores(truth) * 1e-9}], [{"logits": scores(guess) * 1e-9}])
    assert tiny.nothing_to_compare.startswith("outputs have no spread") and not tiny.passed


@pytest.fixture(scope="module")
def embedders(tmp_path_factory) -> dict[str, Path]:
    from edgekit.quantize.base import QuantizeConfig, quantize

    folder = tmp_path_factory.mktemp("embed")
    fp32 = embedder(folder / "emb.onnx")
    images = np.random.default_rng(2).integers(0, 256, (16, 16, 16, 1), dtype=np.uint8)
    np.savez(folder / "images.npz", images=images)
    np.savez(folder / "inputs.npz", input=((images[..., 0] / 255.0 - 0.5) / 0.25)[:, None].astype(np.float32))
    int8 = quantize(fp32, folder / "int8.onnx", QuantizeConfig(calib=str(folder / "images.npz"), calib_size=16)).path
    return {"fp32": fp32, "int8": int8, "constant": embedder(folder / "constant.onnx", constant=True),
            "inputs": folder / "inputs.npz"}


def test_embeddings_compare_by_per_sample_cosine(embedders):
    record = compare(embedders["fp32"], ["ort-cpu", "openvino"], batch=4)
    (result,) = record.results
    vectors = result.dense
    assert record.passed and vectors.vectors == 4 and vectors.cosine_min > 0.99999 and vectors.min_cosine == 0.999
    assert result.summary().startswith("embeddings: per-sample cosine min ") and result.summary().endswith(": ok")
    reduced = compare(embedders["fp32"], ["ort-cpu"], candidate=embedders["int8"],
                      io=CompareInputs(inputs=embedders["inputs"])).results[0]
    assert reduced.passed and reduced.dense.vectors == 16 and reduced.budget.cosine == reduced.dense.cosine_min
    assert 0.99 <= reduced.dense.cosine_min <= reduced.dense.cosine_mean < 1.0
    assert reduced.dense.max_distance == pytest.approx(np.sqrt(2 - 2 * reduced.dense.cosine_min))


def test_input_independent_vectors_compare_nothing(embedders):
    record = compare(embedders["constant"], ["ort-cpu", "openvino"], batch=4)
    (result,) = record.results
    assert not record.passed and result.dense.nothing_to_compare.startswith("all 4 reference vectors are the same")
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((8, 16))
    turned = reference + 0.2 * rng.standard_normal((8, 16))
    verdict = judge_budget(compare_outputs({"e": reference}, {"e": turned}), None, Budget(),
                           embedding_agreement(reference, turned, Budget().min_cosine))
    assert not verdict.passed and verdict.cosine < 0.99 and verdict.summary().endswith(": FAILED")
    zero = embedding_agreement(np.zeros((3, 4)), np.zeros((3, 4)))
    assert zero.nothing_to_compare.startswith("every reference vector is zero") and not zero.passed


def test_meta_set_merges_one_field_of_the_embedding_record(embedders, tmp_path):
    model = tmp_path / "emb.onnx"
    model.write_bytes(embedders["fp32"].read_bytes())
    result = run_cli("meta", "set", str(model), "embedding.threshold=0.7")
    assert result.returncode == 0, result.stderr
    assert read_meta(model).extra["embedding"] == {**RECORD, "threshold": 0.7}


@pytest.mark.parametrize("value", ["2.5", "-0.1"])
def test_a_threshold_outside_the_distance_range_is_refused_and_the_file_kept(embedders, tmp_path, value):
    model = tmp_path / "emb.onnx"
    model.write_bytes(embedders["fp32"].read_bytes())
    before = model.read_bytes()
    assert_one_line_error(run_cli("meta", "set", str(model), f"embedding.threshold={value}"),
                          "metadata key 'embedding.threshold' must be a distance from 0 to 2", value)
    assert model.read_bytes() == before


def test_a_threshold_outside_the_distance_range_is_refused_when_read(embedders, tmp_path):
    model = tmp_path / "emb.onnx"
    loaded = onnx.load(str(embedders["fp32"]))  # written by another tool
    entry = next(p for p in loaded.metadata_props if p.key == "extra")
    for value in (2.5, -0.1):
        entry.value = json.dumps({"embedding": {**RECORD, "threshold": value}})
        onnx.save(loaded, str(model))
        with pytest.raises(BadInputError, match=r"emb.onnx: metadata key 'embedding.threshold' must be a distance "
                                                rf"from 0 to 2 \(between unit vectors\), got {value}"):
            read_meta(model)
    assert_one_line_error(run_cli("meta", "show", str(model)), "embedding.threshold", "-0.1")
    # repaired as the user would: the refused record deleted, then set again
    assert_one_line_error(run_cli("meta", "set", str(model), "embedding.threshold=0.5"), "embedding.threshold")
    assert run_cli("meta", "set", str(model), "--delete", "embedding").returncode == 0
    assert "embedding" not in read_meta(model).extra
    assert run_cli("meta", "set", str(model), f"embedding={json.dumps({**RECORD, 'threshold': 0.5})}").returncode == 0
    assert read_meta(model).extra["embedding"]["threshold"] == 0.5
