"""Config loading and validation: built-in configs load; bad values raise ValueError naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from validation.config import available_configs, config_from_dict, load_config


def _smoke_dict() -> dict:
    return json.loads((Path(__file__).resolve().parents[2] / "validation/configs/smoke.json").read_text())


def test_builtin_configs_load_and_meet_the_protocol() -> None:
    assert {"smoke", "default", "paper-cifar100"} <= set(available_configs())
    default = load_config("default")
    assert default.data == "fashion-mnist"
    assert {m.spec.split("-")[0][:3] for m in default.models} == {"vgg", "wrn"}
    # replicates pooled over independent training seeds (docs/validation.md §4b): ≥ 3 training seeds, ≥ 3
    # threshold cells per (optimizer, B, checkpoint) and ≥ 5 batches per B, counted over the replicas
    seeds = default.training_seeds
    assert seeds >= 3 and seeds * default.thresholds.seeds >= 3
    assert seeds * default.sweep.batches_per_size >= 5
    assert default.thresholds.halvings >= 8 and default.sweep.min_batch <= 2
    paper = load_config("paper-cifar100")
    assert paper.sweep.batch_sizes[0] == 1 and paper.sweep.batch_sizes[-1] == 1024
    assert paper.sweep.batches_per_size == 10 and paper.curvature.slq_steps == 100
    assert "GPU" in paper.expected_cost


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("pool_size",), 0, "pool_size"),
        (("data",), "mnist-typo", "data"),
        (("thresholds", "delta"), -1.0, "thresholds.delta"),
        (("thresholds", "optimizers"), ["sgd", "rmsprop"], "thresholds.optimizers[1]"),
        (("sweep", "batch_sizes"), [2, 0], "sweep.batch_sizes[1]"),
        (("checkpoint", "loss_fractions"), [0.5, 0.8], "checkpoint.loss_fractions"),
        (("curvature", "tol"), float("nan"), "curvature.tol"),
        (("thresholds", "checkpoints"), [3], "thresholds.checkpoints[0]"),
        (("models",), [], "models"),
        (("seed",), True, "seed"),
    ],
)
def test_bad_values_name_the_field(path: tuple[str, ...], value: object, field: str) -> None:
    raw = _smoke_dict()
    target = raw
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        config_from_dict(raw)


def test_unknown_fields_are_rejected() -> None:
    raw = _smoke_dict()
    raw["sweep"]["batch_szes"] = [1]
    with pytest.raises(ValueError, match="sweep.batch_szes"):
        config_from_dict(raw)
    raw = _smoke_dict()
    raw["learning_rate"] = 1
    with pytest.raises(ValueError, match="learning_rate"):
        config_from_dict(raw)


def test_file_config_and_overrides(tmp_path: Path) -> None:
    raw = _smoke_dict()
    raw["name"] = "mine"
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(raw))
    cfg = load_config(path)
    assert cfg.name == "mine"
    assert cfg.replace_fields(seed=3, device=None).seed == 3
    with pytest.raises(ValueError, match="device"):
        cfg.replace_fields(device="tpu")
    with pytest.raises(ValueError, match="neither a built-in config"):
        load_config(tmp_path / "missing.json")


def _toml_of_smoke(tmp_path: Path) -> Path:
    raw = _smoke_dict()
    lines = []

    def value(v: object) -> str:
        return json.dumps(v)  # TOML accepts JSON scalars and arrays of scalars

    for key, v in raw.items():
        scalar_list = isinstance(v, list) and not any(isinstance(x, dict) for x in v)
        if not isinstance(v, (dict, list)) or scalar_list:
            lines.append(f"{key} = {value(v)}")
    for key, v in raw.items():
        if isinstance(v, dict) and key != "data_kwargs":
            lines.append(f"\n[{key}]")
            lines += [f"{k} = {value(x)}" for k, x in v.items()]
    lines.append("\n[data_kwargs]")
    lines += [f"{k} = {value(x)}" for k, x in raw["data_kwargs"].items()]
    for m in raw["models"]:
        lines += ["\n[[models]]", f"name = {value(m['name'])}", f"spec = {value(m['spec'])}"]
    path = tmp_path / "smoke.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_toml_config_equals_its_json_twin(tmp_path: Path) -> None:
    assert load_config(_toml_of_smoke(tmp_path)).to_dict() == load_config("smoke").to_dict()


def test_syntax_errors_name_the_file_and_line(tmp_path: Path) -> None:
    from validation.config import ConfigError

    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{\n "name": "x",\n "pool_size": ,\n}')
    with pytest.raises(ConfigError, match=r"bad\.json, line 3"):
        load_config(bad_json)
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text('name = "x"\npool_size = = 3\n')
    with pytest.raises(ConfigError, match=r"bad\.toml.*line 2"):
        load_config(bad_toml)
    with pytest.raises(ConfigError, match=r"unknown format '\.yaml'"):
        (tmp_path / "c.yaml").write_text("name: x")
        load_config(tmp_path / "c.yaml")


def test_field_errors_name_the_file_and_the_dotted_field(tmp_path: Path) -> None:
    from validation.config import ConfigError

    raw = _smoke_dict()
    raw["sweep"]["batches_per_size"] = 1
    path = tmp_path / "c.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=r"c\.json.*sweep\.batches_per_size"):
        load_config(path)


def test_overrides_set_any_field_and_are_validated() -> None:
    from validation.config import ConfigError

    config = load_config("smoke", ["sweep.batch_sizes=[1, 4]", "thresholds.seeds=2", "name=mine", "seed=3"])
    assert config.sweep.batch_sizes == (1, 4) and config.thresholds.seeds == 2
    assert config.name == "mine" and config.seed == 3
    assert load_config("smoke", ["data_kwargs.dim=8"]).data_kwargs["dim"] == 8
    with pytest.raises(ConfigError, match="thresholds.seeds"):
        load_config("smoke", ["thresholds.seeds=0"])
    with pytest.raises(ConfigError, match="section.field=value"):
        load_config("smoke", ["thresholds.seeds"])
    with pytest.raises(ConfigError, match="not a config section"):
        load_config("smoke", ["pool_size.x=1"])
    with pytest.raises(ConfigError, match="unknown config field"):
        load_config("smoke", ["sweep.nonsense=1"])


def test_model_option_selects_every_training_seed_of_a_configured_model() -> None:
    """``batchrmt run --model NAME`` names the configured (base) model or its spec, never one replica."""
    import argparse

    from validation.commands.run import configure

    args = argparse.Namespace(
        config="default", overrides=["training_seeds=3"], data=None, data_root=None, device=None, seed=None
    )
    for name in ("vgg", "vgg11"):
        config = configure(argparse.Namespace(**vars(args), model=name))
        assert [m.name for m in config.models] == ["vgg.s0", "vgg.s1", "vgg.s2"]
        assert {m.base for m in config.models} == {"vgg"}
