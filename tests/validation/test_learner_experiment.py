"""The SLQ learner experiment: config files and overrides (validated field by field), the statistics of the
summary, and end to end: the smoke experiment writes its records, report and figure, and resumes."""

from __future__ import annotations

import fnmatch
import json
import math
import tomllib
from pathlib import Path

import pytest

from validation.cli import main
from validation.config import CONFIG_DIR, ConfigError
from validation.experiments.learner_config import (
    available_learner_configs,
    learner_config_from_dict,
    load_learner_config,
)
from validation.experiments.learner_summary import summarize

ROOT = Path(__file__).resolve().parents[2]


def _smoke_raw() -> dict:
    return json.loads((CONFIG_DIR / "learner-smoke.json").read_text())


@pytest.mark.slow
def test_smoke_experiment_writes_records_report_and_figure(tmp_path: Path) -> None:
    out = tmp_path / "learner"
    assert main(["learner", "--config", "smoke", "--out", str(out), "--quiet"]) == 0
    config = load_learner_config("smoke")
    records = sorted((out / "records" / "learner").glob("*.json"))
    assert len(records) == len(config.arm_names()) * config.seeds
    cells = [json.loads(p.read_text()) for p in records]
    for cell in cells:
        assert 0.0 <= cell["final_accuracy"] <= 1.0
        assert cell["curve"][0]["epoch"] == 0.0 and cell["curve"][-1]["epoch"] == config.epochs
        assert cell["config"] == config.to_dict()
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
    assert summary["tuned_baseline"] in config.arm_names()
    assert load_learner_config(out / "learner-config.json") == config  # the stored config reads back

    # like `batchrmt run`: a folder holding a run is refused without --resume, and with another config
    stamps = {p.name: p.stat().st_mtime_ns for p in records}
    assert main(["learner", "--config", "smoke", "--out", str(out), "--quiet"]) == 2
    assert main(["learner", "--config", "smoke", "--out", str(out), "--resume", "--set", "seeds=3"]) == 2
    # --resume skips every finished cell (records untouched) and recomputes a missing one identically
    lost = out / "records" / "learner" / "arm=fixed-slq-lr_seed=1.json"
    before = json.loads(lost.read_text())
    lost.unlink()
    assert main(["learner", "--config", "smoke", "--out", str(out), "--quiet", "--resume"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in records if p != lost} == {
        name: stamp for name, stamp in stamps.items() if name != lost.name
    }
    again = json.loads(lost.read_text())
    assert (
        again["final_accuracy"] == before["final_accuracy"]
        and again["curve"][-1]["eval_loss"] == (before["curve"][-1]["eval_loss"])
    )


def test_builtin_learner_configs_are_files_shipped_as_package_data() -> None:
    assert {"smoke", "default", "paper-cifar100"} <= set(available_learner_configs())
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for name in available_learner_configs():
        (path,) = [p for p in CONFIG_DIR.glob(f"learner-{name}.*")]
        relative = str(path.relative_to(ROOT / "validation"))
        assert any(fnmatch.fnmatch(relative, g) for g in globs["validation"]), relative
        assert (
            load_learner_config(name) == load_learner_config(f"learner-{name}") == load_learner_config(path)
        )
        assert load_learner_config(name).name == name


def test_default_config_keeps_the_published_experiment() -> None:
    config = load_learner_config("default")
    assert config.mu_mode == "positive" and config.bn_mode == "auto" and config.matrix == "hessian"
    assert (config.train_size, config.depth, config.width, config.epochs, config.seeds) == (
        2048,
        20,
        0.25,
        3,
        3,
    )
    assert config.baseline_lrs == (0.03, 0.1, 0.3) and config.every == 2048 // 64
    assert config.arm_names() == [
        "slq-sgd",
        "slq-heavy-ball",
        "lineage-0.03",
        "lineage-0.1",
        "lineage-0.3",
        "fixed-slq-lr",
    ]
    assert load_learner_config("paper-cifar100").lr_max is None


@pytest.mark.parametrize(
    ("override", "name"),
    [
        ("seeds=0", "seeds"),
        ("epochs=0", "epochs"),
        ("baseline_lrs=[]", "baseline_lrs"),
        ("baseline_lrs=[0.1,-0.2]", r"baseline_lrs\[1\]"),
        ("baseline_lrs=[0.1,0.1]", "baseline_lrs"),
        ("safety=-1.0", "safety"),
        ("curvature_size=1000000", "curvature_size"),
        ("batch_size=1000", "batch_size"),
        ("baseline_momentum=1", "baseline_momentum"),
        ("mu_mode=median", "mu_mode"),
        ("bn_mode=frozen", "bn_mode"),
        ("dataset=gaussian-mixture", "dataset"),
        ("augment=1", "augment"),
        ("width=nan", "width"),
        ("lr_max=0", "lr_max"),
        ("depth=true", "depth"),
    ],
)
def test_bad_values_raise_config_error_naming_file_and_field(override: str, name: str) -> None:
    with pytest.raises(ConfigError, match=rf"learner-smoke\.json.*'{name}'"):
        load_learner_config("smoke", [override])


def test_unknown_missing_and_optional_fields() -> None:
    with pytest.raises(ValueError, match="lanczos_step"):
        learner_config_from_dict({**_smoke_raw(), "lanczos_step": 3})
    raw = _smoke_raw()
    del raw["epochs"]
    with pytest.raises(ValueError, match="missing.*epochs"):
        learner_config_from_dict(raw)
    raw = _smoke_raw()
    del raw["lr_max"], raw["data_root"]  # nullable fields may be left out (TOML has no null)
    assert learner_config_from_dict(raw).lr_max is None
    with pytest.raises(ConfigError, match="huge"):
        load_learner_config("huge")


def test_toml_file_and_integer_reals_give_the_same_config(tmp_path: Path) -> None:
    raw = _smoke_raw()
    del raw["data_root"]
    lines = [f"{k} = {json.dumps(v)}" for k, v in raw.items()]
    path = tmp_path / "mine.toml"
    path.write_text("\n".join(lines).replace("every_epochs = 1.0", "every_epochs = 1") + "\n")
    config = load_learner_config(path)
    assert config == load_learner_config("smoke") and isinstance(config.every_epochs, float)
    assert load_learner_config(path, ["seeds=5", "name=mine"]).seeds == 5


def test_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    assert main(["learner", "--config", "smoke", "--seeds", "0", "--out", out, "--quiet"]) == 2
    assert "seeds" in capsys.readouterr().err
    assert main(["learner", "--config", "smoke", "--set", "lanczos=3", "--out", out, "--quiet"]) == 2
    assert "lanczos" in capsys.readouterr().err
    assert main(["learner", "--config", "smoke", "--set", "noequals", "--out", out, "--quiet"]) == 2
    assert "field=value" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _record(arm: str, seed: int, accuracy: float) -> dict:
    point = {"train_loss": 1.0, "wall_time": 1.0}
    return {
        "arm": arm,
        "seed": seed,
        "final_accuracy": accuracy,
        "final_loss": 1.0,
        "curve": [point],
        "wall_time": 2.0,
        "curvature_time": 0.5,
        "total_products": 10,
        "initial_lr": 0.1,
        "diverged": False,
    }


def test_summary_tunes_the_baseline_and_pairs_differences_by_seed() -> None:
    from scipy.stats import t as student_t

    config = load_learner_config("smoke")  # arms slq-sgd, slq-heavy-ball, lineage-0.05, lineage-0.2, fixed
    offsets = [0.0, 0.02, -0.01]
    records = [_record("lineage-0.05", s, 0.5 + o) for s, o in enumerate(offsets)]
    records += [_record("lineage-0.2", s, 0.6 + o) for s, o in enumerate(offsets)]
    records += [_record("slq-sgd", s, 0.3 + 2 * o) for s, o in enumerate(offsets)]  # Δ = −0.3 + o
    records += [
        _record("slq-heavy-ball", s, 0.6 + o + d)
        for s, (o, d) in enumerate(zip(offsets, [-0.1, 0.1, 0.0], strict=True))
    ]
    summary = summarize(config, records)
    assert summary["tuned_baseline"] == "lineage-0.2"
    sgd = summary["comparisons"]["slq-sgd"]
    assert sgd["differences"] == pytest.approx([-0.3, -0.28, -0.31])
    half = student_t.ppf(0.975, 2) * 0.015275252316519468 / 3**0.5  # s of (0, 0.02, −0.01) = 0.01528
    assert sgd["ci"] == pytest.approx((-0.29666666 - half, -0.29666666 + half))
    assert sgd["verdict"] == "worse than the tuned baseline"
    assert summary["comparisons"]["slq-heavy-ball"]["verdict"].startswith("not distinguishable")
    assert summary["comparisons"]["fixed-slq-lr"]["verdict"] == "not run"
    assert summary["arms"]["lineage-0.2"]["accuracy_mean"] == pytest.approx(0.6033333333)
    one_seed = summarize(config, [r for r in records if r["seed"] == 0])
    assert one_seed["comparisons"]["slq-sgd"]["verdict"] == "too few seeds for an interval"
    assert all(map(math.isnan, one_seed["arms"]["slq-sgd"]["accuracy_ci"]))
