"""`edgekit report`: Markdown/CSV from the store, and an HTML page that a real headless Chromium
opens without network: the table sorts on a click and every plot renders."""

import csv
import re
import shutil
import tempfile

import pytest

from conftest import run_cli
from edgekit.matrix import Evaluation, MatrixSpec, Timing
from edgekit.matrix.runner import run_matrix
from edgekit.report.plots import pareto_front
from edgekit.store import open_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def store_url(zoo_onnx, tmp_path_factory):
    """A store with one real run: LeNet-5 on ort-cpu (and openvino when present) × fp32/int8 × two scenarios."""
    from edgekit.runtimes import get_runtime

    path = str(zoo_onnx("lenet5", dynamic_batch=True).path)
    runtimes = ("ort-cpu", "openvino") if get_runtime("openvino").probe().available else ("ort-cpu",)
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'h.db'}"
    spec = MatrixSpec(models=(path,), runtimes=runtimes, precisions=("fp32", "int8"), batches=(1, 2),
                      scenarios=("single-stream", "offline"), timing=Timing(2, 5, 0.1, None, 2),
                      evaluation=Evaluation(samples=32, calib_samples=16, agreement_samples=8), name="unit")
    with open_store(url) as store:
        run_matrix(spec, store, progress=False)
    return url


def test_pareto_front():
    points = [(1.0, 90.0), (2.0, 95.0), (1.5, 89.0), (3.0, 94.0), (0.5, 80.0)]
    assert pareto_front(points) == [(0.5, 80.0), (1.0, 90.0), (2.0, 95.0)]


@pytest.mark.slow
def test_markdown_csv_and_filters(store_url, tmp_path):
    md, table = tmp_path / "r.md", tmp_path / "r.csv"
    result = run_cli("report", "--db", store_url, "--suite", "unit", "--md", str(md), "--csv", str(table))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(table.open()))
    assert rows and {r["scenario"] for r in rows} == {"single-stream", "offline"}
    assert all(r["status"] == "ok" and float(r["FPS (p50)"]) > 0 for r in rows)
    assert md.read_text().count("\n| 1 |") == len(rows)
    none = run_cli("report", "--db", store_url, "--suite", "other")
    assert none.returncode == 2 and "no results match" in none.stderr
    since = run_cli("report", "--db", store_url, "--since", "2000-01-01", "--model", "lenet5")
    assert since.returncode == 0 and "lenet5" in since.stdout
    assert run_cli("report", "--db", store_url, "--since", "yesterday").returncode == 2


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="no chromium/chromedriver on this machine "
                    "(.ci/run installs Debian's chromium and chromium-driver)")
def test_html_sorts_and_plots_render_in_chromium(store_url, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    page = tmp_path / "report.html"
    result = run_cli("report", "--db", store_url, "--html", str(page))
    assert result.returncode == 0, result.stderr
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:|//)""", text) and "<link" not in text  # nothing to fetch
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tempfile.mkdtemp()}",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(page.as_uri())
        headers = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#results th")]
        column = headers.index("p50 ms")
        values = lambda: [row.find_elements(By.TAG_NAME, "td")[column].get_attribute("data-sort")  # noqa: E731
                          for row in driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")]
        numbers = lambda: [float(v) for v in values() if v != "-"]  # noqa: E731
        stored = numbers()                             # cell order: it may happen to be sorted already
        header = driver.find_elements(By.CSS_SELECTOR, "#results th")[column]
        header.click()
        ascending = numbers()
        assert ascending == sorted(stored) and "asc" in header.get_attribute("class")
        header.click()
        descending = numbers()
        assert descending == sorted(stored, reverse=True) and descending != ascending  # the click reordered rows
        plots = driver.find_elements(By.CSS_SELECTOR, "figure.plot svg")
        assert len(plots) == 3
        for svg in plots:
            assert svg.size["width"] > 100 and svg.size["height"] > 100
            assert svg.find_elements(By.CSS_SELECTOR, "path")          # something was drawn
        errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
        assert errors == []
    finally:
        driver.quit()


def test_a_segmenters_mask_agreement_has_columns_that_name_it():
    """Pixels that agree are not a top-1 figure, and the masks' mIoU against FP32 is a column of its own."""
    from edgekit.report.tables import to_csv, to_markdown

    row = {"run_id": 1, "model_name": "segmenter", "model": "seg.onnx", "precision": "int8", "status": "ok",
           "agreement_top1_pct": 99.8, "config": {"miou_vs_fp32": 0.9412}}
    record = next(csv.DictReader(to_csv([row]).splitlines()))
    assert record["agree % (top-1/pixels)"] == "99.8" and record["mask mIoU vs FP32"] == "0.9412"
    assert "| 99.8 | - | 0.9412 |" in to_markdown([row])


def test_the_csv_gives_a_default_thread_count_as_used():
    from edgekit.report.tables import to_csv

    row = {"run_id": 1, "model_name": "m", "status": "ok", "threads": None,
           "config": {"runtime": {"threads_used": 2}}}
    assert next(csv.DictReader(to_csv([row]).splitlines()))["threads"] == "2 (default)"
