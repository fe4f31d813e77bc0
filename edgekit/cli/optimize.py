"""`edgekit optimize`: search runtime × precision × settings within an accuracy budget; write the winner."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_numbers, check_outputs, console, handle_errors, write_json
from edgekit.cli.source_options import INPUTS, META, META_FILE, WEIGHTS, source_options


def register(app: typer.Typer) -> None:
    app.command("optimize")(handle_errors(optimize))


def optimize(
    model: str = typer.Argument(..., help="An FP32 .onnx file, a zoo name or a user torch model (file.py:factory, "
                                "TorchScript, .pt2), exported first."),
    max_drop: float = typer.Option(..., help="Accuracy budget in points (top-1 %, mAP, "
                                   "mIoU or AUC x 100; without labels: top-1 disagreement with FP32 in %)."),
    data: Optional[str] = typer.Option(None, help="Calibration and evaluation data: dataset name, image folder, "
                                       "COCO .json \\[default: the task's dataset, or the one the model records, "
                                       "else generated images]."),
    calib: Optional[str] = typer.Option(None, help="Calibration data \\[default: --data]."),
    eval_data: Optional[str] = typer.Option(None, "--eval", help="Evaluation data \\[default: --data]."),
    runtimes: str = typer.Option("ort-cpu,openvino", help="Runtimes to search, comma separated."),
    allow_batch: Optional[int] = typer.Option(None, help="Also try this batch size (ms per item is compared)."),
    scenario: str = typer.Option("single-stream", help="What 'fastest' means: single-stream (latency of one query) "
                                 "or offline (throughput with every request busy; OpenVINO streams searched)."),
    time_limit: Optional[float] = typer.Option(None, help="Seconds the search may take; candidates left are "
                                               "listed as not measured."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="The file to ship \\[default: "
                                          "MODEL.optimized.onnx here; .xml when an OpenVINO IR wins]."),
    input_size: Optional[str] = typer.Option(None, help="Input size when exporting a zoo model."),
    eval_size: int = typer.Option(300, help="Evaluation samples."),
    calib_size: int = typer.Option(64, help="Calibration samples."),
    threads: Optional[str] = typer.Option(None, help="Thread counts to try, e.g. 1,2 \\[default: the runtime's, "
                                          "1 and half the cores]."),
    duration: float = typer.Option(2.0, help="Seconds of timing per round when confirming a finalist "
                                   "(3 rounds; the latency pass is shorter)."),
    db: Optional[str] = typer.Option(None, help="History store URL \\[default: SQLite in the user data dir]."),
    cluster: Optional[str] = typer.Option(None, help="Ray address of the device lab: measure on --device there."),
    device: Optional[str] = typer.Option(None, help="Lab device name (nodes advertise edgekit-device:NAME)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write every candidate and the verdict as JSON."),
    seed: int = typer.Option(0, help="Seed for calibration and evaluation sampling."),
    weights: Optional[Path] = WEIGHTS,
    input_spec: Optional[list[str]] = INPUTS,
    meta_pair: Optional[list[str]] = META,
    meta_file: Optional[Path] = META_FILE,
) -> None:
    """Find the fastest configuration of MODEL on this machine (or a lab device) that loses at most
    --max-drop points, write it with the decision in its metadata, and a report of every candidate."""
    from edgekit.cli.matrix import int_list, matrix_model, split_list
    from edgekit.errors import BadInputError
    from edgekit.exporters.config import parse_input_size
    from edgekit.matrix.cells import Timing
    from edgekit.optimize import OptimizeConfig
    from edgekit.optimize.measure import FULL
    from edgekit.optimize import optimize as run_optimize
    from edgekit.sources import parse_source
    from edgekit.store import open_store

    if (cluster is None) != (device is None):
        raise BadInputError("--cluster and --device go together (the lab's address and one of its devices)")
    thread_counts = int_list(threads, "threads", [])
    check_numbers(max_drop=max_drop, seed=seed, duration=duration, time_limit=time_limit, allow_batch=allow_batch,
                  eval_size=eval_size, calib_size=calib_size)
    for count in thread_counts:
        check_numbers(threads=count)
    check_runtimes(split_list(runtimes, "runtimes"))
    given = source_options(weights, input_spec, meta_pair, meta_file)
    output = output or Path(f"{output_stem(model)}.optimized.onnx")
    from edgekit.cli.report import store_file

    files = [name for name in (model, data, calib, eval_data) if name and Path(name).is_file()]
    check_written(output, json_out, inputs=[*files, weights, meta_file, store_file(db)])
    size = parse_input_size(input_size) if input_size else None
    config = OptimizeConfig(model=model, max_drop=max_drop, data=data, calib=calib, eval=eval_data,
                            runtimes=tuple(split_list(runtimes, "runtimes")), allow_batch=allow_batch,
                            scenario=scenario, time_limit_s=time_limit, eval_size=eval_size, calib_size=calib_size,
                            threads=tuple(thread_counts) or None, seed=seed, input_size=size,
                            full=Timing(FULL.warmup, FULL.min_runs, duration, None, FULL.rounds))
    if parse_source(model).is_torch:   # searched like a suite's torch source: exported with its weights and meta
        if input_size:
            raise BadInputError("--input-size is for zoo models; a torch source's shape comes from --input")
        torch_model = matrix_model(model, weights, tuple(input_spec or ()), given.meta_changes)
        config = dataclasses.replace(config, model=torch_model.name, torch_model=torch_model)
        from edgekit.matrix.cells import MatrixSpec
        from edgekit.matrix.measure import MatrixContext

        MatrixContext(MatrixSpec(models=(torch_model,))).source(torch_model.name, 1)   # export errors before any store
    elif weights or input_spec or given.meta_changes:   # a zoo model with its weights or metadata: that export
        from edgekit.matrix.measure import resizable

        path = given.resolve(model, input_size=size if resizable(model) else None,
                             dynamic_batch=allow_batch is not None)   # one file serves every batch searched
        config = dataclasses.replace(config, model=str(path))
    else:
        matrix_model(model)   # a missing file or an unknown zoo name is a one-line error here
    out = console()
    executor = lab = None
    if cluster is not None:
        from edgekit.matrix.lab import Lab, RayExecutor

        lab = Lab(cluster, device).connect()
        executor = RayExecutor(lab)
    try:
        with open_store(db) as store:
            done = run_optimize(config, output, store, executor,
                                log=lambda line: out.print(line, markup=False, highlight=False))
    finally:
        if lab is not None:
            lab.shutdown()
    from edgekit.optimize.report import candidate_rows, summary_lines

    for line in summary_lines(done.result):
        out.print(line, markup=False, highlight=False)
    out.print(f"report: {done.html} · {done.markdown}; history run {done.result.run_id}", markup=False,
              highlight=False)
    out.print(f"wrote {done.output}", markup=False, highlight=False)
    typer.echo(done.verdict)
    if json_out:
        write_json(json_out, {"verdict": done.verdict, "output": str(done.output), "run_id": done.result.run_id,
                              "candidates": candidate_rows(done.result)})


def check_runtimes(names: list[str]) -> None:
    """Known names (a typo gets a suggestion), and at least one of them runnable here; the others are
    searched as unavailable candidates, as the default ort-cpu,openvino is without OpenVINO."""
    from edgekit.runtimes import get_runtime

    classes = [get_runtime(name) for name in names]
    if classes and not any(runtime.probe().available for runtime in classes):
        classes[0].ensure_available()   # the one-line error naming the extra to install


def check_written(output: Path, json_out: Path | None, inputs: list) -> None:
    """Every file the run may write (model, IR, reports) is a writable regular file, none of them an
    input, and ``--json`` is none of them: checked before any work."""
    from edgekit.errors import BadInputError
    from edgekit.fileio import is_special, same_output
    from edgekit.optimize import written_files

    written = written_files(output)
    check_outputs(*written, special_ok=False, inputs=inputs)
    check_outputs(json_out, inputs=inputs)
    if json_out is not None and not is_special(json_out) and any(same_output(path, json_out) for path in written):
        raise BadInputError(f"--json {json_out} is one of the files optimize writes for -o {output}")


def output_stem(model: str) -> str:
    """The default output's name: a file's stem, a factory's name, or the zoo name."""
    if ":" in model and not Path(model).is_file():   # file.py:factory or package.module:factory
        return model.rsplit(":", 1)[1]
    return Path(model).stem if Path(model).suffix else model
