"""Training-seed replicas of the configured networks (docs/validation.md §4b): names, seeds, selection by the
base name, round trips, and the unchanged one-seed config."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from validation.config import REPLICA_SEPARATOR, ModelConfig, config_from_dict, load_config, replica_name
from validation.pipeline import _threshold_targets
from validation.provenance import derived_seed
from validation.store import cell_key

ROOT = Path(__file__).resolve().parents[2]


def _raw(training_seeds: int | None, models: tuple[str, ...] = ("mlp", "other")) -> dict:
    raw = json.loads((ROOT / "validation/configs/smoke.json").read_text())
    raw["models"] = [{"name": n, "spec": "mlp-8x1", "kwargs": {}} for n in models]
    raw.pop("training_seeds", None)
    if training_seeds is not None:
        raw["training_seeds"] = training_seeds
    return raw


def test_each_model_expands_into_named_independent_replicas() -> None:
    config = config_from_dict(_raw(3))
    names = [m.name for m in config.models]
    assert names == ["mlp.s0", "mlp.s1", "mlp.s2", "other.s0", "other.s1", "other.s2"]
    assert [m.base for m in config.models] == ["mlp"] * 3 + ["other"] * 3
    assert [m.training_seed for m in config.models] == [0, 1, 2] * 2
    assert all(cell_key(model=n, ckpt=0) for n in names) and REPLICA_SEPARATOR not in "mlp"
    # init and training seeds are derived from (run seed, replica name): distinct for every replica
    for tag in (("init",), ("ckpt-train", 0)):
        seeds = {derived_seed(config.seed, n, *tag) for n in names}
        assert len(seeds) == len(names)
    assert [m.name for m in config.replicas("other")] == names[3:]
    assert [m.name for m in config.configured_models] == ["mlp", "other"]


def test_one_training_seed_keeps_the_plain_names_and_the_config_file() -> None:
    implicit, explicit = config_from_dict(_raw(None)), config_from_dict(_raw(1))
    assert implicit == explicit and [m.name for m in implicit.models] == ["mlp", "other"]
    assert all(m.base == m.name and m.training_seed == 0 for m in implicit.models)
    assert implicit.models[0] == ModelConfig(name="mlp", spec="mlp-8x1")
    assert implicit.to_dict()["models"] == _raw(None)["models"]
    assert derived_seed(0, implicit.models[0].name, "init") == derived_seed(0, "mlp", "init")


@pytest.mark.parametrize("seeds", [1, 2, 4])
def test_round_trips_and_replace_reexpand_from_the_configured_models(seeds: int) -> None:
    config = config_from_dict(_raw(seeds))
    assert config_from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.to_dict()["models"] == _raw(None)["models"] and config.to_dict()["training_seeds"] == seeds
    other = dataclasses.replace(config, training_seeds=3).validate()
    assert other == config_from_dict(_raw(3))
    assert dataclasses.replace(other, training_seeds=seeds) == config
    assert replica_name("mlp", 1, seeds) == ("mlp" if seeds == 1 else "mlp.s1")


def test_thresholds_models_names_the_base_model_and_selects_every_replica() -> None:
    raw = _raw(2)
    raw["thresholds"]["models"] = ["other"]
    config = config_from_dict(raw)
    usable = {m.name: [0] for m in config.models}
    assert _threshold_targets(config, usable) == [("other.s0", 0), ("other.s1", 0)]
    raw["thresholds"]["models"] = ["other.s0"]
    with pytest.raises(ValueError, match=r"thresholds\.models\[0\]"):
        config_from_dict(raw)


@pytest.mark.parametrize("value", [0, -1, True, "2", 1.5])
def test_bad_training_seeds_name_the_field(value: object) -> None:
    with pytest.raises(ValueError, match="training_seeds"):
        config_from_dict(_raw(value))  # type: ignore[arg-type]


def test_configured_names_stay_distinct_and_cannot_look_like_replicas() -> None:
    with pytest.raises(ValueError, match="distinct names"):
        config_from_dict(_raw(2, ("mlp", "mlp")))
    with pytest.raises(ValueError, match=r"models\[0\]\.name"):
        config_from_dict(_raw(2, ("mlp.s0",)))
    with pytest.raises(ValueError, match=r"models\[0\]\.name"):
        ModelConfig(name="mlp.s3", spec="mlp-8x1", base="mlp", training_seed=1).validate("models[0]")


def test_builtin_configs_replicate_and_override() -> None:
    assert load_config("default").training_seeds >= 3 and load_config("smoke").training_seeds == 2
    assert [m.name for m in load_config("smoke", ["training_seeds=1"]).models] == ["mlp"]


def test_weights_used_as_given_have_one_replica() -> None:
    raw = _raw(3)
    raw["checkpoint"]["mode"] = "as-given"
    config = config_from_dict(raw)
    assert config.replicas_per_model == 1 and [m.name for m in config.models] == ["mlp", "other"]
    assert config.to_dict()["training_seeds"] == 3 and config_from_dict(config.to_dict()) == config
