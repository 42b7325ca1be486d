"""Aggregation over training seeds (docs/validation.md §4b) on synthetic step-5/6 records: the t-interval
against scipy, missing seeds, best-model agreement, the pooled paired test against the stats module, the
record round trip and the summary CSV."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from validation.config import config_from_dict, load_config
from validation.experiments.analysis_records import (
    ExponentFit,
    LRAnalysisRecord,
    LRScore,
    MeanCI,
    MedianCI,
    ModelScore,
    OptimizerAnalysis,
    PredictedBand,
    PredictionRecord,
    TargetPrediction,
)
from validation.experiments.lr_analysis import CHAMPION, CHAMPIONS, LR_PREDICTORS, LR_STEP
from validation.experiments.seed_aggregate import (
    STEP,
    SeedAggregateRecord,
    SeedMean,
    aggregate_checkpoint,
    aggregate_run,
    consensus,
    write_summary,
)
from validation.experiments.spectrum_scoring import STEP as PREDICTION_STEP
from validation.stats import paired_wilcoxon_holm
from validation.store import ResultStore, cell_key


def _t_interval(values: list[float]) -> tuple[float, float, float]:
    x = np.asarray(values)
    half = sps.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def test_seed_mean_is_the_student_t_interval_of_the_finite_seeds() -> None:
    sm = SeedMean.of([0.2, math.nan, 0.5, 0.3])
    assert sm.n == 3 and math.isnan(sm.values[1]) and sm.aggregated
    assert (sm.mean, sm.lo, sm.hi) == pytest.approx(_t_interval([0.2, 0.5, 0.3]))
    one = SeedMean.of([math.inf, 0.7])
    assert one.n == 1 and one.mean == 0.7 and math.isnan(one.lo) and not one.aggregated
    assert SeedMean.of([math.nan]).n == 0 and math.isnan(SeedMean.of([]).mean)
    assert repr(SeedMean.from_dict(sm.to_dict())) == repr(sm)


def test_consensus_counts_the_most_frequent_label() -> None:
    assert consensus(["a", "b", "b", ""]) == ("b", 2)
    assert consensus(["a", "b"]) == ("a", 1) and consensus(["", ""]) == ("", 0)


# ------------------------------------------------------------------------------------------ synthetic records
def _score(median: float, loo: float) -> ModelScore:
    m = MedianCI(median, median / 2, median * 2, 6)
    per_b = MedianCI(0.6 * median, 0.3 * median, 1.2 * median, 3)  # the target statistic (§4d)
    return ModelScore(m, m, MedianCI.empty(), 1.0, 0.0, 0.5, loo, per_b, 0.9 * loo)


def _target(lam: float, errors: dict[str, float], coverage: float, crossover: float) -> TargetPrediction:
    band = PredictedBand(
        (0.1, 0.5, 0.9), (1.0,), (2.0,), (3.0,), coverage, 9, crossover, 1e4, 64, 100, "o", True
    )
    scores = {k: _score(v, loo=v) for k, v in errors.items()}
    best = min(errors, key=errors.__getitem__)
    return TargetPrediction(
        lam, 0.5, 1.0, {2: "edge"}, {k: (1.0,) for k in errors}, scores, best, {"a": 1.0, "b": 1.0, "s": 1.0},
        {2: MeanCI(1.0, 0.9, 1.1, (1.0,))}, {"sample_spikes": band},
    )  # fmt: skip


def _prediction(
    model: str, lam: float, errors: dict[str, float], cov: float, cross: float
) -> PredictionRecord:
    targets = {"H": _target(lam, errors, cov, cross), "G": _target(lam / 2, errors, cov, cross)}
    return PredictionRecord(model, 0, 100, 64, 3, 2, (2,), 1.0, -0.1, 0.1, targets, (), 1, "cut")


SIZES = (2, 8, 32)


def _optimizer(rng: np.random.Generator, exponent: float, n_trials: int) -> OptimizerAnalysis:
    strict = {b: tuple(float(v) for v in rng.uniform(0.5, 2.0, n_trials) * b**exponent) for b in SIZES}
    curves = {k: tuple(float(v) for v in rng.uniform(0.5, 2.0, len(SIZES))) for k in LR_PREDICTORS.keys()}
    scores = {k: LRScore(float(rng.uniform(0.1, 1.0)), 0.5, 0.7) for k in curves}
    fit = ExponentFit(exponent, exponent - 0.1, exponent + 0.1, "undecided", "all B", True, 3, n_trials)
    nan3 = (math.nan,) * 3
    trials = tuple(range(n_trials))
    return OptimizerAnalysis(
        SIZES, trials, strict, strict, nan3, nan3, 1.0, curves, scores, CHAMPION, {}, fit, fit, 0
    )  # fmt: skip


def _store(tmp_path: Path, seeds: int = 3) -> tuple[ResultStore, object]:
    raw = load_config("smoke").to_dict()
    raw["training_seeds"] = seeds
    config = config_from_dict(raw)
    return ResultStore(tmp_path / "run"), config


def test_aggregation_of_synthetic_records(tmp_path: Path) -> None:
    store, config = _store(tmp_path)
    rng = np.random.default_rng(5)
    lams, sample_err, cover = [4.0, 6.0, 11.0], [0.10, 0.25, 0.19], [0.8, 0.9, 0.6]
    best_theory = ["sample_spikes", "sample_spikes", "additive_homogeneous"]
    exponents, analyses = [0.3, 0.7, -0.1], []
    for i, replica in enumerate(config.models):  # mlp.s0, mlp.s1, mlp.s2
        homog = 0.3 if best_theory[i] == "sample_spikes" else 0.05
        errors = {"sample_spikes": sample_err[i], "additive_homogeneous": homog, "free_fit": 0.01}
        pred = _prediction(replica.name, lams[i], errors, cover[i], 3.0 + i)
        store.put(PREDICTION_STEP, cell_key(model=replica.name, ckpt=0), pred.to_dict())
        if i == 1:
            continue  # seed 1 has no threshold analysis
        res = _optimizer(rng, exponents[i], n_trials=1)
        analyses.append(res)
        lr = LRAnalysisRecord(replica.name, 0, 1.0, "free_fit", {"steps": 4.0}, {"sgd": res})
        store.put(LR_STEP, cell_key(model=replica.name, ckpt=0), lr.to_dict())
    rec = aggregate_checkpoint(store, config, model="mlp", ckpt=0)
    assert rec.replicas == ("mlp.s0", "mlp.s1", "mlp.s2") and rec.n_seeds == 3
    h = rec.targets["H"]
    assert (h.lambda_1.mean, h.lambda_1.lo, h.lambda_1.hi) == pytest.approx(_t_interval(lams))
    assert (h.errors["sample_spikes"].lo, h.errors["sample_spikes"].hi) == pytest.approx(
        _t_interval(sample_err)[1:]
    )
    target = [0.6 * e for e in sample_err]
    assert (h.target_errors["sample_spikes"].mean, h.target_errors["sample_spikes"].lo) == pytest.approx(
        _t_interval(target)[:2]
    )
    assert h.target_loo["free_fit"].values == pytest.approx((0.9 * 0.01,) * 3)
    assert h.coverage.values == pytest.approx(tuple(cover)) and h.crossover.mean == pytest.approx(4.0)
    assert rec.targets["G"].lambda_1.mean == pytest.approx(np.mean(lams) / 2)
    assert h.best_theory == tuple(best_theory) and consensus(h.best_theory) == ("sample_spikes", 2)
    assert h.best_model == ("free_fit",) * 3
    sgd = rec.optimizers["sgd"]
    assert sgd.exponent.n == 2 and math.isnan(sgd.exponent.values[1])
    assert (sgd.exponent.mean, sgd.exponent.lo, sgd.exponent.hi) == pytest.approx(_t_interval([0.3, -0.1]))
    assert sgd.exponents[1].fit_range == "no record"
    # the pooled test is validation.stats.paired_wilcoxon_holm on the union of both seeds' cells
    # the champion is the optimizer's pre-registered one (defined on every synthetic cell here)
    champion = CHAMPIONS["sgd"]
    assert sgd.champion == champion
    compared = [k for k in LR_PREDICTORS.keys() if k == champion or LR_PREDICTORS[k].kind == "baseline"]
    abs_r: dict[str, list[float]] = {k: [] for k in compared}
    for res in analyses:
        for j, b in enumerate(SIZES):
            for meas in res.measured_strict[b]:
                for k in compared:
                    abs_r[k].append(abs(math.log(res.predictors[k][j] / meas)))
    expected = paired_wilcoxon_holm({k: np.array(v) for k, v in abs_r.items()}, champion, alternative="less")
    assert sgd.n_cells == 2 * 3 and set(sgd.paired) == {row["method"] for row in expected}
    for row in expected:
        assert sgd.paired[row["method"]].p_holm == pytest.approx(row["p_holm"])
        assert sgd.paired[row["method"]].n_cells == sgd.n_cells
    assert sgd.pooled[champion].median_abs_log_ratio == pytest.approx(np.median(abs_r[champion]))
    assert sgd.scores[CHAMPION].n == 2
    # the record survives the store's JSON (NaN included) and the run-level aggregation finds it
    stored = store.put(STEP, cell_key(model="mlp", ckpt=0), rec.to_dict())

    def text(d: dict) -> str:
        return json.dumps(d, sort_keys=True)

    assert text(SeedAggregateRecord.from_dict(stored).to_dict()) == text(rec.to_dict())
    assert list(aggregate_run(store, config)) == [cell_key(model="mlp", ckpt=0)]
    path = write_summary(store)
    assert path is not None and path.name == "summary_seed_aggregate.csv"
    rows = {r["quantity"]: r for r in csv.DictReader(path.open())}
    assert float(rows["lambda_1_H"]["lo"]) == pytest.approx(_t_interval(lams)[1])
    assert rows["best_theory_H"]["agree"] == "sample_spikes 2/3"
    assert rows["exponent_strict:sgd"]["n_seeds"] == "2"


def test_aggregation_rejects_an_unknown_model(tmp_path: Path) -> None:
    store, config = _store(tmp_path)
    with pytest.raises(ValueError, match="model must be one of"):
        aggregate_checkpoint(store, config, model="mlp.s0", ckpt=0)


# ------------------------------------------------------------------------------------------ batchrmt compare
def _one_seed_run(root: Path, sample_err: float, cover: float) -> Path:
    """A run folder with one step-5 record of a one-seed run (model ``mlp``)."""
    errors = {"sample_spikes": sample_err, "additive_homogeneous": 0.3, "free_fit": 0.01}
    store = ResultStore(root)
    pred = _prediction("mlp", 4.0, errors, cover, 3.0)
    store.put(PREDICTION_STEP, cell_key(model="mlp", ckpt=0), pred.to_dict())
    return root


def test_compare_flags_a_changed_verdict_and_passes_identical_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/validation.md §4c: equal records agree (exit 0); a run whose band coverage falls below 70% and
    whose best model misses ×1.15 disagrees on those verdicts (exit 1); its overlapping intervals agree."""
    from validation.cli import main
    from validation.compare import compare_runs

    # the verdict reads the target statistic (docs/validation.md §4d, 0.6 × the per-batch median here):
    # 0.03 with CI [0.015, 0.06]: within ×1.15 = log 1.15 ≈ 0.14 ("yes"); 0.096 with CI [0.048, 0.19]
    # contains log 1.15 ("undecided")
    a = _one_seed_run(tmp_path / "a", sample_err=0.05, cover=0.8)
    b = _one_seed_run(tmp_path / "b", sample_err=0.05, cover=0.8)
    c = _one_seed_run(tmp_path / "c", sample_err=0.16, cover=0.6)
    same = compare_runs(a, b)
    assert same.verdicts_agree and same.intervals_agree and not same.missing
    assert main(["compare", str(a), str(b)]) == 0
    diff = compare_runs(a, c)
    bad = {f.item for f in diff.findings if not f.agree}
    assert bad == {
        "mlp ckpt 0 H: band covers ≥ 70%",
        "mlp ckpt 0 G: band covers ≥ 70%",
        "mlp ckpt 0 H: within ×1.15",
        "mlp ckpt 0 G: within ×1.15",
    }
    # the medians' CIs ([0.025, 0.1] and [0.08, 0.32]) overlap: the numbers agree within their intervals
    assert diff.intervals_agree
    assert main(["compare", str(a), str(c)]) == 1
    assert "verdicts: " in capsys.readouterr().out
