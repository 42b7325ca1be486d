"""Typed records of the analysis steps: step 5 (:class:`PredictionRecord`, spectrum models against the sweep)
and step 6 (:class:`LRAnalysisRecord`, η_max(B) against its predictors).

Each is a frozen dataclass with ``to_dict()`` (the JSON the store writes; non-finite floats are encoded
by the store as ``validation.records.encode_float`` does) and ``from_dict()`` (reads a stored record; every
float goes through ``validation.records.decode_float``; the store's ``step``/``key`` fields are ignored).
Report and figures read these instead of nested string keys. Dictionaries keyed by batch size are
``int``-keyed here and ``str``-keyed in JSON; predictors are keyed by their registry ``key``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from validation.records import decode_float, decode_floats

__all__ = [
    "ExponentFit",
    "LRAnalysisRecord",
    "LRScore",
    "MeanCI",
    "MedianCI",
    "ModelScore",
    "NoiseSpectrumItem",
    "OptimizerAnalysis",
    "PairedTest",
    "PredictedBand",
    "PredictionRecord",
    "TargetPrediction",
]

_f = decode_float


def _by_batch(items: Mapping[str, Any]) -> dict[int, Any]:
    return {int(k): v for k, v in items.items()}


def _float_lists(items: Mapping[str, Any]) -> dict[int, tuple[float, ...]]:
    return {int(k): tuple(decode_floats(v)) for k, v in items.items()}


# ------------------------------------------------------------------------------------------ step 5 parts
@dataclass(frozen=True)
class MeanCI:
    """Mean of the per-batch measurements at one B with a 95% bootstrap CI, and the values themselves."""

    mean: float
    lo: float
    hi: float
    values: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "values": list(self.values)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MeanCI:
        return cls(_f(d["mean"]), _f(d["lo"]), _f(d["hi"]), tuple(decode_floats(d["values"])))


@dataclass(frozen=True)
class MedianCI:
    """Median |log(pred/measured)| over ``n`` cells with a 95% bootstrap CI (NaN when n = 0)."""

    median: float
    lo: float
    hi: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "lo": self.lo, "hi": self.hi, "n": self.n}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MedianCI:
        return cls(_f(d["median"]), _f(d["lo"]), _f(d["hi"]), int(d["n"]))

    @classmethod
    def empty(cls) -> MedianCI:
        return cls(math.nan, math.nan, math.nan, 0)


@dataclass(frozen=True)
class ModelScore:
    """Scores of one spectrum model against the sweep: median |r| over the cells (batches) overall and per
    regime, AIC of the log residuals, mean signed r, fraction of cells within 1.25×, leave-one-B-out mean
    squared log error; ``per_b``: the target statistic, the median over B of |log(pred(B) / measured median
    at B)| with its within-B bootstrap CI (``n`` = the number of B; docs/validation.md §4d) and ``per_b_loo``
    the same statistic with a fitted model refitted without each B (= ``per_b.median`` for a theory
    model)."""

    overall: MedianCI
    edge: MedianCI
    outlier: MedianCI
    aic: float
    mean_log_ratio: float
    within_1_25: float
    loo_b: float
    per_b: MedianCI = MedianCI(math.nan, math.nan, math.nan, 0)
    per_b_loo: float = math.nan

    def regime(self, name: str) -> MedianCI:
        return {"overall": self.overall, "edge": self.edge, "outlier": self.outlier}[name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            "edge": self.edge.to_dict(),
            "outlier": self.outlier.to_dict(),
            "aic": self.aic,
            "mean_log_ratio": self.mean_log_ratio,
            "fraction_within_1.25": self.within_1_25,
            "loo_b": self.loo_b,
            "per_b": self.per_b.to_dict(),
            "per_b_loo": self.per_b_loo,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelScore:
        """A record made before the per-B target statistic existed reads it as NaN (n = 0)."""
        return cls(
            overall=MedianCI.from_dict(d["overall"]),
            edge=MedianCI.from_dict(d["edge"]),
            outlier=MedianCI.from_dict(d["outlier"]),
            aic=_f(d["aic"]),
            mean_log_ratio=_f(d["mean_log_ratio"]),
            within_1_25=_f(d["fraction_within_1.25"]),
            loo_b=_f(d["loo_b"]),
            per_b=MedianCI.from_dict(d["per_b"]) if "per_b" in d else MedianCI.empty(),
            per_b_loo=_f(d.get("per_b_loo", math.nan)),
        )


@dataclass(frozen=True)
class PredictedBand:
    """A model's predicted distribution over batches on the grid: the ``levels`` quantiles (``low`` /
    ``median`` / ``high`` = 10/50/90%), ``coverage`` = the fraction of the ``n_cells`` measured sweep cells
    inside [low, high] at their B, and ``crossover_batch`` = B_× (docs/theory.md §1e); ``p_eff``,
    ``n_samples``, ``n_batches``, ``method``, ``replace`` say how it was computed. ``design``: the target
    statistic under the model's own distribution with the sweep's batches per B
    (``validation.stats.DesignCheck`` as a dict: expected, q95, p_value, target_probability, n_rep; empty in
    records made before it existed; docs/validation.md §4d)."""

    levels: tuple[float, ...]
    low: tuple[float, ...]
    median: tuple[float, ...]
    high: tuple[float, ...]
    coverage: float
    n_cells: int
    crossover_batch: float
    p_eff: float
    n_samples: int
    n_batches: int
    method: str
    replace: bool
    design: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "design": dict(self.design),
            "levels": list(self.levels),
            "low": list(self.low),
            "median": list(self.median),
            "high": list(self.high),
            "coverage": self.coverage,
            "n_cells": self.n_cells,
            "crossover_batch": self.crossover_batch,
            "p_eff": self.p_eff,
            "n_samples": self.n_samples,
            "n_batches": self.n_batches,
            "method": self.method,
            "replace": self.replace,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PredictedBand:
        return cls(
            levels=tuple(decode_floats(d["levels"])),
            low=tuple(decode_floats(d["low"])),
            median=tuple(decode_floats(d["median"])),
            high=tuple(decode_floats(d["high"])),
            coverage=_f(d["coverage"]),
            n_cells=int(d["n_cells"]),
            crossover_batch=_f(d["crossover_batch"]),
            p_eff=_f(d["p_eff"]),
            n_samples=int(d["n_samples"]),
            n_batches=int(d["n_batches"]),
            method=str(d["method"]),
            replace=bool(d["replace"]),
            design={str(k): _f(v) for k, v in d.get("design", {}).items()},
        )


@dataclass(frozen=True)
class TargetPrediction:
    """Step 5 for one target matrix (H or G): inputs, each model's curve on the grid and its scores."""

    lambda_1: float
    p_sigma2: float
    critical_batch: float
    regime: dict[int, str]
    curves: dict[str, tuple[float, ...]]
    scores: dict[str, ModelScore]
    best_model: str
    free_fit: dict[str, float]
    measured: dict[int, MeanCI]
    bands: dict[str, PredictedBand] = field(default_factory=dict)
    """Predicted bands over batches, by model key (only models that predict a distribution)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "lambda_1": self.lambda_1,
            "p_sigma2": self.p_sigma2,
            "critical_batch": self.critical_batch,
            "regime": dict(self.regime),
            "curves": {k: list(v) for k, v in self.curves.items()},
            "scores": {k: v.to_dict() for k, v in self.scores.items()},
            "best_model": self.best_model,
            "free_fit": dict(self.free_fit),
            "measured": {str(b): m.to_dict() for b, m in self.measured.items()},
        }
        if self.bands:  # absent without per-sample statistics: such records are unchanged
            out["bands"] = {k: band.to_dict() for k, band in self.bands.items()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TargetPrediction:
        return cls(
            lambda_1=_f(d["lambda_1"]),
            p_sigma2=_f(d["p_sigma2"]),
            critical_batch=_f(d["critical_batch"]),
            regime={int(k): str(v) for k, v in d["regime"].items()},
            curves={k: tuple(decode_floats(v)) for k, v in d["curves"].items()},
            scores={k: ModelScore.from_dict(v) for k, v in d["scores"].items()},
            best_model=str(d["best_model"]),
            free_fit={k: _f(v) for k, v in d["free_fit"].items()},
            measured={b: MeanCI.from_dict(v) for b, v in _by_batch(d["measured"]).items()},
            bands={k: PredictedBand.from_dict(v) for k, v in d.get("bands", {}).items()},
        )


@dataclass(frozen=True)
class NoiseSpectrumItem:
    """ν² = tr((H_B − H)²)/P measured at one B, and its prediction κ(B)·Pσ²."""

    B: int
    nu2_measured: float
    nu2_predicted: float

    def to_dict(self) -> dict[str, Any]:
        return {"B": self.B, "nu2_measured": self.nu2_measured, "nu2_predicted": self.nu2_predicted}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NoiseSpectrumItem:
        return cls(int(d["B"]), _f(d["nu2_measured"]), _f(d["nu2_predicted"]))


@dataclass(frozen=True)
class PredictionRecord:
    """The step-5 record of one (model, checkpoint)."""

    model: str
    ckpt: int
    n_params: int
    n_data: int
    num_classes: int
    c_eff: int
    grid: tuple[int, ...]
    critical_batch: float
    lambda_min: float
    row_sum_cv: float
    targets: dict[str, TargetPrediction]
    noise_spectrum: tuple[NoiseSpectrumItem, ...]
    profile_blocks: int
    bulk_rule: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ckpt": self.ckpt,
            "n_params": self.n_params,
            "n_data": self.n_data,
            "num_classes": self.num_classes,
            "c_eff": self.c_eff,
            "grid": list(self.grid),
            "critical_batch": self.critical_batch,
            "lambda_min": self.lambda_min,
            "row_sum_cv": self.row_sum_cv,
            "targets": {k: t.to_dict() for k, t in self.targets.items()},
            "noise_spectrum": [item.to_dict() for item in self.noise_spectrum],
            "profile_blocks": self.profile_blocks,
            "bulk_rule": self.bulk_rule,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PredictionRecord:
        return cls(
            model=str(d["model"]),
            ckpt=int(d["ckpt"]),
            n_params=int(d["n_params"]),
            n_data=int(d["n_data"]),
            num_classes=int(d["num_classes"]),
            c_eff=int(d["c_eff"]),
            grid=tuple(int(b) for b in d["grid"]),
            critical_batch=_f(d["critical_batch"]),
            lambda_min=_f(d["lambda_min"]),
            row_sum_cv=_f(d["row_sum_cv"]),
            targets={k: TargetPrediction.from_dict(v) for k, v in d["targets"].items()},
            noise_spectrum=tuple(NoiseSpectrumItem.from_dict(i) for i in d["noise_spectrum"]),
            profile_blocks=int(d["profile_blocks"]),
            bulk_rule=str(d["bulk_rule"]),
        )


# ------------------------------------------------------------------------------------------ step 6 parts
@dataclass(frozen=True)
class LRScore:
    """Accuracy of one η_max predictor over the (B, seed) cells: median |log(pred/measured)| and the
    fractions of cells within 1.25× and 1.5×."""

    median_abs_log_ratio: float
    within_1_25: float
    within_1_5: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_abs_log_ratio": self.median_abs_log_ratio,
            "within_1.25": self.within_1_25,
            "within_1.5": self.within_1_5,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LRScore:
        return cls(_f(d["median_abs_log_ratio"]), _f(d["within_1.25"]), _f(d["within_1.5"]))


SIGNIFICANCE = 0.05
"""The level of the pre-registered paired tests (Holm-corrected p below it: the champion is better)."""


def beats_every_baseline(tests: Mapping[str, PairedTest]) -> bool:
    """Whether the champion beats every baseline: each Holm-corrected p < :data:`SIGNIFICANCE` (False
    without tests)."""
    return bool(tests) and all(test.p_holm < SIGNIFICANCE for test in tests.values())


@dataclass(frozen=True)
class PairedTest:
    """Paired Wilcoxon test of the champion against one baseline (Holm-corrected p)."""

    p: float
    p_holm: float
    n_cells: int
    median_difference: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "p": self.p,
            "p_holm": self.p_holm,
            "n_cells": self.n_cells,
            "median_difference": self.median_difference,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PairedTest:
        return cls(_f(d["p"]), _f(d["p_holm"]), int(d["n_cells"]), _f(d["median_difference"]))


@dataclass(frozen=True)
class ExponentFit:
    """Exponent of log η_max = a + s log B with its 95% seed-bootstrap CI, the pre-registered verdict
    (``validation.stats.classify_exponent``) and the B range it was fitted on."""

    exponent: float
    lo: float
    hi: float
    verdict: str
    fit_range: str
    fit_on_all_b: bool = False
    n_points: int | None = None
    n_seeds: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "exponent": self.exponent,
            "lo": self.lo,
            "hi": self.hi,
            "verdict": self.verdict,
            "fit_range": self.fit_range,
            "fit_on_all_b": self.fit_on_all_b,
        }
        if self.n_points is not None:
            out["n_points"] = self.n_points
        if self.n_seeds is not None:
            out["n_seeds"] = self.n_seeds
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExponentFit:
        return cls(
            exponent=_f(d["exponent"]),
            lo=_f(d["lo"]),
            hi=_f(d["hi"]),
            verdict=str(d["verdict"]),
            fit_range=str(d["fit_range"]),
            fit_on_all_b=bool(d.get("fit_on_all_b", str(d["fit_range"]).startswith("all B"))),
            n_points=None if d.get("n_points") is None else int(d["n_points"]),
            n_seeds=None if d.get("n_seeds") is None else int(d["n_seeds"]),
        )


@dataclass(frozen=True)
class OptimizerAnalysis:
    """Step 6 for one optimizer: the measured thresholds per B, every predictor's curve and score, the
    paired tests and the exponent fits."""

    batch_sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    measured_strict: dict[int, tuple[float, ...]]
    measured_lenient: dict[int, tuple[float, ...]]
    median_strict: tuple[float, ...]
    median_lenient: tuple[float, ...]
    lenient_over_strict: float
    predictors: dict[str, tuple[float, ...]]
    scores: dict[str, LRScore]
    champion: str
    paired_wilcoxon_holm: dict[str, PairedTest]
    exponent_strict: ExponentFit
    exponent_lenient: ExponentFit
    diverged_cells: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_sizes": list(self.batch_sizes),
            "seeds": list(self.seeds),
            "measured_strict": {str(b): list(v) for b, v in self.measured_strict.items()},
            "measured_lenient": {str(b): list(v) for b, v in self.measured_lenient.items()},
            "median_strict": list(self.median_strict),
            "median_lenient": list(self.median_lenient),
            "lenient_over_strict": self.lenient_over_strict,
            "predictors": {k: list(v) for k, v in self.predictors.items()},
            "scores": {k: v.to_dict() for k, v in self.scores.items()},
            "champion": self.champion,
            "paired_wilcoxon_holm": {k: v.to_dict() for k, v in self.paired_wilcoxon_holm.items()},
            "exponent_strict": self.exponent_strict.to_dict(),
            "exponent_lenient": self.exponent_lenient.to_dict(),
            "diverged_cells": self.diverged_cells,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OptimizerAnalysis:
        return cls(
            batch_sizes=tuple(int(b) for b in d["batch_sizes"]),
            seeds=tuple(int(s) for s in d["seeds"]),
            measured_strict=_float_lists(d["measured_strict"]),
            measured_lenient=_float_lists(d["measured_lenient"]),
            median_strict=tuple(decode_floats(d["median_strict"])),
            median_lenient=tuple(decode_floats(d["median_lenient"])),
            lenient_over_strict=_f(d["lenient_over_strict"]),
            predictors={k: tuple(decode_floats(v)) for k, v in d["predictors"].items()},
            scores={k: LRScore.from_dict(v) for k, v in d["scores"].items()},
            champion=str(d["champion"]),
            paired_wilcoxon_holm={k: PairedTest.from_dict(v) for k, v in d["paired_wilcoxon_holm"].items()},
            exponent_strict=ExponentFit.from_dict(d["exponent_strict"]),
            exponent_lenient=ExponentFit.from_dict(d["exponent_lenient"]),
            diverged_cells=int(d["diverged_cells"]),
        )


@dataclass(frozen=True)
class LRAnalysisRecord:
    """The step-6 analysis record of one (model, checkpoint)."""

    model: str
    ckpt: int
    critical_batch: float
    best_spectrum_model: str
    criteria: dict[str, float]
    optimizers: dict[str, OptimizerAnalysis]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ckpt": self.ckpt,
            "critical_batch": self.critical_batch,
            "best_spectrum_model": self.best_spectrum_model,
            "criteria": dict(self.criteria),
            "optimizers": {k: v.to_dict() for k, v in self.optimizers.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LRAnalysisRecord:
        return cls(
            model=str(d["model"]),
            ckpt=int(d["ckpt"]),
            critical_batch=_f(d["critical_batch"]),
            best_spectrum_model=str(d["best_spectrum_model"]),
            criteria=dict(d["criteria"]),
            optimizers={k: OptimizerAnalysis.from_dict(v) for k, v in d["optimizers"].items()},
        )
