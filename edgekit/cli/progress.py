"""Progress the CLI draws for library work that reports events: matrix cells and training epochs."""

from __future__ import annotations

from edgekit.cli.common import console


class CellBar:
    """A bar over a matrix's cells naming the cell in flight (``matrix.runner.Progress``)."""

    def start(self, total: int, completed: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            transient=False, console=console())
        self.bar.start()
        self.task = self.bar.add_task("matrix", total=total, completed=completed)

    def advance(self, cell, record) -> None:
        from rich.markup import escape

        if record is None:
            self.bar.update(self.task, description=escape(cell.label))
        else:
            self.bar.update(self.task, advance=1, description=escape(f"{cell.label}: {record.status}"))

    def stop(self) -> None:
        self.bar.stop()


class EpochBar:
    """A bar over training epochs: called with (epoch, epochs, loss, metric name, metric, best);
    use as a context manager so the bar stops however training ends."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, epoch: int, epochs: int, loss: float, name: str, metric: float | None, best: float) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        if self.bar is None:
            self.bar = Progress(TextColumn("epoch"), MofNCompleteColumn(), BarColumn(),
                                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), transient=False,
                                console=console())
            self.bar.start()
            self.task = self.bar.add_task("train", total=epochs, status="")
        status = f"loss {loss:.4f}" + (f"  {name} {metric:.2f}  best {best:.2f}" if metric is not None else "")
        self.bar.update(self.task, completed=epoch, status=status)

    def __enter__(self) -> EpochBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
