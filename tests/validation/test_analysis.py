"""Step 5/6 analysis on synthetic inputs with known answers: spectrum-model scoring, the predictor registries,
the typed records' JSON round trip, the NaN codec, claim wording and figure axes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from validation.experiments import spectrum_models, spectrum_scoring
from validation.experiments.analysis_records import ExponentFit, PredictionRecord, TargetPrediction
from validation.experiments.lr_analysis import CHAMPION, LR_PREDICTORS, fit_exponent
from validation.experiments.registry import Predictor, Registry
from validation.experiments.spectrum_models import (
    BAND_LEVELS,
    DESIGN_LEVELS,
    SPECTRUM_MODELS,
    SampleSpikeInputs,
    SpectrumInputs,
    additive_homogeneous,
)
from validation.experiments.spectrum_scoring import critical_batch, predict_target
from validation.records import decode_float, encode_float
from validation.report import TARGET_EXPONENT, claim_outcome, exponent_reading
from validation.stats import ConfidenceInterval, classify_exponent
from validation.store import _jsonable

GRID = np.array([2.0, 4.0, 8.0, 16.0, 32.0, 64.0])


def _inputs(scale: float = 1.0, p: int = 120, profile: bool = False) -> SpectrumInputs:
    """A spike λ = 2 with Pσ² = 40 (B* ≈ 9.6 of N = 512): the sweep measures the homogeneous model × scale.
    Without ``profile`` there are no row sums (as for G) and no per-sample pool: the profile and sample-spike
    models, the slow ones, do not apply."""
    rng = np.random.default_rng(0)
    batch = np.repeat(GRID, 3)
    base = SpectrumInputs(
        lam=2.0,
        p_sigma2=40.0,
        n_params=p,
        n_data=512,
        atoms=np.linspace(-0.3, 0.3, 16),
        weights=np.full(16, 1 / 16),
        ggn_lam=2.0,
        ggn_atoms=np.linspace(0.0, 0.3, 16),
        ggn_weights=np.full(16, 1 / 16),
        c_eff=3,
        row_sums=rng.uniform(0.5, 1.5, p) if profile else None,
        vector=rng.normal(size=p) if profile else None,
        batch=batch,
        measured=np.zeros(batch.size),
        per_sample=_pool() if profile else None,
    )
    exact = additive_homogeneous(base, batch)
    return SpectrumInputs(**{**base.__dict__, "measured": scale * exact})


def _pool() -> SampleSpikeInputs:
    """64 rank-one per-sample terms orthogonal to the spike (scales 0.5…6), P = ∞."""
    return SampleSpikeInputs(
        scales=np.linspace(0.5, 6.0, 64)[:, None],
        overlaps=np.zeros((64, 1, 1)),
        spikes=np.array([2.0]),
        p_eff=math.inf,
        n_batches=200,
        seed=0,
        method="orthogonal",
        replace=True,
    )


@pytest.fixture(scope="module")
def exact_h() -> TargetPrediction:
    return predict_target(_inputs(profile=True), GRID, n_boot=50, seed=0)


def test_exact_model_scores_zero_and_regimes_follow_b_star(exact_h: TargetPrediction) -> None:
    inputs, t = _inputs(profile=True), exact_h
    assert set(t.curves) == set(SPECTRUM_MODELS.keys())  # every registered model applies to H
    assert "additive_profile" not in predict_target(_inputs(), GRID, n_boot=50, seed=0).curves
    score = t.scores["additive_homogeneous"]
    assert score.overall.median == 0.0 and score.overall.n == inputs.batch.size
    assert score.loo_b < 1e-20 and score.within_1_25 == 1.0
    assert t.scores[t.best_model].loo_b <= score.loo_b
    b_star = critical_batch(2.0, 40.0, inputs.n_params, 512)
    assert t.critical_batch == pytest.approx(b_star)
    assert all(t.regime[int(b)] == ("edge" if b < b_star else "outlier") for b in GRID)
    assert score.edge.n + score.outlier.n == score.overall.n > score.edge.n > 0
    # the measured means are the exact values, with a degenerate CI
    assert t.measured[8].mean == pytest.approx(float(additive_homogeneous(inputs, np.array([8.0]))[0]))


def test_bottom_side_is_the_negated_model_with_mirrored_quantile_levels() -> None:
    """H_min: the sample-spike quantiles of −λ_min(M_B) are −(bottom quantiles) with levels mirrored
    (q_p(−X) = −q_{1−p}(X)); B_× is that of −M_B; the PSD Wishart model does not apply to the bottom."""
    from dataclasses import replace

    indefinite = replace(
        _pool(),
        scales=np.stack([np.linspace(0.5, 6.0, 64), -np.linspace(0.2, 4.0, 64)], axis=1),
        overlaps=np.zeros((64, 2, 2)),
        spikes=np.array([2.0, -1.5]),
        _cache={},
    )
    bottom = replace(indefinite, side="bottom", _cache={})
    grid = np.array([1.0, 4.0, 64.0])
    pred = indefinite.prediction(grid)
    q = bottom.quantiles(grid)
    n_band = len(BAND_LEVELS)  # the prediction holds the band's levels, then the design check's 0.01…0.99
    np.testing.assert_allclose(q, -np.asarray(pred.bottom_quantiles)[:, :n_band][:, ::-1])
    qf = bottom.quantile_function(grid)
    np.testing.assert_allclose(qf, -np.asarray(pred.bottom_quantiles)[:, n_band:][:, ::-1])
    assert qf.shape == (grid.size, len(DESIGN_LEVELS)) and (np.diff(qf, axis=1) >= 0).all()
    # the band's 10/50/90% are the quantile function's at 0.10/0.50/0.90 (same resampled batches)
    at = [DESIGN_LEVELS.index(level) for level in BAND_LEVELS]
    np.testing.assert_allclose(q, qf[:, at])
    assert (np.diff(q, axis=1) >= 0).all() and (q > 0).all()
    # at large B the bottom tends to the shared negative spike, |λ_min| = 1.5, from above
    assert q[-1, 1] == pytest.approx(1.5, rel=0.05) and q[0, 1] > q[-1, 1]
    from rmt.sample_spikes import crossover_batch_size

    assert bottom.crossover() == crossover_batch_size(indefinite.model().negated())
    inputs = replace(_inputs(), side="bottom")
    assert spectrum_models.multiplicative(inputs, GRID) is None
    assert spectrum_models.additive_homogeneous(inputs, GRID) is not None


def test_a_model_off_by_a_factor_two_scores_log_two() -> None:
    inputs = _inputs(scale=2.0)
    t = predict_target(inputs, GRID, n_boot=50, seed=0)
    score = t.scores["additive_homogeneous"]
    assert score.overall.median == pytest.approx(math.log(2))
    assert score.mean_log_ratio == pytest.approx(-math.log(2))
    assert score.loo_b == pytest.approx(math.log(2) ** 2)
    assert score.within_1_25 == 0.0
    # AIC of Gaussian log residuals, k = 1 (the variance): n log(RSS/n) + 2
    n = inputs.batch.size
    assert score.aic == pytest.approx(n * math.log(math.log(2) ** 2) + 2)
    # the free fit (3 parameters) recovers the scaled curve; left-out B are predicted from the others
    assert t.scores["free_fit"].overall.median < 0.05
    # the target statistic (docs/validation.md §4d) against the measured median per B: log 2 as well; a
    # theory model's leave-one-B-out value is the statistic itself
    assert score.per_b.median == pytest.approx(math.log(2)) and score.per_b.n == GRID.size
    assert score.per_b_loo == score.per_b.median
    assert t.scores["free_fit"].per_b_loo < 0.05


def test_sample_spike_band_carries_its_design_check() -> None:
    from dataclasses import replace

    pool = _pool()
    t = predict_target(replace(_inputs(), per_sample=pool), GRID, n_boot=50, seed=0)
    band = t.bands["sample_spikes"]
    d = band.design
    assert set(d) == {"expected", "q95", "p_value", "target_probability", "n_rep"}
    assert 0.0 <= d["expected"] <= d["q95"] and 0.0 <= d["p_value"] <= 1.0
    assert 0.0 <= d["target_probability"] <= 1.0
    # the measured values here are the additive model's, not draws from the pool's distribution: the
    # design check compares them with the sample-spike model's own E
    observed = t.scores["sample_spikes"].per_b.median
    assert observed > 0
    if observed > d["q95"]:
        assert d["p_value"] <= 0.05
    if observed <= d["expected"]:
        assert d["p_value"] >= 0.5


def test_a_new_spectrum_model_is_one_function_and_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry("spectrum models (test copy)")
    for model in SPECTRUM_MODELS:
        registry.register(model)
    monkeypatch.setattr(spectrum_models, "SPECTRUM_MODELS", registry)
    monkeypatch.setattr(spectrum_scoring, "SPECTRUM_MODELS", registry)

    @spectrum_models.register_spectrum_model("twice_homogeneous", "twice the homogeneous model", "C8")
    def twice(inputs: SpectrumInputs, batch_sizes: np.ndarray) -> np.ndarray:
        return 2.0 * additive_homogeneous(inputs, batch_sizes)

    t = predict_target(_inputs(scale=2.0), GRID, n_boot=50, seed=0)
    assert t.scores["twice_homogeneous"].overall.median == 0.0
    assert t.best_model in ("twice_homogeneous", "free_fit")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry["twice_homogeneous"])


def test_registries_are_keyed_by_identifiers_with_consistent_colours() -> None:
    for registry in (SPECTRUM_MODELS, LR_PREDICTORS):
        assert all(p.key.isidentifier() and p.label for p in registry)
        assert len({p.color for p in registry}) == len(registry)  # one colour per predictor
    assert LR_PREDICTORS.style("additive_homogeneous") == (SPECTRUM_MODELS["additive_homogeneous"].color, "-")
    assert LR_PREDICTORS[CHAMPION].kind == "theory"
    assert {p.key for p in LR_PREDICTORS.of_kind("baseline")} == {
        "constant",
        "linear_rule",
        "sqrt_rule",
        "batch_sharpness",
    }
    assert SPECTRUM_MODELS.label("not registered") == "not registered"
    with pytest.raises(ValueError, match="kind"):
        Predictor("x", "x", "guess", abs, "C0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="identifier"):
        Predictor("baseline sqrt rule", "x", "baseline", abs, "C0")


def _assert_same_json(a: object, b: object) -> None:
    assert _jsonable(a) == _jsonable(b)


def test_prediction_record_round_trips_through_json(exact_h: TargetPrediction) -> None:
    h = exact_h
    record = PredictionRecord(
        model="toy",
        ckpt=0,
        n_params=120,
        n_data=512,
        num_classes=4,
        c_eff=3,
        grid=tuple(int(b) for b in GRID),
        critical_batch=math.inf,
        lambda_min=-0.5,
        row_sum_cv=math.nan,
        targets={"H": h, "G": h},
        noise_spectrum=(),
        profile_blocks=12,
        bulk_rule="test",
    )
    stored = _jsonable(record.to_dict())
    assert stored["critical_batch"] == "inf" and stored["row_sum_cv"] == "nan"
    again = PredictionRecord.from_dict({**stored, "step": "predictions", "key": "model=toy_ckpt=0"})
    _assert_same_json(again.to_dict(), stored)
    assert math.isinf(again.critical_batch) and again.targets["H"].best_model == h.best_model


def test_nan_codec() -> None:
    assert [encode_float(v) for v in (1.5, math.nan, math.inf, -math.inf)] == [1.5, "nan", "inf", "-inf"]
    assert _jsonable([math.nan, math.inf, -math.inf]) == ["nan", "inf", "-inf"]  # the store agrees
    assert math.isnan(decode_float(None)) and math.isnan(decode_float("nan"))
    assert decode_float("-inf") == -math.inf and decode_float(3) == 3.0
    for bad in ("1.5", "x", True, [1.0]):
        with pytest.raises(TypeError):
            decode_float(bad)


@given(
    st.floats(-1.0, 2.0, allow_nan=False),
    st.floats(0.0, 1.5, allow_nan=False),
    st.sampled_from(["linear", "square root"]),
)
def test_claim_wording_cannot_contradict_the_verdict(lo: float, width: float, target: str) -> None:
    hi = lo + width
    fit = ExponentFit(lo + width / 2, lo, hi, "", "B <= 8")
    verdict = classify_exponent(ConfidenceInterval(fit.exponent, lo, hi, 0.95))
    outcome = claim_outcome(fit, target)
    assert (outcome == "HELD") == (verdict == target)
    assert outcome.startswith("NOT HELD") == (not lo <= TARGET_EXPONENT[target] <= hi)
    if verdict != "undecided":
        assert exponent_reading(fit) == verdict
    else:
        assert exponent_reading(fit) not in ("linear", "square root", "constant")
    # a claim is HELD only when the CI excludes the other laws, the saturated one (exponent 0) included
    if outcome == "HELD":
        assert not lo <= 0.0 <= hi


def test_fit_exponent_on_too_few_and_on_all_batch_sizes() -> None:
    b = np.array([2.0, 8.0, 32.0])
    per_seed = np.outer(b**0.5, [1.0, 1.1, 0.9]) * 0.01
    fit = fit_exponent(b, per_seed, max_batch=1.0, n_boot=50, seed=0)
    assert fit.fit_on_all_b and fit.exponent == pytest.approx(0.5) and fit.n_seeds == 3
    assert exponent_reading(fit) == "square root"
    none = fit_exponent(b, np.full((3, 2), np.nan), max_batch=100.0, n_boot=50, seed=0)
    assert math.isnan(none.exponent) and claim_outcome(none, "linear") == "UNDECIDED"


def test_batch_axis_labels_every_decade_and_marks_every_b() -> None:
    from validation.figures import LEGEND_SIZE, _pyplot, batch_axis

    plt = _pyplot()
    fig, ax = plt.subplots()
    sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    ax.plot(sizes, np.ones(len(sizes)))
    batch_axis(ax, sizes)
    major = {float(v) for v in ax.xaxis.get_majorticklocs()}
    minor = {float(v) for v in ax.xaxis.get_minorticklocs()}
    assert {1.0, 10.0, 100.0} <= major and set(map(float, sizes)) <= major | minor
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "10" in labels and "512" in labels and ax.get_xlabel()
    assert "8" not in labels and 8.0 in minor  # 8 and 10 would touch: 8 keeps its tick, not its label
    plt.close(fig)
    assert LEGEND_SIZE >= 8
