"""Whether a model may be scored on a data set: the one rule every accuracy figure obeys.

A figure on data the model was not made for (COCO's 91 labels scored on the 3 ``shapes`` classes,
a user's own 10-label net on ``digits``) is a wrong number, not a low one. A model fits a data set
when the tasks agree and either its metadata records that data set as its training data or its
label list equals the data set's (an embedding model is verified on identities it never saw, so any
data set of identities fits it). Otherwise there is no figure, and the reason says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgekit.meta_records import source_of

if TYPE_CHECKING:
    from edgekit.meta import ModelMeta


def misfit_reason(meta: ModelMeta, task: str, labels: Sequence[str], spec: str) -> str:
    """'' when ``meta``'s model may be scored on data set ``spec`` (of ``task`` with ``labels``), else
    one line saying why not."""
    if meta.task != task:
        return f"model task '{meta.task}' differs from the task of data set `{spec}` ('{task}')"
    if task == "embedding":   # verified on identities it never saw: any data set of identities fits
        return ""
    if source_of(meta).trained_on(spec):
        return ""
    if not meta.labels:
        return (f"the model records no labels and was not trained on `{spec}` ({_shown(labels)}): "
                "name its classes with `edgekit meta set MODEL labels=...` to score it")
    if tuple(meta.labels) == tuple(labels):
        return ""
    return f"model has {_shown(meta.labels)}, data set `{spec}` has {_shown(labels)}"


def _shown(labels: Sequence[str]) -> str:
    names = ", ".join(map(str, labels[:4])) + (", …" if len(labels) > 4 else "")
    return f"{len(labels)} label{'s' * (len(labels) != 1)} ({names})"
