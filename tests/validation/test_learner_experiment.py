"""End to end: the smoke learner experiment writes its records, report and figure, and resumes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from validation.cli import main
from validation.experiments.learner import arm_names, learner_config


@pytest.mark.slow
def test_smoke_experiment_writes_records_report_and_figure(tmp_path: Path) -> None:
    out = tmp_path / "learner"
    assert main(["learner", "--config", "smoke", "--out", str(out), "--quiet"]) == 0
    config = learner_config("smoke")
    records = sorted((out / "records" / "learner").glob("*.json"))
    assert len(records) == len(arm_names(config)) * config.seeds
    cells = [json.loads(p.read_text()) for p in records]
    for cell in cells:
        assert 0.0 <= cell["final_accuracy"] <= 1.0
        assert cell["curve"][0]["epoch"] == 0.0 and cell["curve"][-1]["epoch"] == config.epochs
    slq = [c for c in cells if c["arm"].startswith("slq-")]
    for cell in slq:
        steps = config.epochs * config.steps_per_epoch
        assert [t["step"] for t in cell["trace"]] == list(range(0, steps, config.every))
        assert cell["total_products"] == sum(t["num_products"] for t in cell["trace"]) > 0
        assert cell["curvature_time"] < cell["wall_time"]
    for seed in range(config.seeds):
        (fixed,) = [c for c in cells if c["arm"] == "fixed-slq-lr" and c["seed"] == seed]
        (learner,) = [c for c in cells if c["arm"] == "slq-sgd" and c["seed"] == seed]
        assert fixed["initial_lr"] == learner["trace"][0]["lr"]
    report = (out / "report.md").read_text()
    assert "Verdict" in report and "tuned" in report and "slq-heavy-ball" in report
    assert (out / "figures" / "learner.png").stat().st_size > 10_000
    assert (out / "figures" / "learner.pdf").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tuned_baseline"] in arm_names(config)

    # a rerun into the same folder skips every finished cell (records untouched)
    stamps = {p.name: p.stat().st_mtime_ns for p in records}
    assert main(["learner", "--config", "smoke", "--out", str(out), "--quiet"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in records} == stamps


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"seeds": 0}, "seeds"),
        ({"epochs": 0}, "epochs"),
        ({"baseline_lrs": ()}, "baseline_lrs"),
        ({"safety": -1.0}, "safety"),
        ({"curvature_size": 10**6}, "curvature_size"),
    ],
)
def test_bad_config_raises_value_error_naming_the_field(overrides: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        learner_config("smoke", **overrides)


def test_unknown_config_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="config"):
        learner_config("huge")


def test_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learner", "--config", "smoke", "--seeds", "0", "--quiet"]) == 2
    assert "seeds" in capsys.readouterr().err


def test_seed_intervals_are_student_t_not_bootstrap() -> None:
    from scipy.stats import t as student_t

    from validation.experiments.learner import _ci

    low, high = _ci([0.0, 1.0, 2.0])  # mean 1, s = 1, n = 3
    half = student_t.ppf(0.975, 2) / 3**0.5  # 4.303/√3 ≈ 2.48: wider than any 3-point bootstrap (≤ 1)
    assert (low, high) == pytest.approx((1.0 - half, 1.0 + half))
    assert all(map(math.isnan, _ci([0.5])))


def test_default_config_measures_mu_and_uses_batch_statistics() -> None:
    config = learner_config("default")
    assert config.mu_mode == "positive" and config.bn_mode == "auto"
