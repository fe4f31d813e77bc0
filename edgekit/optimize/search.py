"""The search: a fast latency pass over every candidate, accuracy only for those that could win,
fallbacks for INT8 that misses the budget (first/last layers in float, then the layers found most
sensitive by measurement), and a full-timing confirmation of the finalists beside FP32.

Every measurement is a matrix record stored in the history store as it is made (one run per
search); a re-run of the same search reuses the stored records and the cached variant files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgekit.errors import CheckFailedError
from edgekit.matrix.choice import MIN_SPEEDUP
from edgekit.matrix.quality import Quality
from edgekit.optimize.config import OptimizeConfig
from edgekit.optimize.measure import quality_from_row, subset_data, timed_from_row, weighted_layers
from edgekit.optimize.select import NOISE, Entry, pick, quality_drop, speedup
from edgekit.optimize.space import FIRST_LAST, Candidate

FINALISTS = 3


@dataclass
class SearchResult:
    """Every candidate with its verdict, the baseline, the winner (None: FP32 is kept) and the run."""

    config: OptimizeConfig
    run_id: int
    entries: list[Entry]
    baseline: Entry
    winner: Entry | None
    source: Path
    meta: Any
    data_name: str
    seconds: float
    confirmed: bool
    notes: list[str] = field(default_factory=list)

    @property
    def pruned(self) -> Counter:
        return Counter(e.verdict.split(":")[0] for e in self.entries if e.verdict.startswith("pruned"))

    @property
    def not_measured(self) -> int:
        return sum(e.status == "not measured" for e in self.entries)


class Search:
    """One optimize search over one model. ``executor`` times and judges (here, or on a lab device)."""

    def __init__(self, config: OptimizeConfig, store, executor=None, log: Callable[[str], None] | None = None):
        from edgekit.matrix.lab import LocalExecutor

        self.config, self.store = config, store
        self.executor = executor or LocalExecutor()
        self.log = log or (lambda message: None)
        self.started = time.monotonic()
        self.entries: dict[Candidate, Entry] = {}
        self.qualities: dict[tuple, Quality] = {}
        self.sensitivity_done: set[str] = set()

    # ---- setup ---------------------------------------------------------------
    def prepare(self) -> None:
        from edgekit.bench.environment import manifest
        from edgekit.matrix.cells import MatrixSpec
        from edgekit.matrix.measure import MatrixContext
        from edgekit.optimize.measure import reference_outputs, search_data
        from edgekit.optimize.space import capabilities, search_space
        from edgekit.runtimes import get_runtime

        config = self.config
        self.runtimes = tuple(dict.fromkeys(get_runtime(r).name for r in config.runtimes))
        self.context = MatrixContext(MatrixSpec(models=(config.torch_model or config.model,),
                                                input_size=config.input_size))
        source = self.context.source(config.model, 1)
        self.source, self.meta, self.sha = source.path, source.meta, source.sha256
        self.model_name = self.meta.model_name or self.source.stem
        self.data = search_data(self.meta, config.eval or config.data, config.calib or config.data,
                                config.eval_size, config.seed)
        self.reference = reference_outputs(self.source, self.meta, self.data)
        caps = self.executor.capabilities() if hasattr(self.executor, "capabilities") else capabilities()
        if config.threads is not None:
            caps = dataclasses.replace(caps, threads=config.threads)
        batches = (1, config.allow_batch) if config.allow_batch else (1,)
        self.space = search_space(self.runtimes, caps, batches, config.scenario)
        base_runtime = "ort-cpu" if "ort-cpu" in self.runtimes else self.runtimes[0]
        self.baseline = Entry(Candidate(base_runtime, scenario=config.scenario))
        self.entries[self.baseline.candidate] = self.baseline
        for candidate in self.space:
            self.entries.setdefault(candidate, Entry(candidate))
        self.key = self._search_key()
        self.cache = self._cached_rows()
        self.run_id = self.store.start_run(f"optimize {self.model_name}", self.key, self._spec(), manifest())

    def _search_key(self) -> str:
        config = self.config
        payload = {"source": self.sha, "data": self.data.name, "calib": self.data.calib, "eval": config.eval_size,
                   "calib_size": config.calib_size, "seed": config.seed, "quick": dataclasses.asdict(config.quick),
                   "full": dataclasses.asdict(config.full), "executor": self.executor.name}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def _spec(self) -> dict[str, Any]:
        from edgekit.matrix.cells import json_safe

        return json_safe({"optimize": dataclasses.asdict(self.config), "source": str(self.source),
                          "data": self.data.name, "executor": self.executor.name})

    def key_of(self, candidate: Candidate, stage: str) -> str:
        text = json.dumps([self.key, dataclasses.asdict(candidate), stage], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def _cached_rows(self) -> dict[str, dict[str, Any]]:
        """Stored records of earlier runs of this search, by cell key (newest wins)."""
        rows = self.store.records(model=self.config.model) if self.store else []
        return {row["cell_key"]: row for row in rows if row.get("suite", "").startswith("optimize")}

    # ---- the stages -----------------------------------------------------------
    def run(self) -> SearchResult:
        self.prepare()
        self.log(f"searching {len(self.entries)} candidates of {self.model_name} on {', '.join(self.runtimes)} "
                 f"(judged on {self.data.name})")
        self.time_quick(self.baseline)
        self.judge(self.baseline)
        if self.baseline.status != "ok" or self.baseline.drop is None:
            raise CheckFailedError(f"the FP32 baseline on {self.baseline.candidate.runtime} could not be measured: "
                                   f"{self.baseline.reason or 'no accuracy or agreement'}")
        self.require_something_to_compare()
        for entry in list(self.entries.values()):
            if entry.status == "pending":
                self.time_quick(entry)
        finalists = self.accuracy_pass()
        confirmed = self.confirm(finalists)
        winner = pick(finalists, self.baseline, self.config.max_drop)
        self._final_verdicts(finalists, winner)
        self.store.finish_run(self.run_id)
        return SearchResult(self.config, self.run_id, list(self.entries.values()), self.baseline, winner, self.source,
                            self.meta, self.data.name, time.monotonic() - self.started, confirmed)

    def require_something_to_compare(self) -> None:
        """Without an accuracy figure, candidates are judged by agreement with FP32; agreement on outputs
        without spread (random-weight logits) or on a constant input is noise, so the search stops."""
        quality = self.baseline.quality
        if quality is None or quality.accuracy is not None or not quality.nothing_to_compare:
            return
        why = self.data.no_accuracy or f"no labelled data for {self.meta.task}"
        raise CheckFailedError(f"nothing to compare: {quality.nothing_to_compare}; no accuracy figure either ({why})"
                               " — give trained weights (--weights) or real labelled data (--data DIR)")

    def accuracy_pass(self) -> list[Entry]:
        """Judge candidates fastest first; prune those that cannot win; add INT8 fallbacks on the way."""
        queue = [(e.ms, n, e) for n, e in enumerate(self.entries.values())
                 if e.status == "ok" and e is not self.baseline]
        heapq.heapify(queue)
        counter = len(queue)
        best: Entry | None = None
        finalists = [self.baseline]
        while queue:
            _, _, entry = heapq.heappop(queue)
            gain = speedup(self.baseline.ms, entry.ms) or 0
            if gain < MIN_SPEEDUP:
                entry.verdict = (f"pruned: not faster than FP32 by {MIN_SPEEDUP - 1:.0%} "
                                 f"({gain:.2f}x in the latency pass)")
                continue
            if best is not None and entry.ms > best.ms * (1 + NOISE):
                entry.verdict = f"pruned: slower than {best.candidate.label} (in budget) by over {NOISE:.0%}"
                continue
            if self.expired():
                entry.verdict = "not judged: time limit"
                continue
            self.judge(entry)
            if entry.in_budget(self.config.max_drop):
                best = best or entry
                finalists.append(entry)
                continue
            if entry.drop is not None:
                entry.verdict = f"over budget: drop {entry.drop:+.2f} pt > {self.config.max_drop:g}"
            for fallback in self.fallbacks(entry):
                self.time_quick(fallback)
                if fallback.status == "ok":
                    counter += 1
                    heapq.heappush(queue, (fallback.ms, counter, fallback))
        return finalists

    def fallbacks(self, entry: Entry) -> list[Entry]:
        """INT8 over budget: first/last layers in float; that too: the most sensitive layers as well."""
        candidate = entry.candidate
        if candidate.precision != "int8" or entry.drop is None or self.expired():
            return []
        if not candidate.exclude:
            excludes = [FIRST_LAST]
        elif candidate.exclude == FIRST_LAST and candidate.quantizer == "ort":
            excludes = [FIRST_LAST + layers for layers in self.sensitive_layers(entry)]
        else:
            return []
        added = []
        for exclude in excludes:
            fallback = candidate.with_exclude(exclude)
            if fallback not in self.entries:
                self.entries[fallback] = Entry(fallback)
                added.append(self.entries[fallback])
        return added

    def sensitive_layers(self, entry: Entry) -> list[tuple[str, ...]]:
        """Probe each layer kept in float (with first/last) on a small eval subset; the greedy
        fallbacks keep the 1, 2, … ``fallback_layers`` layers whose exclusion helped most."""
        from edgekit.optimize.measure import build_variant

        runtime = entry.candidate.runtime
        if runtime in self.sensitivity_done:
            return []
        self.sensitivity_done.add(runtime)
        config = self.config
        middle = weighted_layers(self.source)[1:-1]   # first/last are already in float
        names = middle[: config.sensitivity_nodes]
        subset = subset_data(self.data, config.sensitivity_samples)
        scored = []
        for name in names:
            if self.expired():
                break
            probe = dataclasses.replace(entry.candidate, exclude=FIRST_LAST + (name,), threads=None)
            try:
                variant = build_variant(probe, self.source, self.sha, self.meta, self.data.calib,
                                        config.calib_size, config.seed)
                quality = self.executor.judge(probe, variant, self.meta, subset, self.reference_subset(subset))
            except Exception as exc:  # noqa: BLE001 - a layer that cannot be excluded is just not a fallback
                self.log(f"  sensitivity: {name} skipped ({exc})")
                continue
            drop = quality_drop(self.baseline_subset_quality(subset), quality)
            if drop is not None:
                scored.append((drop, name))
        ranked = [name for _, name in sorted(scored)]
        self.log(f"  sensitivity of {len(scored)} layers on {runtime}: least loss when kept in float: "
                 f"{', '.join(ranked[:config.fallback_layers]) or '-'}")
        most = min(config.fallback_layers, len(middle) - 1)   # at least one layer stays INT8
        return [tuple(ranked[:k]) for k in range(1, min(most, len(ranked)) + 1)]

    def reference_subset(self, subset):
        count = len(subset.agreement_images)
        return {name: value[:count] for name, value in self.reference.items()}

    def baseline_subset_quality(self, subset) -> Quality:
        key = ("baseline-subset", len(subset.agreement_images))
        if key not in self.qualities:
            variant = self.variant_of(self.baseline)
            self.qualities[key] = self.executor.judge(self.baseline.candidate, variant, self.meta, subset,
                                                      self.reference_subset(subset))
        return self.qualities[key]

    def confirm(self, finalists: list[Entry]) -> bool:
        """Full timing of FP32 and the fastest finalists, one after the other in this run."""
        chosen = [self.baseline] + sorted(finalists[1:], key=lambda e: e.ms)[:FINALISTS]
        fp32 = [e for e in finalists[1:] if e.candidate.precision == "fp32"]
        if fp32 and not any(e.candidate.precision == "fp32" for e in chosen[1:]):
            chosen.append(min(fp32, key=lambda e: e.ms))   # the best FP32 is the basis of every speed-up
        for entry in finalists[1:]:
            if entry not in chosen:
                entry.verdict = f"in budget, not among the {FINALISTS} fastest finalists"
        keys = {id(e): self.key_of(e.candidate, "full") for e in chosen}
        runs = {self.cache[k]["run_id"] for k in keys.values() if k in self.cache}
        if all(k in self.cache for k in keys.values()) and len(runs) == 1:
            for entry in chosen:
                entry.full = timed_from_row(self.cache[keys[id(entry)]])
                self._store(entry, "full", reused=self.cache[keys[id(entry)]]["run_id"])
            return True
        if self.expired() and len(chosen) > 1:
            self.log("time limit: the finalists keep their latency-pass timing (not confirmed)")
            return False
        for entry in chosen:
            self.log(f"  confirming {entry.candidate.label}")
            try:
                entry.full = self.executor.time(entry.candidate, self.variant_of(entry), self.meta, self.config.full)
            except Exception as exc:  # noqa: BLE001 - recorded; the candidate keeps its latency-pass figure
                entry.reason = f"confirmation failed: {exc}"
                continue
            self._store(entry, "full")
        if len(chosen) > 1 and self.baseline.full is not None:   # FP32 again, after the others: the machine's
            self.log(f"  timing {self.baseline.candidate.label} again (has the machine's speed changed?)")
            try:                                                 # speed held if it takes what it took first
                self.baseline.recheck = self.executor.time(self.baseline.candidate, self.variant_of(self.baseline),
                                                           self.meta, self.config.full)
            except Exception:  # noqa: BLE001 - no recheck: no drift stated either way
                self.baseline.recheck = None
        return True

    def _final_verdicts(self, finalists: list[Entry], winner: Entry | None) -> None:
        for entry in finalists[1:]:
            if entry is winner:
                entry.verdict = "winner"
            elif not entry.verdict:
                gain = speedup(self.baseline.ms, entry.ms) or 0
                entry.verdict = (f"in budget, not faster than FP32 by {MIN_SPEEDUP - 1:.0%} "
                                 f"when confirmed ({gain:.2f}x)"
                                 if gain < MIN_SPEEDUP else f"in budget, slower than {winner.candidate.label}"
                                 if winner else "in budget")
        self.baseline.verdict = "FP32 baseline" + (" (kept: nothing beat it)" if winner is None else "")
        for entry in self.entries.values():
            if entry.status == "pending":
                entry.status, entry.verdict = "not measured", "not measured: time limit"
            elif entry.status in ("unsupported", "failed") and not entry.verdict:
                entry.verdict = f"{entry.status}: {entry.reason}"

    # ---- one measurement --------------------------------------------------------
    def expired(self) -> bool:
        limit = self.config.time_limit_s
        return limit is not None and time.monotonic() - self.started > limit

    def variant_of(self, entry: Entry):
        from edgekit.matrix.variants import Variant
        from edgekit.optimize.measure import build_variant

        if entry.variant_path and Path(entry.variant_path).is_file():
            return Variant(Path(entry.variant_path), dict(entry.variant_options or {}))
        source = self.context.source(self.config.model, entry.candidate.batch)   # a zoo model exported at the batch
        variant = build_variant(entry.candidate, source.path, source.sha256, source.meta, self.data.calib,
                                self.config.calib_size, self.config.seed)
        entry.variant_path, entry.variant_options = str(variant.path), dict(variant.runtime_options)
        return variant

    def time_quick(self, entry: Entry) -> None:
        """The latency pass of one candidate (reused from the store when this search measured it before)."""
        key = self.key_of(entry.candidate, "quick")
        row = self.cache.get(key)
        if row is not None and row["status"] == "ok":
            entry.status, entry.quick, entry.reused_from = "ok", timed_from_row(row), row["run_id"]
            if (row.get("config") or {}).get("judged"):
                entry.quality = quality_from_row(row)
            self._store(entry, "quick", reused=row["run_id"])
            return
        if self.expired() and entry is not self.baseline:  # the baseline is always measured
            return
        self.log(f"  timing {entry.candidate.label}")
        try:
            entry.quick = self.executor.time(entry.candidate, self.variant_of(entry), self.meta, self.config.quick)
            entry.status = "ok"
        except Exception as exc:  # noqa: BLE001 - any backend failure is this candidate's result
            from edgekit.optimize.measure import failed_record

            record = failed_record(entry.candidate, self.config.model, key, self.model_name, self.sha, exc, {}, 0.0)
            entry.status, entry.reason = record.status, record.reason
            self.store.add(self.run_id, record)
            return
        self._store(entry, "quick")

    def judge(self, entry: Entry) -> None:
        """Accuracy/agreement of a candidate (once per file, runtime and precision options)."""
        if entry.status != "ok":
            return
        if entry.quality is None:
            variant = self.variant_of(entry)
            options = {k: v for k, v in {**dict(entry.candidate.options), **variant.runtime_options}.items()
                       if k not in ("hint", "streams", "threads")}
            key = (str(variant.path), entry.candidate.runtime, tuple(sorted(options.items(), key=str)))
            if key not in self.qualities:
                self.log(f"  judging {entry.candidate.label}")
                try:
                    self.qualities[key] = self.executor.judge(entry.candidate, variant, self.meta, self.data,
                                                              self.reference)
                except Exception as exc:  # noqa: BLE001 - the candidate cannot be judged: it is not a finalist
                    entry.verdict = f"not judged: {exc}"
                    return
            entry.quality = self.qualities[key]
        base = self.baseline.quality if entry is not self.baseline else entry.quality
        entry.drop = quality_drop(base, entry.quality) if entry is not self.baseline else 0.0
        self._store(entry, "quick")

    def _store(self, entry: Entry, stage: str, reused: int | None = None) -> None:
        from edgekit.optimize.measure import to_record

        timed = entry.full if stage == "full" else entry.quick
        config = {"stage": stage, "judged": entry.quality is not None, "drop_pt": entry.drop,
                  "variant": entry.candidate.variant, "exclude": list(entry.candidate.exclude),
                  "variant_file": Path(entry.variant_path).name if entry.variant_path else "",
                  "data": self.data.name, "timing": dataclasses.asdict(self.config.full if stage == "full"
                                                                        else self.config.quick)}
        if reused is not None:
            config["reused_from_run"] = reused
        record = to_record(entry.candidate, self.config.model, self.key_of(entry.candidate, stage), self.model_name,
                           self.sha, timed, entry.quality, config, 0.0)
        self.store.add(self.run_id, record)
