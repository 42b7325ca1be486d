"""Aggregation over training seeds (docs/validation.md §4b): the claims of steps 5 and 6 as the mean over a
network's independent training seeds with a 95% Student-t interval, per configured model and checkpoint.

Each configured network runs as ``RunConfig.training_seeds`` replicas (``validation.config.expand_models``);
every replica has its own step-5 (:class:`~validation.experiments.analysis_records.PredictionRecord`) and,
where thresholds were measured, step-6 record
(:class:`~validation.experiments.analysis_records.LRAnalysisRecord`). This step reads them back and writes one
:class:`SeedAggregateRecord` per (configured model, checkpoint):

* a scalar per seed → :class:`SeedMean`: the per-seed values and x̄ ± t_{0.975, n−1}·s/√n over the n seeds
  where it is finite (``validation.intervals.student_t_interval``; n = 1: no interval, "one seed: not
  seed-aggregated"). Scalars: each spectrum model's median |log(pred/measured)| for H_B and G_B (over the
  batches, and the target statistic over B against the measured median with its leave-one-B-out version), the
  sample-spike band's coverage and B_×, λ₁(H), λ₁(G); per optimizer the strict exponent d log η_max / d log B
  and each predictor's median |log(pred/measured)|;
* labels per seed: the best spectrum model (step 5's leave-one-B-out rule) and the best parameter-free one
  (:func:`best_theory_model`), with how many seeds agree (:func:`consensus`);
* the learning-rate predictors pooled over seeds: the champion against each baseline by the paired Wilcoxon
  test of ``validation.stats.paired_wilcoxon_holm`` on the union of all seeds' (B, trial seed) cells where the
  champion and every baseline are defined (at least :data:`MIN_PAIRED_CELLS`), Holm-corrected over the
  baselines; pooled scores by ``validation.stats.median_abs_log_ratio`` (CI resampling whole training seeds).

Reads stored records only; recomputed at the end of every run with ≥ 2 training seeds.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from validation import steps
from validation.config import RunConfig
from validation.experiments.analysis_records import (
    ExponentFit,
    LRAnalysisRecord,
    LRScore,
    OptimizerAnalysis,
    PairedTest,
    PredictionRecord,
    TargetPrediction,
)
from validation.experiments.lr_analysis import LR_PREDICTORS, LR_STEP, champion_for
from validation.experiments.spectrum_models import SPECTRUM_MODELS, TARGETS
from validation.experiments.spectrum_scoring import STEP as PREDICTION_STEP
from validation.intervals import student_t_interval
from validation.records import decode_float, decode_floats
from validation.stats import ConfidenceInterval, classify_exponent, median_abs_log_ratio, paired_wilcoxon_holm
from validation.store import ResultStore, atomic_write_text, cell_key

__all__ = [
    "CONFIDENCE",
    "MIN_PAIRED_CELLS",
    "STEP",
    "OptimizerSeedAggregate",
    "SeedAggregateRecord",
    "SeedMean",
    "TargetSeedAggregate",
    "aggregate_checkpoint",
    "aggregate_run",
    "best_theory_model",
    "consensus",
    "pooled_predictor_comparison",
    "summary_rows",
    "write_summary",
]

STEP = steps.SEED_AGGREGATE
CONFIDENCE = 0.95
"""Coverage of every across-seed interval."""
MIN_PAIRED_CELLS = 5
"""Fewest common cells for a paired test (the rule of step 6's per-seed tests)."""
SAMPLE_SPIKES = "sample_spikes"
"""The spectrum model whose predicted band (coverage, B_×) is aggregated."""

_f = decode_float


# ------------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class SeedMean:
    """One scalar over training seeds: ``values`` (one per seed, in training-seed order; NaN where the seed
    has no finite value), and over the ``n`` finite ones the mean with its Student-t interval [``lo``,
    ``hi``] (n − 1 degrees of freedom; NaN bounds for n < 2, NaN mean for n = 0)."""

    values: tuple[float, ...]
    mean: float
    lo: float
    hi: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float], confidence: float = CONFIDENCE) -> SeedMean:
        """The mean and t-interval of the finite entries of ``values``
        (``validation.intervals.student_t_interval``)."""
        vals = tuple(float(v) for v in values)
        finite = [v for v in vals if math.isfinite(v)]
        ci = student_t_interval(finite, confidence)
        return cls(vals, ci.estimate, ci.low, ci.high, len(finite))

    @property
    def aggregated(self) -> bool:
        """Whether there is an interval (≥ 2 seeds with a finite value)."""
        return self.n >= 2

    def to_dict(self) -> dict[str, Any]:
        return {"values": list(self.values), "mean": self.mean, "lo": self.lo, "hi": self.hi, "n": self.n}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SeedMean:
        return cls(tuple(decode_floats(d["values"])), _f(d["mean"]), _f(d["lo"]), _f(d["hi"]), int(d["n"]))


def consensus(labels: Sequence[str]) -> tuple[str, int]:
    """The most frequent non-empty label and how many seeds carry it (ties: the one seen first;
    ``("", 0)`` without labels)."""
    counts = Counter(label for label in labels if label)
    if not counts:
        return "", 0
    return counts.most_common(1)[0]


@dataclass(frozen=True)
class TargetSeedAggregate:
    """Step 5 for one target matrix (H or G) over training seeds."""

    lambda_1: SeedMean
    errors: dict[str, SeedMean]
    """Per spectrum model: median over B of |log(pred/measured)| (step 5's ``overall.median``)."""
    best_model: tuple[str, ...]
    """Per seed: step 5's best model by leave-one-B-out error ("" where the seed has no record)."""
    best_theory: tuple[str, ...]
    """Per seed: the best parameter-free model (:func:`best_theory_model`)."""
    coverage: SeedMean
    """The sample-spike model's 10–90% band: fraction of measured batches inside."""
    crossover: SeedMean
    """The sample-spike model's crossover batch size B_×."""
    target_errors: dict[str, SeedMean] = field(default_factory=dict)
    """Per spectrum model: the target statistic, median over B of |log(pred / measured median)| (step 5's
    ``per_b.median``, docs/validation.md §4d)."""
    target_loo: dict[str, SeedMean] = field(default_factory=dict)
    """Per spectrum model: the target statistic leave-one-B-out (step 5's ``per_b_loo``)."""
    design: dict[str, SeedMean] = field(default_factory=dict)
    """The sample-spike band's design check per seed (``expected``, ``q95``, ``p_value``,
    ``target_probability``; docs/validation.md §4d); empty for records made before it existed."""

    def design_combined_p(self) -> float:
        """Fisher's combination of the seeds' design-check p-values (independent training seeds):
        P(χ²_{2n} ≥ −2 Σ log p_i); NaN without any."""
        from scipy import stats as sps

        sm = self.design.get("p_value")
        p = np.array([v for v in sm.values if math.isfinite(v)]) if sm is not None else np.array([])
        if p.size == 0:
            return math.nan
        return float(sps.chi2.sf(-2.0 * np.sum(np.log(np.clip(p, 1e-300, 1.0))), 2 * p.size))

    def to_dict(self) -> dict[str, Any]:
        return {
            "lambda_1": self.lambda_1.to_dict(),
            "errors": {k: v.to_dict() for k, v in self.errors.items()},
            "best_model": list(self.best_model),
            "best_theory": list(self.best_theory),
            "coverage": self.coverage.to_dict(),
            "crossover": self.crossover.to_dict(),
            "target_errors": {k: v.to_dict() for k, v in self.target_errors.items()},
            "target_loo": {k: v.to_dict() for k, v in self.target_loo.items()},
            "design": {k: v.to_dict() for k, v in self.design.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TargetSeedAggregate:
        return cls(
            lambda_1=SeedMean.from_dict(d["lambda_1"]),
            errors={k: SeedMean.from_dict(v) for k, v in d["errors"].items()},
            best_model=tuple(str(s) for s in d["best_model"]),
            best_theory=tuple(str(s) for s in d["best_theory"]),
            coverage=SeedMean.from_dict(d["coverage"]),
            crossover=SeedMean.from_dict(d["crossover"]),
            target_errors={k: SeedMean.from_dict(v) for k, v in d.get("target_errors", {}).items()},
            target_loo={k: SeedMean.from_dict(v) for k, v in d.get("target_loo", {}).items()},
            design={k: SeedMean.from_dict(v) for k, v in d.get("design", {}).items()},
        )


@dataclass(frozen=True)
class OptimizerSeedAggregate:
    """Step 6 for one optimizer over training seeds."""

    exponents: tuple[ExponentFit, ...]
    """Per seed: step 6's strict exponent fit (NaN, "no record" where the seed has none)."""
    exponent: SeedMean
    """The strict exponents' mean and t-interval over seeds."""
    scores: dict[str, SeedMean]
    """Per predictor: each seed's median |log(pred/measured)| over its cells."""
    pooled: dict[str, LRScore]
    """Per predictor: median |log(pred/measured)| and fractions within 1.25× / 1.5× over all seeds' cells."""
    pooled_ci: dict[str, tuple[float, float]]
    """Per predictor: 95% bootstrap CI of the pooled median, resampling whole training seeds."""
    champion: str
    paired: dict[str, PairedTest]
    """Champion vs each baseline on the pooled common cells, Holm-corrected over the baselines (empty when
    fewer than :data:`MIN_PAIRED_CELLS` cells)."""
    n_cells: int
    """Pooled cells where the champion and every baseline are defined."""

    @property
    def exponent_fit(self) -> ExponentFit:
        """The across-seed exponent as an :class:`ExponentFit` (mean, t-interval, pre-registered verdict of
        ``validation.stats.classify_exponent``)."""
        e = self.exponent
        verdict = classify_exponent(ConfidenceInterval(e.mean, e.lo, e.hi, CONFIDENCE))
        return ExponentFit(e.mean, e.lo, e.hi, verdict, "mean of per-seed fits", n_seeds=e.n)

    @property
    def fit_on_all_b(self) -> bool:
        """Whether any seed's exponent was fitted on every B (fewer than two below B*/2)."""
        return any(fit.fit_on_all_b for fit in self.exponents)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exponents": [fit.to_dict() for fit in self.exponents],
            "exponent": self.exponent.to_dict(),
            "scores": {k: v.to_dict() for k, v in self.scores.items()},
            "pooled": {k: v.to_dict() for k, v in self.pooled.items()},
            "pooled_ci": {k: list(v) for k, v in self.pooled_ci.items()},
            "champion": self.champion,
            "paired": {k: v.to_dict() for k, v in self.paired.items()},
            "n_cells": self.n_cells,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OptimizerSeedAggregate:
        return cls(
            exponents=tuple(ExponentFit.from_dict(e) for e in d["exponents"]),
            exponent=SeedMean.from_dict(d["exponent"]),
            scores={k: SeedMean.from_dict(v) for k, v in d["scores"].items()},
            pooled={k: LRScore.from_dict(v) for k, v in d["pooled"].items()},
            pooled_ci={k: (_f(v[0]), _f(v[1])) for k, v in d["pooled_ci"].items()},
            champion=str(d["champion"]),
            paired={k: PairedTest.from_dict(v) for k, v in d["paired"].items()},
            n_cells=int(d["n_cells"]),
        )


@dataclass(frozen=True)
class SeedAggregateRecord:
    """The record of one configured model (``model``, the base name) and checkpoint over its replicas."""

    model: str
    ckpt: int
    replicas: tuple[str, ...]
    training_seeds: tuple[int, ...]
    confidence: float
    targets: dict[str, TargetSeedAggregate]
    optimizers: dict[str, OptimizerSeedAggregate] = field(default_factory=dict)

    @property
    def n_seeds(self) -> int:
        """Training seeds with a step-5 record (finite λ₁(H))."""
        return self.targets["H"].lambda_1.n if "H" in self.targets else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ckpt": self.ckpt,
            "replicas": list(self.replicas),
            "training_seeds": list(self.training_seeds),
            "n_seeds": self.n_seeds,
            "confidence": self.confidence,
            "targets": {k: t.to_dict() for k, t in self.targets.items()},
            "optimizers": {k: o.to_dict() for k, o in self.optimizers.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SeedAggregateRecord:
        return cls(
            model=str(d["model"]),
            ckpt=int(d["ckpt"]),
            replicas=tuple(str(r) for r in d["replicas"]),
            training_seeds=tuple(int(s) for s in d["training_seeds"]),
            confidence=_f(d["confidence"]),
            targets={k: TargetSeedAggregate.from_dict(v) for k, v in d["targets"].items()},
            optimizers={k: OptimizerSeedAggregate.from_dict(v) for k, v in d["optimizers"].items()},
        )


# ------------------------------------------------------------------------------------------ step 5
def best_theory_model(t: TargetPrediction) -> str:
    """The parameter-free ("theory", or unregistered) spectrum model with the smallest leave-one-B-out error
    (NaN counts as +∞; the first registered on ties)."""
    theory = [m for m in t.scores if m not in SPECTRUM_MODELS or SPECTRUM_MODELS[m].kind == "theory"]
    if not theory:
        return ""
    return min(theory, key=lambda m: math.inf if math.isnan(t.scores[m].loo_b) else t.scores[m].loo_b)


def _target(preds: Sequence[PredictionRecord | None], target: str) -> TargetSeedAggregate:
    ts = [p.targets.get(target) if p is not None else None for p in preds]
    nan = math.nan
    names = list(dict.fromkeys(m for t in ts if t is not None for m in t.scores))

    def per_seed(value: Any) -> SeedMean:
        return SeedMean.of([value(t) if t is not None else nan for t in ts])

    def band(t: TargetPrediction, name: str) -> float:
        b = t.bands.get(SAMPLE_SPIKES)
        return float(getattr(b, name)) if b is not None else nan

    return TargetSeedAggregate(
        lambda_1=per_seed(lambda t: t.lambda_1),
        errors={
            m: per_seed(lambda t, m=m: t.scores[m].overall.median if m in t.scores else nan) for m in names
        },
        best_model=tuple(t.best_model if t is not None else "" for t in ts),
        best_theory=tuple(best_theory_model(t) if t is not None else "" for t in ts),
        coverage=per_seed(lambda t: band(t, "coverage")),
        crossover=per_seed(lambda t: band(t, "crossover_batch")),
        target_errors={
            m: per_seed(lambda t, m=m: t.scores[m].per_b.median if m in t.scores else nan) for m in names
        },
        target_loo={
            m: per_seed(lambda t, m=m: t.scores[m].per_b_loo if m in t.scores else nan) for m in names
        },
        design=_design(ts),
    )


def _design(ts: Sequence[TargetPrediction | None]) -> dict[str, SeedMean]:
    """The sample-spike band's design check over seeds (empty when no seed's record has one)."""
    checks = [
        t.bands[SAMPLE_SPIKES].design if t is not None and SAMPLE_SPIKES in t.bands else {} for t in ts
    ]
    if not any(checks):
        return {}
    return {
        k: SeedMean.of([c.get(k, math.nan) for c in checks])
        for k in ("expected", "q95", "p_value", "target_probability")
    }


# ------------------------------------------------------------------------------------------ step 6
def _cells(res: OptimizerAnalysis, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, measured strict η_max) per (B, trial seed) cell of one seed's analysis, in the record's
    order (B ascending, the finite measurements of each B)."""
    pred, meas = [], []
    for i, b in enumerate(res.batch_sizes):
        for value in res.measured_strict.get(b, ()):
            pred.append(res.predictors[key][i])
            meas.append(value)
    return np.asarray(pred, dtype=float), np.asarray(meas, dtype=float)


def pooled_predictor_comparison(
    analyses: Sequence[OptimizerAnalysis], n_boot: int, seed: int, optimizer: str
) -> tuple[dict[str, LRScore], dict[str, tuple[float, float]], dict[str, PairedTest], int, str]:
    """The predictors over the union of the seeds' cells: per predictor the pooled
    ``validation.stats.median_abs_log_ratio`` (bootstrap CI resampling whole seeds); the champion against each
    baseline by ``validation.stats.paired_wilcoxon_holm`` (one-sided: the champion more accurate) on the cells
    where the champion and every baseline are defined, Holm-corrected over the baselines (no tests with fewer
    than :data:`MIN_PAIRED_CELLS` such cells). The champion is ``optimizer``'s pre-registered one on the
    pooled cells (``validation.experiments.lr_analysis.champion_for``: it looks at which cells are defined,
    never at the scores). Returns (scores, CIs, tests, number of common cells, champion)."""
    keys = [k for k in LR_PREDICTORS.keys() if all(k in res.predictors for res in analyses)]
    scores: dict[str, LRScore] = {}
    cis: dict[str, tuple[float, float]] = {}
    abs_r: dict[str, np.ndarray] = {}
    for k in keys:
        pairs = [_cells(res, k) for res in analyses]
        pred = np.concatenate([p for p, _ in pairs]) if pairs else np.zeros(0)
        meas = np.concatenate([m for _, m in pairs]) if pairs else np.zeros(0)
        groups = np.concatenate([np.full(p.size, i) for i, (p, _) in enumerate(pairs)]) if pairs else pred
        ok = np.isfinite(pred) & np.isfinite(meas) & (pred > 0) & (meas > 0)
        abs_r[k] = np.full(pred.shape, np.nan)
        abs_r[k][ok] = np.abs(np.log(pred[ok] / meas[ok]))
        if ok.any():
            acc = median_abs_log_ratio(pred[ok], meas[ok], groups=groups[ok], n_resamples=n_boot, seed=seed)
            scores[k] = LRScore(acc.median_abs.estimate, acc.within_1_25, acc.within_1_5)
            cis[k] = (acc.median_abs.low, acc.median_abs.high)
    champion = champion_for(optimizer, abs_r)
    compared = [k for k in keys if k == champion or LR_PREDICTORS[k].kind == "baseline"]
    if champion not in compared or len(compared) < 2:
        return scores, cis, {}, 0, champion
    common = np.all(np.isfinite(np.vstack([abs_r[k] for k in compared])), axis=0)
    n = int(common.sum())
    if n < MIN_PAIRED_CELLS:
        return scores, cis, {}, n, champion
    rows = paired_wilcoxon_holm({k: abs_r[k][common] for k in compared}, champion, alternative="less")
    tests = {
        row["method"]: PairedTest(row["p_value"], row["p_holm"], row["n_cells"], row["median_difference"])
        for row in rows
    }
    return scores, cis, tests, n, champion


def _optimizer(lrs: Sequence[LRAnalysisRecord | None], opt: str, config: RunConfig) -> OptimizerSeedAggregate:
    per_seed = [an.optimizers.get(opt) if an is not None else None for an in lrs]
    missing = ExponentFit(math.nan, math.nan, math.nan, "undecided", "no record")
    fits = tuple(res.exponent_strict if res is not None else missing for res in per_seed)
    present = [res for res in per_seed if res is not None]
    keys = list(dict.fromkeys(k for res in present for k in res.scores))
    scores = {
        k: SeedMean.of(
            res.scores[k].median_abs_log_ratio if res is not None and k in res.scores else math.nan
            for res in per_seed
        )
        for k in keys
    }
    pooled, cis, tests, n_cells, champion = pooled_predictor_comparison(
        present, config.bootstrap_samples, config.seed, opt
    )
    return OptimizerSeedAggregate(
        exponents=fits,
        exponent=SeedMean.of(fit.exponent for fit in fits),
        scores=scores,
        pooled=pooled,
        pooled_ci=cis,
        champion=champion,
        paired=tests,
        n_cells=n_cells,
    )


# ------------------------------------------------------------------------------------------ the step
def _load(store: ResultStore, step: str, key: str) -> dict[str, Any] | None:
    return store.get(step, key) if store.has(step, key) else None


def aggregate_checkpoint(
    store: ResultStore, config: RunConfig, *, model: str, ckpt: int
) -> SeedAggregateRecord:
    """The record of the configured model ``model`` at checkpoint ``ckpt`` over its replicas (a replica
    without a step-5 or step-6 record enters as NaN / "")."""
    replicas = config.replicas(model)
    if not replicas:
        names = [m.base for m in config.configured_models]
        raise ValueError(f"model must be one of the configured models {names}, got {model!r}")
    keys = [cell_key(model=m.name, ckpt=ckpt) for m in replicas]
    raw_preds = [_load(store, PREDICTION_STEP, k) for k in keys]
    raw_lrs = [_load(store, LR_STEP, k) for k in keys]
    preds = [PredictionRecord.from_dict(r) if r is not None else None for r in raw_preds]
    lrs = [LRAnalysisRecord.from_dict(r) if r is not None else None for r in raw_lrs]
    opts = [o for o in config.thresholds.optimizers if any(an and o in an.optimizers for an in lrs)]
    return SeedAggregateRecord(
        model=model,
        ckpt=ckpt,
        replicas=tuple(m.name for m in replicas),
        training_seeds=tuple(m.training_seed for m in replicas),
        confidence=CONFIDENCE,
        targets={
            t: _target(preds, t) for t in TARGETS if any(p is not None and t in p.targets for p in preds)
        },
        optimizers={o: _optimizer(lrs, o, config) for o in opts},
    )


def aggregate_run(store: ResultStore, config: RunConfig) -> dict[str, SeedAggregateRecord]:
    """Every (configured model, checkpoint) with at least one replica's step-5 record, by cell key."""
    out = {}
    for m in config.configured_models:
        for ckpt in range(len(config.checkpoint.levels)):
            if any(
                store.has(PREDICTION_STEP, cell_key(model=r.name, ckpt=ckpt)) for r in config.replicas(m.base)
            ):
                out[cell_key(model=m.base, ckpt=ckpt)] = aggregate_checkpoint(
                    store, config, model=m.base, ckpt=ckpt
                )
    return out


# ------------------------------------------------------------------------------------------ summary CSV
SUMMARY_COLUMNS = ("model", "ckpt", "quantity", "n_seeds", "mean", "lo", "hi", "per_seed", "agree")


def _row(rec: SeedAggregateRecord, quantity: str, sm: SeedMean) -> dict[str, Any]:
    per_seed = ";".join(f"{v:.6g}" for v in sm.values)
    return {"model": rec.model, "ckpt": rec.ckpt, "quantity": quantity, "n_seeds": sm.n, "mean": sm.mean,
            "lo": sm.lo, "hi": sm.hi, "per_seed": per_seed, "agree": ""}  # fmt: skip


def _label_row(rec: SeedAggregateRecord, quantity: str, labels: Sequence[str]) -> dict[str, Any]:
    label, count = consensus(labels)
    n = sum(bool(x) for x in labels)
    return {"model": rec.model, "ckpt": rec.ckpt, "quantity": quantity, "n_seeds": n, "mean": "", "lo": "",
            "hi": "", "per_seed": ";".join(labels), "agree": f"{label} {count}/{n}"}  # fmt: skip


def summary_rows(records: Iterable[SeedAggregateRecord]) -> list[dict[str, Any]]:
    """Long-format rows (model, ckpt, quantity, n_seeds, mean, lo, hi, per_seed, agree) of the records."""
    rows = []
    for rec in records:
        for name, t in sorted(rec.targets.items(), key=lambda item: item[0] != "H"):
            rows.append(_row(rec, f"lambda_1_{name}", t.lambda_1))
            rows += [_row(rec, f"error_{name}:{m}", sm) for m, sm in t.errors.items()]
            rows += [_row(rec, f"target_error_{name}:{m}", sm) for m, sm in t.target_errors.items()]
            rows += [_row(rec, f"target_loo_{name}:{m}", sm) for m, sm in t.target_loo.items()]
            rows += [_row(rec, f"design_{k}_{name}", sm) for k, sm in t.design.items()]
            rows.append(_row(rec, f"band_coverage_{name}", t.coverage))
            rows.append(_row(rec, f"crossover_{name}", t.crossover))
            rows.append(_label_row(rec, f"best_{name}", t.best_model))
            rows.append(_label_row(rec, f"best_theory_{name}", t.best_theory))
        for opt, o in rec.optimizers.items():
            rows.append(_row(rec, f"exponent_strict:{opt}", o.exponent))
            rows += [_row(rec, f"lr_error:{opt}:{k}", sm) for k, sm in o.scores.items()]
            for k, test in o.paired.items():
                rows.append({"model": rec.model, "ckpt": rec.ckpt, "quantity": f"pooled_p_holm:{opt}:{k}",
                             "n_seeds": o.exponent.n, "mean": test.p_holm, "lo": "", "hi": "",
                             "per_seed": "", "agree": f"{test.n_cells} cells"})  # fmt: skip
    return rows


def write_summary(store: ResultStore) -> Path | None:
    """Write ``summary_seed_aggregate.csv`` (:func:`summary_rows` of the stored records); ``None`` when there
    are none."""
    recs = [SeedAggregateRecord.from_dict(r) for r in store.records(STEP)]
    if not recs:
        return None
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SUMMARY_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary_rows(recs))
    path = store.root / f"summary_{STEP}.csv"
    atomic_write_text(path, buf.getvalue())
    return path
