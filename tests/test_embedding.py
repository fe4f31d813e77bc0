"""Embeddings: the gallery (matching, threshold, bad input, speed), the numpy task, verification metrics,
the embedder recipe (smoke runs here, the targets in slow tests) and `edgekit predict --gallery`. The
identity data sets: test_identity_datasets.py."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from edgekit.errors import BadInputError
from edgekit.gallery import Gallery, identity_folders
from edgekit.meta import ModelMeta
from edgekit.tasks import get_task


def test_gallery_matches_the_nearest_identity_within_the_threshold():
    gallery = Gallery(threshold=0.5)
    gallery.add("east", [2.0, 0.0])
    gallery.add("north", [0.0, 1.0])
    gallery.add("north", [0.1, 1.0])
    assert len(gallery) == 3 and gallery.identities == ("east", "north")
    near = gallery.match([1.0, 0.2])
    assert near.name == "east" and near.accepted and near.distance == pytest.approx(np.sqrt(2 - 2 / np.hypot(1, 0.2)))
    far = gallery.match([-1.0, -1.0])
    assert not far.accepted and far.threshold == 0.5
    distances = gallery.distances([0.0, 3.0])
    assert distances["north"] == pytest.approx(0.0, abs=1e-3) and distances["east"] == pytest.approx(np.sqrt(2))


@pytest.mark.parametrize("action, fragment", [
    (lambda g: g.add("b", [1.0, 0.0, 0.0]), "different lengths"),
    (lambda g: g.match([1.0]), "different lengths"),
    (lambda g: g.add("c", [0.0, 0.0]), "zero or not finite"),
    (lambda g: g.add("", [1.0, 0.0]), "non-empty string"),
    (lambda g: g.add("d", [[1.0, 0.0]]), "1-D vector"),
])
def test_gallery_bad_input_is_one_line(action, fragment):
    gallery = Gallery()
    gallery.add("a", [1.0, 0.0])
    with pytest.raises(BadInputError, match=fragment):
        action(gallery)


@pytest.mark.parametrize("threshold", [-0.1, 2.5, float("nan"), "0.5", True])
def test_thresholds_outside_the_distance_range_are_refused(threshold):
    with pytest.raises(BadInputError, match="distance from 0 to 2"):
        Gallery(threshold=threshold)


def test_an_empty_gallery_cannot_match():
    with pytest.raises(BadInputError, match="empty"):
        Gallery().match([1.0, 0.0])


def test_a_thousand_entries_match_within_a_millisecond():
    rng = np.random.default_rng(0)
    gallery = Gallery(threshold=1.0)
    for index, vector in enumerate(rng.normal(size=(1000, 64))):
        gallery.add(f"id{index % 50}", vector)
    queries = rng.normal(size=(200, 64)).astype(np.float32)
    times = []
    for query in queries:
        start = time.perf_counter()
        gallery.match(query)
        times.append(time.perf_counter() - start)
    assert np.median(times) < 1e-3, np.median(times)


def test_gallery_folders_need_two_identities_with_images(tmp_path):
    image = b"P5 4 4 255\n" + bytes(16)
    for name in ("alice", "bob"):
        (tmp_path / "g" / name).mkdir(parents=True)
    (tmp_path / "g" / "alice" / "1.pgm").write_bytes(image)
    with pytest.raises(BadInputError, match="one identity"):
        identity_folders(tmp_path / "g")
    (tmp_path / "g" / "bob" / "1.pgm").write_bytes(image)
    assert list(identity_folders(tmp_path / "g")) == ["alice", "bob"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no folder of images"):
        identity_folders(tmp_path / "empty")
    with pytest.raises(BadInputError, match="one folder of images per identity; .*1.pgm is a file"):
        identity_folders(tmp_path / "g" / "bob" / "1.pgm")


def test_task_returns_unit_vectors_and_refuses_maps():
    task, meta = get_task("embedding"), ModelMeta(task="embedding")
    results = task.postprocess({"embedding": np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)}, meta, [None, None])
    assert results[0].vector.tolist() == pytest.approx([0.6, 0.8]) and results[0].norm == pytest.approx(5.0)
    assert results[1].vector.tolist() == [0.0, 0.0] and results[0].summary() == "2-d embedding (norm 5)"
    pooled = task.postprocess({"x": np.ones((1, 4, 1, 1), np.float32)}, meta, [None])[0]
    assert pooled.vector.shape == (4,)
    with pytest.raises(BadInputError, match="one vector per image"):
        task.postprocess({"x": np.ones((1, 4, 2, 2), np.float32)}, meta, [None])
    with pytest.raises(BadInputError, match="one vector per image"):
        task.postprocess({"x": np.ones((1, 4), np.int64)}, meta, [None])


def test_task_with_a_gallery_labels_each_vector():
    gallery = Gallery(threshold=0.3)
    gallery.add("x", [1.0, 0.0])
    gallery.add("y", [0.0, 1.0])
    result = get_task("embedding", gallery=gallery).postprocess({"e": np.array([[0.0, 2.0]], np.float32)},
                                                                ModelMeta(task="embedding"), [None])[0]
    assert result.match.name == "y" and result.summary() == "y (distance 0.000, accepted)"
    record = result.to_dict()
    assert record["identity"] == "y" and record["distances"] == {"x": pytest.approx(1.41421, abs=1e-4), "y": 0.0}


def test_verification_metrics_match_exact_pair_counts():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    from edgekit.evaluate.dense_metrics import pair_statistics

    rng = np.random.default_rng(1)
    identities = rng.integers(0, 6, 300)
    vectors = rng.normal(size=(6, 16))[identities] + rng.normal(size=(300, 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    stats = pair_statistics(vectors, identities, threshold=1.0)
    upper = np.triu_indices(300, 1)
    distance = np.sqrt(np.maximum(2 - 2 * vectors @ vectors.T, 0))[upper]
    same = (identities[:, None] == identities[None, :])[upper]
    assert stats["auc"] == pytest.approx(sklearn_metrics.roc_auc_score(same, -distance), abs=1e-4)
    assert stats["tar_at_threshold"] == pytest.approx(np.mean(distance[same] <= 1.0))
    assert stats["far_at_threshold"] == pytest.approx(np.mean(distance[~same] <= 1.0))
    assert np.mean(distance[~same] <= stats["threshold_at_far"]) <= 0.0101
    nearest = np.sqrt(np.maximum(2 - 2 * vectors @ vectors.T, 0)) + np.eye(300) * 9
    assert stats["top1"] == pytest.approx(np.mean(identities[nearest.argmin(1)] == identities))
    with pytest.raises(BadInputError, match="two identities"):
        pair_statistics(vectors[:3], np.zeros(3, np.int64))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    from edgekit.train import RECIPES, TrainConfig

    seen = []
    config = TrainConfig(data="digits-identities", output_dir=tmp_path_factory.mktemp("emb"), seed=0, epochs=2,
                         options={"per_identity": 4, "dims": 8}, progress=lambda *args: seen.append(args))
    return RECIPES.get("embedder")(config), seen


def test_embedder_smoke_run_records_its_threshold(smoke):
    from edgekit.meta import read_meta

    result, seen = smoke
    assert [args[0] for args in seen] == [1, 2] and seen[0][3] == "val_auc"
    meta = read_meta(result.onnx)
    assert meta.task == "embedding" and meta.color == "GRAY" and meta.extra["source"]["dataset"] == "digits-identities"
    assert 0 < meta.extra["embedding"]["threshold"] <= 2 and meta.extra["embedding"]["far"] == 0.01
    assert {"test_auc", "test_tar_at_far_1pct", "test_top1_retrieval", "test_tar_at_threshold"} <= set(result.metrics)


def test_embedder_trains_on_glyph_identities_and_eval_judges_it_on_its_unseen_characters(tmp_path):
    pytest.importorskip("cv2")
    from edgekit.meta import read_meta
    from edgekit.train import RECIPES, TrainConfig

    config = TrainConfig(data="glyph-identities", output_dir=tmp_path, seed=0, epochs=1,
                         options={"per_identity": 4, "dims": 8, "known": "ABCDEF", "unseen": "0123"}, progress=False)
    result = RECIPES.get("embedder")(config)
    meta = read_meta(result.onnx)
    assert meta.extra["source"]["dataset"] == "glyph-identities"
    assert meta.extra["source"]["dataset_options"] == {"known": "ABCDEF", "unseen": "0123"}
    assert meta.extra["embedding"]["chosen_on"] == "val pairs of identities ABCDEF"
    assert 0.5 < result.metrics["test_auc"] <= 1
    run = run_cli("eval", str(result.onnx), "--runtime", "ort-cpu", "--json", str(tmp_path / "e.json"))
    assert run.returncode == 0, run.stderr
    record = json.loads((tmp_path / "e.json").read_text())["records"][0]
    assert record["count"] == 4 * 90 and record["metrics"]["auc"] == pytest.approx(result.metrics["test_auc"], abs=2e-3)


def test_embedder_refuses_data_that_is_not_identities(tmp_path):
    from edgekit.train import RECIPES, TrainConfig

    with pytest.raises(BadInputError, match="digits-identities or glyph-identities"):
        RECIPES.get("embedder")(TrainConfig(data="shapes", output_dir=tmp_path, progress=False))


def test_whitening_makes_the_training_embeddings_white():
    torch = pytest.importorskip("torch")
    from edgekit.datasets import load_split
    from edgekit.train.classifier import to_tensors
    from edgekit.train.embedder import FEATURES, build_embedder, whiten

    split = load_split("digits-identities", "train", seed=0)
    meta = ModelMeta(task="embedding", input_size=(16, 16), color="GRAY", mean=(0.1,), std=(0.3,))
    torch.manual_seed(0)
    model = build_embedder(dims=16)
    whiten(model, split, meta, shrinkage=0.0)
    x, _ = to_tensors(split, meta)
    with torch.no_grad():
        assert model.features(x).shape == (len(split), FEATURES)
        vectors = model(x).double().numpy()
    assert np.abs(vectors.mean(0)).max() < 1e-3
    assert np.abs(np.cov(vectors.T) - np.eye(16)).max() < 1e-2


def test_an_embedder_checkpoint_of_the_older_design_is_refused_in_one_line(tmp_path):
    torch = pytest.importorskip("torch")
    from edgekit.train.embedder import load_embedder

    torch.save({"format": "edgekit-embedder/1", "state_dict": {}, "dims": 64}, tmp_path / "old.pt")
    with pytest.raises(BadInputError, match="older design"):
        load_embedder(tmp_path / "old.pt")


def digit_folders(root, digits, count):
    from PIL import Image

    from edgekit.datasets import load_split

    test = load_split("digits-identities", "test", seed=0)
    for digit in digits:
        folder = root / str(digit)
        folder.mkdir(parents=True)
        for n, index in enumerate(np.flatnonzero(test.targets == digit - 5)[:count]):
            Image.fromarray(test.images[index][:, :, 0]).save(folder / f"{n}.png")
    return root


def test_predict_labels_images_by_their_nearest_gallery_identity(smoke, tmp_path):
    pytest.importorskip("PIL")
    gallery = digit_folders(tmp_path / "gallery", (5, 6, 7), 3)
    result = run_cli("predict", str(smoke[0].onnx), str(gallery / "6" / "0.png"), "--gallery", str(gallery), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.splitlines()[0])
    assert record["identity"] == "6" and record["distance"] == pytest.approx(0.0, abs=1e-3)
    assert set(record["distances"]) == {"5", "6", "7"} and len(record["embedding"]) == 8
    text = run_cli("predict", str(smoke[0].onnx), str(gallery / "5" / "1.png"), "--gallery", str(gallery))
    assert text.returncode == 0 and "5 (distance 0.000, accepted)" in text.stdout, text.stderr


def test_predict_gallery_bad_input_is_one_line(smoke, tmp_path):
    pytest.importorskip("PIL")
    gallery = digit_folders(tmp_path / "one", (5,), 2)
    image = str(gallery / "5" / "0.png")
    assert_one_line_error(run_cli("predict", str(smoke[0].onnx), image, "--gallery", str(gallery)), "one identity")
    (tmp_path / "none").mkdir()
    assert_one_line_error(run_cli("predict", str(smoke[0].onnx), image, "--gallery", str(tmp_path / "none")),
                          "no folder of images")


def test_eval_scores_an_embedder_on_a_folder_per_identity(smoke, tmp_path):
    """The gallery's layout (DIR/IDENTITY/images) is verification data too: AUC over its pairs."""
    pytest.importorskip("PIL")
    folder = digit_folders(tmp_path / "people", (5, 6, 7), 4)
    result = run_cli("eval", str(smoke[0].onnx), "--data", str(folder), "-r", "ort-cpu", "--json",
                     str(tmp_path / "e.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "e.json").read_text())["records"][0]
    assert record["primary_metric"] == "auc" and record["count"] == 12 and 0 <= record["metrics"]["auc"] <= 1


def test_compare_judges_an_embedder_by_cosine_with_no_top1(smoke, tmp_path):
    """An N×D vector is not a row of class scores: no top-1 agreement is shown for it."""
    result = run_cli("compare", str(smoke[0].onnx), "-r", "ort-cpu,openvino", "--json", str(tmp_path / "c.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "c.json").read_text())["results"][0]
    assert record["parity"]["outputs"][0]["top1_agreement"] is None and record["dense"]["cosine_min"] > 0.999
    assert "embeddings: per-sample cosine" in result.stdout


def test_the_matrix_judges_an_embedder_on_the_identities_it_records_and_no_other_by_default(smoke):
    """Any identities "fit" an embedder, so there is no default data set for the task: a face model
    is not scored on gray digits; edgekit's embedder is scored on the digits it records."""
    from edgekit.matrix.cells import Evaluation
    from edgekit.matrix.quality import eval_data
    from edgekit.meta import read_meta

    theirs = eval_data(ModelMeta(task="embedding", input_size=(112, 112), color="RGB"), Evaluation())
    assert theirs.split is None and theirs.name == "generated" and "no data set for task 'embedding'" in \
        theirs.no_accuracy
    ours = eval_data(read_meta(smoke[0].onnx), Evaluation(samples=40))
    assert ours.name == "digits-identities" and ours.split.task == "embedding" and len(ours.split) == 40


def test_default_datasets_skip_a_task_plugin_that_does_not_load():
    from edgekit.tasks import TASKS, default_datasets

    TASKS.add("broken-plugin", "edgekit_no_such_module:Task")
    try:
        assert default_datasets() == {"classification": "digits", "detection": "shapes",
                                      "segmentation": "shapes-masks"}
    finally:
        TASKS._targets.pop("broken-plugin")


def test_compare_refuses_embedders_of_different_lengths(smoke, tmp_path):
    """Vectors of 8 and 4 numbers are two models, not two versions of one: a bad input, not a failed check."""
    from edgekit.train import RECIPES, TrainConfig

    config = TrainConfig(data="digits-identities", output_dir=tmp_path / "short", seed=0, epochs=1,
                         options={"per_identity": 4, "dims": 4}, progress=False)
    short = RECIPES.get("embedder")(config).onnx
    result = run_cli("compare", str(smoke[0].onnx), str(short), "--runtimes", "ort-cpu")
    assert_one_line_error(result, "are not two versions of one model", "output 'embedding' is (1, 8) vs (1, 4)")
    same = run_cli("compare", str(smoke[0].onnx), str(smoke[0].onnx), "--runtimes", "ort-cpu")
    assert same.returncode == 0, same.stdout + same.stderr


FACTORY = """
def embedder():
    import torch
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(8 * 16 * 16, 16))
"""


@pytest.mark.slow
def test_a_torch_factory_with_embedding_metadata_runs_through_predict_and_eval(tmp_path):
    pytest.importorskip("PIL")
    (tmp_path / "nets.py").write_text(FACTORY)
    source = f"{tmp_path / 'nets.py'}:embedder"
    meta = ["--input", "input:?x1x32x32", "--meta", "task=embedding", "--meta", "color=GRAY", "--meta", "mean=0.1",
            "--meta", "std=0.3"]
    gallery = digit_folders(tmp_path / "gallery", (5, 6), 2)
    result = run_cli("predict", source, str(gallery / "5" / "0.png"), "--gallery", str(gallery), "--json", *meta)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["identity"] == "5"
    result = run_cli("eval", source, "--data", "digits-identities", "--json", str(tmp_path / "e.json"), *meta)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "e.json").read_text())
    assert record["records"][0]["primary_metric"] == "auc" and record["records"][0]["count"] > 850
    assert abs(record["records"][0]["metrics"]["auc"] - record["reference"]["auc"]) <= 2e-3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The reference embedder in full: 49 known characters, judged on the unseen digits (≈ 3 min)."""
    pytest.importorskip("cv2")
    from edgekit.train import RECIPES, TrainConfig

    config = TrainConfig(data="glyph-identities", output_dir=tmp_path_factory.mktemp("embfull"), seed=0,
                         progress=False)
    return RECIPES.get("embedder")(config)


@pytest.mark.slow
def test_reference_embedder_scores_alike_on_every_runtime_and_in_int8(trained, tmp_path):
    from edgekit.evaluate.across_runtimes import compare_runtimes
    from edgekit.quantize import QuantizeConfig, quantize

    result = compare_runtimes(trained.onnx, "all")
    assert result.reference["auc"] == pytest.approx(trained.metrics["test_auc"], abs=1e-6)
    for record in result.records:
        assert abs(record.metrics["auc"] - result.reference["auc"]) <= 2e-3, record
    int8 = tmp_path / "int8.onnx"
    quantize(trained.onnx, int8, QuantizeConfig(mode="int8-static", calib="glyph-identities"))
    quantized = compare_runtimes(int8, "ort-cpu", reference=False).records[0]
    assert result.reference["auc"] - quantized.metrics["auc"] <= 0.01


@pytest.mark.slow
def test_reference_embedder_reaches_auc_095_on_unseen_identities(trained):
    """On glyph-identities (0.957, 0.964, 0.968 for seeds 0–2). On digits-identities, with five known
    identities, the same recipe stays at 0.936–0.942: docs/reference-models.md."""
    assert trained.metrics["test_auc"] >= 0.95, trained.metrics


def test_identical_vectors_are_at_distance_zero_in_the_verification_figures():
    """2 − 2a·b put two identical float32 'unit' vectors 3.5e-4 apart (11 bins), so a different-identity
    pair of identical vectors ranked behind a same-identity one: TAR@FAR 1 % 0.5 where it is 0, and a
    recorded threshold whose real FAR was 7.7 %. Checked against scikit-learn on the exact distances."""
    from sklearn.metrics import roc_auc_score

    from edgekit.evaluate.dense_metrics import pair_statistics

    a = np.float32([1, 0, 0])
    b = np.float32([1, 1, 1]) / np.float32(np.sqrt(3))
    vectors = np.stack([a, a, b, b, np.float32([0, 1, 0]), np.float32([0, 0.8, 0.6])])
    identities = np.array([0, 0, 1, 2, 3, 3])
    figures = pair_statistics(vectors, identities)
    upper = np.triu_indices(6, 1)
    exact = np.linalg.norm(vectors[:, None].astype(np.float64) - vectors[None], axis=-1)[upper]
    same = (identities[:, None] == identities[None])[upper]
    assert figures["auc"] == pytest.approx(roc_auc_score(same, -np.round(exact, 9)))
    assert figures["tar_at_far"] == 0.0 and figures["threshold_at_far"] == 0.0   # the (b, b) negative is at 0
