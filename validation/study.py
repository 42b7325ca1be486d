"""Run the whole study on your own network and data from Python.

    from validation.study import run_study
    result = run_study(MyNet(), (x, y), config="smoke", out="runs/mine")
    result.rows            # one summary row per (model, checkpoint)
    result.to_csv("summary.csv"); result.to_json("summary.json"); result.report  # report.md

The study is the same pipeline as ``batchrmt run`` (docs/validation.md §3): the model's weights are used as
given (``train=True`` pre-trains to the config's loss levels instead), then the empirical spectra, the
independent noise estimate, the batch-size sweep, the model predictions, the divergence thresholds, figures
and report. Everything but the model and the data comes from the named config (``batchrmt config show NAME``)
with ``overrides`` (``"section.field=value"``) applied.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from validation.config import RunConfig, apply_overrides, config_from_dict, config_path
from validation.config import read_config_file as _read_config_file
from validation.sources import OBJECT_PREFIX, as_array_dataset, is_reference

if TYPE_CHECKING:
    from torch import nn

LOSSES = ("cross-entropy",)
"""Losses the study supports: the pipeline's operators, thresholds and predictions assume classification with
the mean cross-entropy (the GGN is exact for it)."""


@dataclass(frozen=True)
class StudyResult:
    """What a study produced: the run folder, one summary row per (model, checkpoint), and the files written
    (records, CSV summaries, figures, report)."""

    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def report(self) -> Path:
        """``report.md`` of the run."""
        return self.out / "report.md"

    @property
    def figures(self) -> list[Path]:
        """The figures (PNG) of the run."""
        return sorted((self.out / "figures").glob("*.png"))

    def records(self, step: str) -> list[dict[str, Any]]:
        """Every stored record of a pipeline step (``"sweep"``, ``"thresholds"``, …)."""
        from validation.store import ResultStore

        return ResultStore(self.out).records(step)

    def to_json(self, path: str | Path) -> Path:
        """Write the summary rows as a JSON list; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.rows, indent=1, default=str) + "\n", encoding="utf-8")
        return path

    def to_csv(self, path: str | Path) -> Path:
        """Write the summary rows as CSV (one row per model and checkpoint); returns the path."""
        path = Path(path)
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        return path


def _base_config(config: str | Path | RunConfig, overrides: Sequence[str]) -> dict[str, Any]:
    if isinstance(config, RunConfig):
        raw = config.to_dict()
    else:
        raw = _read_config_file(config_path(config))
    return apply_overrides(raw, overrides)


def study_config(
    model: nn.Module | Callable[..., nn.Module] | str,
    data: Any,
    *,
    config: str | Path | RunConfig = "smoke",
    overrides: Sequence[str] = (),
    name: str = "model",
    train: bool = False,
) -> tuple[RunConfig, dict[str, Any]]:
    """The run config of a study of ``model`` on ``data`` and the live objects it references.

    ``model``: an ``nn.Module`` (its weights are used as given), a callable returning one, or a spec string
    (built-in or ``module:factory``). ``data``: an ``ArrayDataset``, an ``(x, y)`` pair, a ``DataLoader``, a
    ``Dataset``, or a data-set name / ``module:factory`` string. ``pool_size`` is capped at the number of
    samples of live data.
    """
    from torch import nn

    raw = _base_config(config, overrides)
    objects: dict[str, Any] = {}
    if isinstance(model, str):
        spec = model
    elif isinstance(model, nn.Module) or callable(model):
        objects["model"] = model
        spec = f"{OBJECT_PREFIX}model"
    else:
        raise TypeError(
            f"model must be an nn.Module, a callable returning one, or a spec string, got {type(model)}"
        )
    raw["models"] = [{"name": name, "spec": spec, "kwargs": {}}]
    if isinstance(data, str):
        raw["data"] = data
        if not is_reference(data):
            raw.setdefault("data_kwargs", {})
    else:
        dataset = as_array_dataset(data)
        objects["data"] = dataset
        raw["data"], raw["data_kwargs"] = f"{OBJECT_PREFIX}data", {}
        raw["pool_size"] = min(int(raw.get("pool_size", len(dataset))), len(dataset))
    raw.setdefault("checkpoint", {})["mode"] = "train" if train else "as-given"
    thresholds = raw.setdefault("thresholds", {})
    thresholds["models"], thresholds["checkpoints"] = [], [0]
    return config_from_dict(raw), objects


def run_study(
    model: nn.Module | Callable[..., nn.Module] | str,
    data: Any,
    *,
    out: str | Path,
    config: str | Path | RunConfig = "smoke",
    overrides: Iterable[str] = (),
    loss: str = "cross-entropy",
    name: str = "model",
    train: bool = False,
    workers: int | None = 1,
    resume: bool = False,
    draw: bool = True,
    quiet: bool = True,
) -> StudyResult:
    """Run the study of ``model`` on ``data`` into ``out`` and return its :class:`StudyResult`.

    ``workers`` defaults to 1 (in-process): live objects are pickled to worker processes, which needs their
    classes to be importable (a module, or a script guarded by ``if __name__ == "__main__":``); pass
    ``workers=None`` (one per CPU) or a number when they are.
    """
    from validation.pipeline import run_pipeline

    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES} (the study assumes classification), got {loss!r}")
    run_config, objects = study_config(
        model, data, config=config, overrides=list(overrides), name=name, train=train
    )
    summary = run_pipeline(
        run_config, out, resume=resume, quiet=quiet, draw=draw, workers=workers, objects=objects
    )
    return StudyResult(out=summary.out, rows=summary.rows, files=summary.files)
