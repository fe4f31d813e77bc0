"""Hardening, round 2 (items 3 and 4, --frame): outputs never over an input nor over each other, a
replaced file keeps its mode, predict --save gives every input its own file, untrusted names never
reach rich as markup, and every report format escapes them. In-process (CliRunner), tiny models."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from conftest import assert_one_line_error
from edgekit.cli.app import app

SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://x")[/]$x$'   # a spreadsheet formula, a rich closing tag, TeX
HOSTILE_NAMES = {"a.onnx": f"{SCRIPT} [bold]a", "b.onnx": FORMULA}


def cli(folder: Path, *args: str, error: bool = False) -> SimpleNamespace:
    """Run the CLI in ``folder``; with ``error``, also check that no file was added, removed or changed."""
    before = _listing(folder)
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(cwd)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if error:
        assert _listing(folder) == before, "files were added, removed or changed"
    return SimpleNamespace(returncode=result.exit_code, stderr=result.stderr, stdout=result.stdout)


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def refused(folder: Path, *args: str) -> str:
    result = cli(folder, *args, error=True)
    assert_one_line_error(result)
    return result.stderr


@pytest.fixture()
def lenet(zoo_onnx, tmp_path) -> Path:
    """A LeNet-5 with edgekit metadata in a fresh folder (with a symlink to it)."""
    path = tmp_path / "m.onnx"
    path.write_bytes(zoo_onnx("lenet5").path.read_bytes())
    (tmp_path / "link.onnx").symlink_to("m.onnx")
    return path


# --- never over an input, never two outputs at one path ------------------------------------------
@pytest.mark.parametrize("target", ["m.onnx", "link.onnx", "./m.onnx"])
def test_fuse_never_writes_over_its_input(lenet, target):
    assert "is the input file" in refused(lenet.parent, "fuse", "m.onnx", "-o", target)


@pytest.mark.parametrize("frame", ["20000x20000", "65536x65536"])
def test_fuse_frame_is_capped_like_other_sizes(lenet, frame):
    assert "--frame must be at most 4096" in refused(lenet.parent, "fuse", "m.onnx", "-o", "f.onnx", "--frame", frame)


@pytest.mark.parametrize("args", [
    ["-o", "q.onnx", "-m", "fp16", "--report", "--json", "q.onnx"],
    ["-o", "q.onnx", "-m", "fp16", "--json", "./q.onnx"],
    ["-o", "q.onnx", "-m", "fp16", "--json", "out.json", "--report"],   # out.json: a symlink to q.onnx
    ["-o", "q.onnx", "-m", "fp16", "-m", "int8-dynamic", "--report", "--json", "q.ort-fp16.onnx"],
])
def test_quantize_outputs_at_one_path(lenet, args):
    (lenet.parent / "out.json").symlink_to("q.onnx")
    message = refused(lenet.parent, "quantize", "m.onnx", *args)
    assert "same file" in message or "is one of the files quantize writes" in message


def test_quantize_variants_are_never_an_input(lenet):
    (lenet.parent / "q.ort-fp16.onnx").symlink_to("m.onnx")
    assert "is the input file" in refused(lenet.parent, "quantize", "m.onnx", "-o", "q.onnx", "-m", "fp16",
                                          "-m", "int8-dynamic", "--report")


@pytest.mark.parametrize("args", [["--html", "r.x", "--md", "r.x"], ["--md", "r.md", "--csv", "./r.md"],
                                  ["--html", "h.db"], ["--csv", "store.csv"]])
def test_report_outputs_at_one_path_or_on_the_store(tmp_path, args):
    store = tmp_path / "h.db"
    store.write_bytes(b"")   # the store's file: never an output
    (tmp_path / "store.csv").symlink_to("h.db")
    message = refused(tmp_path, "report", "--db", "sqlite:///h.db", *args)
    assert "same file" in message or "is the input file" in message


def test_train_json_is_not_the_model_it_writes(tmp_path):
    (tmp_path / "runs").mkdir()
    assert "--json runs/lenet5.onnx" in refused(tmp_path, "train", "lenet5", "-d", "digits", "-o", "runs", "--json",
                                                "runs/lenet5.onnx", "--epochs", "1", "-q", "-O", "per_class=20")


# --- a replaced file keeps its mode (and owner) ------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["meta", "set", "m.onnx", "task=classification"],
    ["quantize", "m.onnx", "-o", "m.onnx", "-m", "fp16", "--overwrite-input"],
    ["inspect", "m.onnx", "--json", "j.json"],
])
def test_a_replaced_file_keeps_its_mode(lenet, command):
    target = lenet.parent / ("j.json" if "--json" in command else "m.onnx")
    target.touch()
    target.chmod(0o600)
    result = cli(lenet.parent, *command)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.stat().st_size > 0


def test_atomic_writers_keep_mode_and_owner(tmp_path):
    from edgekit.fileio import write_text_atomic

    target = tmp_path / "f.txt"
    target.write_text("old")
    target.chmod(0o640)
    if os.geteuid() == 0:
        os.chown(target, 4321, 4321)
    (tmp_path / "link").symlink_to("f.txt")
    write_text_atomic(tmp_path / "link", "new")
    assert (tmp_path / "link").is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    if os.geteuid() == 0:
        assert (target.stat().st_uid, target.stat().st_gid) == (4321, 4321)
    write_text_atomic(tmp_path / "new.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o666 & ~umask


# --- predict --save: every input its own output ---------------------------------------------------------
def test_predict_save_gives_every_image_its_own_file(lenet):
    cv2 = pytest.importorskip("cv2")
    folder, other = lenet.parent / "in", lenet.parent / "other"
    folder.mkdir()
    other.mkdir()
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    for name in ("x.png", "x.tiff", "x.webp", "x-1.png"):
        cv2.imwrite(str(folder / name), image)
    cv2.imwrite(str(folder / "y.pgm"), image[:, :, 0])
    cv2.imwrite(str(other / "x.png"), image)
    result = cli(lenet.parent, "predict", "m.onnx", "in", "other", "--save", "out")
    assert result.returncode == 0, result.stderr
    saved = sorted(p.name for p in (lenet.parent / "out").iterdir())
    assert len(saved) == 6 and {"x.png", "x.tiff", "x.webp", "x-1.png", "y.pgm.png"} <= set(saved), saved
    assert all(cv2.imread(str(lenet.parent / "out" / name)) is not None for name in saved)


# --- untrusted names are never rich markup ----------------------------------------------------------
@pytest.fixture()
def evil(tmp_path) -> Path:
    """A Relu whose tensor, node, producer and metadata names are rich markup ([red]evil.onnx), and the
    same with a custom op named '[/]Op' after it ([red]custom.onnx: inspected, not run)."""
    x = helper.make_tensor_value_info("[bold]in", TensorProto.FLOAT, [1, 3, 4])
    y = helper.make_tensor_value_info("[/]out", TensorProto.FLOAT, [1, 3, 4])
    relu = helper.make_node("Relu", ["[bold]in"], ["[/]out"], name="[/]relu[bold]")
    custom = helper.make_node("[/]Op", ["[/]out"], ["[/]out2"], name="c", domain="x.custom")
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("x.custom", 1)]
    for name, nodes, output in (("evil", [relu], y), ("custom", [relu, custom], helper.make_tensor_value_info(
            "[/]out2", TensorProto.FLOAT, [1, 3, 4]))):
        model = helper.make_model(helper.make_graph(nodes, "g", [x], [output]), producer_name="[/]prod",
                                  opset_imports=opsets)
        model.ir_version = 8
        helper.set_model_props(model, {"model_name": json.dumps("[/]name"), "[/]key": "[bold]v"})
        onnx.save(model, str(tmp_path / f"[red]{name}.onnx"))
    return tmp_path / "[red]evil.onnx"


@pytest.mark.parametrize("command", [["bench", "--runs", "2", "--warmup", "0"], ["inspect"], ["inspect", "--layers"]])
def test_markup_in_names_is_printed_as_typed(evil, command):
    model = evil.name if command[0] == "bench" else "[red]custom.onnx"
    result = cli(evil.parent, command[0], model, *command[1:])
    assert result.returncode == 0, result.stderr
    flat = "".join(result.stdout.split())
    assert "[bold]in" in flat and ("[/]name" if command[0] == "bench" else "[red]custom.onnx") in flat, flat
    if command[0] == "inspect":
        assert "[/]out" in flat and "[/]prod" in flat and "[/]Op" in flat
    if command == ["inspect", "--layers"]:
        assert "[/]relu[bold]" in flat


def test_quantize_and_train_lines_print_paths_as_typed(lenet, capsys):
    result = cli(lenet.parent, "quantize", "m.onnx", "-o", "[bold]q.onnx", "-m", "fp16")
    assert result.returncode == 0 and "wrote [bold]q.onnx" in result.stdout, result.stdout
    from edgekit.cli.train import show

    show(SimpleNamespace(model="[/]net", metrics={"[/]acc": 1.0}, seconds=1.0, epochs_run=1,
                         checkpoint=Path("[b]c.pt"), onnx=Path("[b]c.onnx")))
    assert {"[/]net", "[/]acc", "[b]c.pt", "[b]c.onnx"} <= set(capsys.readouterr().out.split())


def test_pipeline_table_prints_names_as_typed(capsys):
    from edgekit.cli.pipeline_table import print_pipeline

    stats = SimpleNamespace(p50_ms=1.0, p90_ms=1.0, p99_ms=1.0, mean_ms=1.0)
    record = SimpleNamespace(model="[/]m", runtime="ort-cpu", frames=2, frame_shape=(8, 8, 3), source="[bold]v",
                             preprocess=stats, inference=stats, postprocess=stats, end_to_end=stats,
                             sequential_fps=1.0, pipelined_fps=1.0)
    print_pipeline(record, 1.0)
    out = capsys.readouterr().out
    assert "[/]m" in out and "[bold]v" in out


# --- every report format escapes names --------------------------------------------------------------
@pytest.fixture(scope="module")
def hostile_store(zoo_onnx, tmp_path_factory) -> Path:
    """A history store with two LeNet-5 cells whose model names are HTML, a formula, markup and TeX."""
    folder = tmp_path_factory.mktemp("hostile")
    for file, name in HOSTILE_NAMES.items():
        model = onnx.load(str(zoo_onnx("lenet5").path))
        props = {p.key: p.value for p in model.metadata_props}
        helper.set_model_props(model, {**props, "model_name": json.dumps(name)})
        onnx.save(model, str(folder / file))
    result = cli(folder, "bench", *HOSTILE_NAMES, "--db", "sqlite:///h.db", "--rounds", "1", "--runs", "2",
                 "--warmup", "0")
    assert result.returncode == 0, result.stderr
    return folder


def test_report_formats_escape_model_names(hostile_store):
    result = cli(hostile_store, "report", "--db", "sqlite:///h.db", "--md", "r.md", "--csv", "r.csv",
                 "--html", "r.html")
    assert result.returncode == 0, result.stderr
    markdown, page = (hostile_store / "r.md").read_text(), (hostile_store / "r.html").read_text()
    assert "<script" not in markdown and "&lt;script&gt;" in markdown and "\\[/\\]" in markdown
    assert SCRIPT not in page and "&lt;script&gt;" in page and "<svg" in page   # plots drew the TeX-like name
    cells = [row["model"] for row in csv.DictReader(io.StringIO((hostile_store / "r.csv").read_text()))]
    assert sorted(cells) == sorted([f"{SCRIPT} [bold]a (a.onnx)", f"'{FORMULA} (b.onnx)"])


def test_report_terminal_table_shows_markup_as_typed(hostile_store):
    result = cli(hostile_store, "report", "--db", "sqlite:///h.db")
    assert result.returncode == 0, result.stderr
    flat = "".join(result.stdout.split())
    assert "[bold]a" in flat and "[/]$x$" in flat


def test_markdown_and_csv_cells():
    from edgekit.report.tables import _md_text, csv_cell

    assert _md_text("![x](http://t/p.png) `c` *e* a|b\nc<i>") == \
        "!\\[x\\](http://t/p.png) \\`c\\` \\*e\\* a\\|b c&lt;i&gt;"
    assert [csv_cell(v) for v in ("=1+1", "+1", "-cmd", "@SUM(A1)", "\tx", "ok", -1.5, 3)] == \
        ["'=1+1", "'+1", "'-cmd", "'@SUM(A1)", "'\tx", "ok", -1.5, 3]


def test_compare_saves_inputs_and_outputs_to_distinct_files(zoo_onnx, tmp_path):
    """`compare --save-inputs X --save-outputs X` kept one of the two: now refused before any work."""
    from typer.testing import CliRunner

    from edgekit.cli.app import app

    same = tmp_path / "x.npz"
    result = CliRunner().invoke(app, ["compare", str(zoo_onnx("lenet5").path), "-r", "ort-cpu", "--save-inputs",
                                      str(same), "--save-outputs", str(same)])
    assert result.exit_code == 2 and "is the same file as --save-inputs" in result.output
    assert not same.exists()
