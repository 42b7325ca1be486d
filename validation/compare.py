"""Do two runs of one config reach the same verdicts? (docs/validation.md §4c)

A claim of the report must survive a re-run with another thread count, another CPU instruction set
(``ATEN_CPU_CAPABILITY=avx2``) or another machine. :func:`compare_runs` reads both run folders' stored records
and lists, per claim, its *verdict* in each run and, per headline number, its interval in each run:

* verdicts (must be equal): per configured model and checkpoint and target, the best parameter-free spectrum
  model (over seeds: the most frequent one), whether its target statistic — the median over B of |log(pred /
  measured median)|, docs/validation.md §4d (records made before it existed: the median |log ratio| over
  the batches) — is within ×1.15 (the issue's target) and whether the sample-spike band covers ≥ 70% of the
  batches — each read from the interval like
  the exponent claims: "yes"/"no" when the 95% interval lies on one side of the target, "undecided" when it
  contains it (a one-seed run's coverage has no interval: its point value decides); per optimizer, the
  exponent claim's outcome (HELD / NOT HELD / UNDECIDED, ``validation.report.claim_outcome``) and whether
  the pre-registered champion beats every baseline (``beats_every_baseline``);
* intervals (must overlap): the mean over seeds of every spectrum model's median |log ratio| and target
  statistic with their 95% t-intervals, band coverage, B_× and the exponent (one-seed runs: the bootstrap
  CI of the median |log ratio| and of the exponent).

Runs with training-seed replicas are compared on their seed-aggregated records, one-seed runs on the step-5
and step-6 records. Records are read through :class:`validation.store.ResultStore` (checksums verified).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from validation.experiments.analysis_records import (
    LRAnalysisRecord,
    PredictionRecord,
    beats_every_baseline,
)
from validation.experiments.lr_analysis import LR_STEP
from validation.experiments.seed_aggregate import STEP as SEED_STEP
from validation.experiments.seed_aggregate import SeedAggregateRecord, best_theory_model, consensus
from validation.experiments.spectrum_scoring import STEP as PREDICTION_STEP
from validation.report import CLAIMS, claim_outcome
from validation.store import ResultStore

__all__ = ["WITHIN_FACTOR", "COVERAGE_TARGET", "Comparison", "Finding", "compare_runs"]

WITHIN_FACTOR = 1.15
"""The spectral accuracy target of issue 9: median |log(pred/measured)| ≤ log 1.15."""
COVERAGE_TARGET = 0.7
"""The sample-spike band's coverage target: ≥ 70% of the measured batches inside the 10–90% band."""

Interval = tuple[float, float, float]
"""(estimate, low, high)."""


@dataclass(frozen=True)
class Finding:
    """One compared item: a verdict (``kind == "verdict"``: equal strings agree) or an interval
    (``kind == "interval"``: agree when the two intervals overlap; an interval with a NaN bound is compared by
    its estimate lying in the other interval)."""

    item: str
    kind: str
    a: str
    b: str
    agree: bool


@dataclass(frozen=True)
class Comparison:
    """All findings of :func:`compare_runs`; ``missing`` lists items only one run has."""

    findings: tuple[Finding, ...]
    missing: tuple[str, ...]

    @property
    def verdicts_agree(self) -> bool:
        return all(f.agree for f in self.findings if f.kind == "verdict")

    @property
    def intervals_agree(self) -> bool:
        return all(f.agree for f in self.findings if f.kind == "interval")

    def summary(self) -> str:
        """One line: how many verdicts and intervals agree."""
        v = [f for f in self.findings if f.kind == "verdict"]
        i = [f for f in self.findings if f.kind == "interval"]
        agree_v, agree_i = sum(f.agree for f in v), sum(f.agree for f in i)
        return (
            f"verdicts: {agree_v}/{len(v)} agree; intervals: {agree_i}/{len(i)} overlap; "
            f"{len(self.missing)} items in one run only"
        )

    def table(self) -> str:
        """A markdown table of every finding (disagreements first)."""
        rows = sorted(self.findings, key=lambda f: (f.agree, f.kind != "verdict"))
        lines = ["| item | kind | run A | run B | agree |", "|---|---|---|---|---|"]
        lines += [f"| {f.item} | {f.kind} | {f.a} | {f.b} | {'yes' if f.agree else '**no**'} |" for f in rows]
        return "\n".join(lines)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _interval_text(iv: Interval) -> str:
    return f"{_fmt(iv[0])} [{_fmt(iv[1])}, {_fmt(iv[2])}]"


def _overlap(a: Interval, b: Interval) -> bool:
    def inside(x: float, iv: Interval) -> bool:
        return math.isfinite(x) and iv[1] <= x <= iv[2]

    if all(math.isfinite(v) for v in (*a[1:], *b[1:])):
        return a[1] <= b[2] and b[1] <= a[2]
    if not (math.isfinite(a[0]) and math.isfinite(b[0])):
        return not (math.isfinite(a[0]) or math.isfinite(b[0]))  # both undefined agree
    return inside(a[0], b) or inside(b[0], a) or a[0] == b[0]


def _items(store: ResultStore) -> Iterator[tuple[str, str, str | Interval]]:
    """(item, kind, verdict text or interval) of one run."""
    aggregates = [SeedAggregateRecord.from_dict(r) for r in store.records(SEED_STEP)]
    if aggregates:
        yield from _aggregate_items(aggregates)
        return
    for pred in (PredictionRecord.from_dict(r) for r in store.records(PREDICTION_STEP)):
        for name, t in pred.targets.items():
            head = f"{pred.model} ckpt {pred.ckpt} {name}"
            best = best_theory_model(t)
            yield f"{head}: best parameter-free model", "verdict", best
            if best:
                err = t.scores[best].per_b if t.scores[best].per_b.n else t.scores[best].overall
                within = _against(err.lo, err.hi, math.log(WITHIN_FACTOR), above=False)
                yield f"{head}: within ×{WITHIN_FACTOR}", "verdict", within
            for model, score in t.scores.items():
                m = score.overall
                yield f"{head}: {model} median abs log ratio", "interval", (m.median, m.lo, m.hi)
                if score.per_b.n:
                    m = score.per_b
                    yield f"{head}: {model} target statistic", "interval", (m.median, m.lo, m.hi)
            band = t.bands.get("sample_spikes")
            if band is not None:
                yield f"{head}: band covers ≥ 70%", "verdict", _yes(band.coverage >= COVERAGE_TARGET)
    for an in (LRAnalysisRecord.from_dict(r) for r in store.records(LR_STEP)):
        for opt, target in CLAIMS:
            if opt in an.optimizers:
                res = an.optimizers[opt]
                head = f"{an.model} ckpt {an.ckpt} {opt}"
                fit = res.exponent_strict
                yield f"{head}: '{target}' claim", "verdict", claim_outcome(fit, target).split(" (")[0]
                yield f"{head}: exponent", "interval", (fit.exponent, fit.lo, fit.hi)
                yield f"{head}: champion beats every baseline", "verdict", _yes(
                    beats_every_baseline(res.paired_wilcoxon_holm)
                )


def _aggregate_items(records: list[SeedAggregateRecord]) -> Iterator[tuple[str, str, str | Interval]]:
    for rec in records:
        for name, t in rec.targets.items():
            head = f"{rec.model} ckpt {rec.ckpt} {name}"
            best, _ = consensus(t.best_theory)
            yield f"{head}: best parameter-free model", "verdict", best
            errors = t.target_errors if best in t.target_errors else t.errors
            if best in errors:
                err = errors[best]
                within = _against(err.lo, err.hi, math.log(WITHIN_FACTOR), above=False)
                yield f"{head}: within ×{WITHIN_FACTOR}", "verdict", within
            for model, e in t.errors.items():
                yield f"{head}: {model} median abs log ratio", "interval", (e.mean, e.lo, e.hi)
            for model, e in t.target_errors.items():
                yield f"{head}: {model} target statistic", "interval", (e.mean, e.lo, e.hi)
            c = t.coverage
            yield f"{head}: band covers ≥ 70%", "verdict", _against(c.lo, c.hi, COVERAGE_TARGET, above=True)
            yield f"{head}: band coverage", "interval", (c.mean, c.lo, c.hi)
            x = t.crossover
            yield f"{head}: B_×", "interval", (x.mean, x.lo, x.hi)
        for opt, target in CLAIMS:
            if opt in rec.optimizers:
                o = rec.optimizers[opt]
                head = f"{rec.model} ckpt {rec.ckpt} {opt}"
                claim = claim_outcome(o.exponent_fit, target).split(" (")[0]
                yield f"{head}: '{target}' claim", "verdict", claim
                e = o.exponent
                yield f"{head}: exponent", "interval", (e.mean, e.lo, e.hi)
                beats = beats_every_baseline(o.paired)
                yield f"{head}: champion beats every baseline", "verdict", _yes(beats)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _against(lo: float, hi: float, threshold: float, *, above: bool) -> str:
    """A target verdict read from an interval, as the exponent claims are: "yes" when the whole interval is
    on the target's side of ``threshold`` (``above``: ≥ it; else ≤ it), "no" when the whole interval is on
    the other side, "undecided" when it contains the threshold (or has a NaN bound)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "undecided"
    low_side, high_side = (lo >= threshold, hi < threshold) if above else (hi <= threshold, lo > threshold)
    return "yes" if low_side else "no" if high_side else "undecided"


def compare_runs(run_a: str | Path, run_b: str | Path) -> Comparison:
    """The verdicts and intervals of two run folders side by side (module docstring)."""
    items_a = {item: (kind, value) for item, kind, value in _items(ResultStore(run_a))}
    items_b = {item: (kind, value) for item, kind, value in _items(ResultStore(run_b))}
    findings = []
    for item in items_a.keys() & items_b.keys():
        kind, va = items_a[item]
        _, vb = items_b[item]
        if isinstance(va, tuple) and isinstance(vb, tuple):
            findings.append(Finding(item, kind, _interval_text(va), _interval_text(vb), _overlap(va, vb)))
        else:
            findings.append(Finding(item, kind, str(va), str(vb), va == vb))
    missing = tuple(sorted(items_a.keys() ^ items_b.keys()))
    return Comparison(tuple(sorted(findings, key=lambda f: f.item)), missing)
