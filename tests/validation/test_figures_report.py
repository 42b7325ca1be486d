"""``batchrmt figures DIR`` and ``batchrmt report DIR`` regenerate from stored records alone."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from validation.cli import main
from validation.experiments.lr_analysis import CHAMPION, CHAMPIONS, LR_PREDICTORS, applies
from validation.experiments.spectrum_models import SPECTRUM_MODELS
from validation.store import ResultStore

from .test_resume import tiny_config


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_figures_and_report_redraw_without_recomputing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    assert main(["run", "--config", str(tiny_config(tmp_path)), "--out", str(out), "--quiet"]) == 0
    report = (out / "report.md").read_text()
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert pngs == sorted(
        f"{n}.png"
        for n in ("densities", "lambda_vs_batch", "lr_vs_batch", "montecarlo", "noise_spectrum", "per_sample")
    )
    # readable tables and claims: no empty "nan (n=0)" cells, no outcome beside a contradicting verdict
    assert "nan (n=0)" not in report and "verdict rule" not in report and "REJECTED" not in report
    store = ResultStore(out)
    for an in store.records("lr_analysis"):  # predictors are stored under their registry keys
        for opt, res in an["optimizers"].items():
            assert {k for k in LR_PREDICTORS.keys() if applies(k, opt)} == set(res["predictors"])
            assert res["champion"] in (CHAMPIONS[opt], CHAMPION)
    for pred in store.records("predictions"):
        assert set(pred["targets"]["H"]["curves"]) == set(SPECTRUM_MODELS.keys())
    records = _digest(out / "records")
    shutil.rmtree(out / "figures")
    (out / "report.md").unlink()

    import networks.lanczos
    import networks.training

    def forbidden(*_: object, **__: object) -> None:
        raise AssertionError("figures/report must not recompute measurements")

    for mod, name in (
        (networks.lanczos, "top_eigenpairs"),
        (networks.lanczos, "slq_density"),
        (networks.training, "divergence_trial"),
    ):
        monkeypatch.setattr(mod, name, forbidden)
    assert main(["figures", str(out)]) == 0
    assert main(["report", str(out)]) == 0
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == pngs
    assert (out / "report.md").read_text() == report
    assert _digest(out / "records") == records
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert main(["figures", str(tmp_path / "nothing")]) == 2
