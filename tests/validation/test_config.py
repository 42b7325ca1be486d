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
    assert default.thresholds.seeds >= 5 and default.sweep.batches_per_size >= 5
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
