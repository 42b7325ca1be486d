"""On-the-fly learning rate and momentum from stochastic Lanczos quadrature (docs/theory.md §6, corrected).

Every ``every`` optimiser steps, :class:`SLQLearner` runs ``lanczos_steps`` Lanczos steps on the curvature
(Hessian or GGN) of a fixed curvature subset, reads the extremal curvatures off the Ritz values and resets
SGD's learning rate (and, for ``rule="heavy_ball"``, its momentum):

* ``L = max_k |θ_k|`` (the Ritz values converge to the extremal eigenvalues first);
* ``μ`` from the Ritz values θ_k and their quadrature weights τ_k (the SLQ measure ``Σ_k τ_k δ(λ − θ_k)``):

  - ``mu_mode="positive"`` (default): the smallest *positive* Ritz value outside the near-zero bulk. The bulk
    is every Ritz value carrying more than ``weight_threshold`` of the measure together with every Ritz value
    no farther from 0 than those (``|θ_k| ≤ max |θ_bulk|``). Rationale: μ is the lower end of the curvature
    range [μ, L] the step must contract; negative-curvature directions cannot be contracted by any positive
    step (gradient descent leaves them at rate 1 + η|λ|, which is what it should do), and the bulk is the
    unresolved near-flat mass. So μ is the smallest resolved positive curvature. Without a heavy Ritz value
    (e.g. a positive-definite quadratic) nothing is discarded and μ is the smallest positive Ritz value;
  - ``mu_mode="weight"`` (docs/theory.md §6 as written): the smallest Ritz value with ``τ_k ≤
  weight_threshold``.
    On a network Hessian this is a negative Ritz value, so μ always ends at the floor below;
  - ``mu_mode="quantile"``: the smallest θ_k whose cumulative weight (θ ascending) reaches ``quantile``;

  then ``μ ← clip(μ, μ_floor, L)`` with ``μ_floor = max(mu_floor, mu_floor_ratio · L)`` (also the value when
  no admissible Ritz value exists). ``SpectralBounds.mu_raw`` is μ before the clipping, so a trace shows
  whether the floor decided μ;
* ``rule="sgd"``: ``η = safety · 2/(L + μ)``, ``β = 0`` (the optimal fixed step of gradient descent on a
  quadratic with spectrum in [μ, L]; contraction ``(L−μ)/(L+μ)`` per step);
* ``rule="heavy_ball"``: Polyak's ``η = 4/(√L+√μ)²``, ``β = ((√L−√μ)/(√L+√μ))²`` from
  :func:`rmt.learning_rates.polyak_heavy_ball` (contraction ``(√L−√μ)/(√L+√μ)``), ``η ← safety · η``.

The original code's two slips are not copied: its momentum denominator ``√L + μ`` and its ``√(μ/L)`` Nesterov
step. With ``weight_decay`` the curvature is that of the regularised objective, so every Ritz value is shifted
by ``weight_decay`` before L and μ are read.

Batch norm: with ``bn_mode="auto"`` (default) a model with normalisation layers is measured with batch
statistics on the curvature subset (``"train"``; buffers are not updated), i.e. the curvature of the loss the
optimiser actually descends. Running statistics (``"eval"``) are wrong early in training — at initialisation
they are still (0, 1), and the Hessian of that network is a different function's (top |θ| ≈ 10² × the
batch-statistics one on PreResNet/Fashion-MNIST).

The update itself is :class:`torch.optim.SGD`'s (PyTorch heavy ball ``v ← βv + g, w ← w − ηv``; no Nesterov,
no dampening).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from networks.curvature import curvature_operator
from networks.curvature._batches import curvature_mode
from networks.options import LEARNER_BN_MODES, MATRICES, MU_MODES, BNMode, Matrix
from rmt.checks import check_choice, check_in_range, check_int, check_positive

Batch = tuple[Tensor, Tensor]

RULES = ("sgd", "heavy_ball")


@dataclass(frozen=True)
class SpectralBounds:
    """Extremal curvatures read off one Lanczos run.

    ``L`` and ``mu`` are the values the learner uses (after the weight-decay shift and the clipping);
    ``mu_raw`` is μ before clipping (may be ≤ 0 when the curvature has negative directions).
    """

    L: float
    mu: float
    mu_raw: float


@dataclass(frozen=True)
class CurvatureRecord:
    """One refresh of the learner's hyperparameters (one row of :attr:`SLQLearner.trace`).

    ``num_products`` counts the curvature-vector products of this refresh (Lanczos, plus the noise estimate
    when a prediction is requested); ``wall_time`` is the seconds spent on that curvature work.
    ``ritz_values`` / ``ritz_weights`` are the Lanczos nodes θ_k (ascending, before the weight-decay shift)
    and their weights τ_k.
    ``predicted_top_eigenvalue`` / ``predicted_max_lr`` are present only with ``predicted_batch_size``: the
    rmt prediction λ'(B) of the top curvature of a training batch of that size and the stability bound
    ``max_lr(λ'(B), method, momentum)`` for the rule's method at the chosen momentum.
    """

    step: int
    L: float
    mu: float
    mu_raw: float
    lr: float
    momentum: float
    num_products: int
    wall_time: float
    p_sigma2: float | None = None
    predicted_top_eigenvalue: float | None = None
    predicted_max_lr: float | None = None
    ritz_values: list[float] | None = None
    ritz_weights: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spectral_bounds(
    ritz_values: Sequence[float] | np.ndarray,
    weights: Sequence[float] | np.ndarray,
    *,
    mu_mode: str = "positive",
    weight_threshold: float = 0.5,
    quantile: float = 0.05,
    mu_floor: float = 0.0,
    mu_floor_ratio: float = 1e-2,
    shift: float = 0.0,
) -> SpectralBounds:
    """``L = max|θ|`` and μ from Ritz values θ_k with quadrature weights τ_k (see the module docstring).

    Args:
        ritz_values: Ritz values of one Lanczos run (any order).
        weights: their quadrature weights τ_k (squared first components of the Ritz vectors; sum 1).
        mu_mode: ``"positive"`` — μ is the smallest θ_k > 0 outside the bulk (the Ritz values with τ_k >
            ``weight_threshold`` and all with |θ_k| ≤ their largest |θ|); the floor when there is none.
            ``"weight"`` — μ is the smallest θ_k with τ_k ≤ ``weight_threshold`` (the smallest θ_k when
            all weights exceed it, i.e. a single Ritz value); ``"quantile"`` — μ is the smallest θ_k whose
            cumulative weight (θ ascending) reaches ``quantile``.
        weight_threshold: in (0, 1]; Ritz values carrying more weight are the near-zero bulk.
        quantile: in [0, 1).
        mu_floor, mu_floor_ratio: μ is clipped below at ``max(mu_floor, mu_floor_ratio · L)``, above at L.
        shift: added to every Ritz value first (the weight decay: curvature of ``loss + shift/2 ‖w‖²``).

    Returns:
        SpectralBounds(L, mu, mu_raw). ``L`` must come out > 0.
    """
    mu_mode = check_choice(mu_mode, "mu_mode", MU_MODES)
    check_in_range(weight_threshold, "weight_threshold", 0.0, 1.0, low_open=True)
    check_in_range(quantile, "quantile", 0.0, 1.0, high_open=True)
    check_positive(mu_floor, "mu_floor", allow_zero=True)
    check_in_range(mu_floor_ratio, "mu_floor_ratio", 0.0, 1.0)
    theta = np.asarray(ritz_values, dtype=np.float64) + float(shift)
    tau = np.asarray(weights, dtype=np.float64)
    if theta.ndim != 1 or theta.size == 0 or tau.shape != theta.shape:
        raise ValueError(
            f"ritz_values and weights must be 1-D of equal length >= 1, got {theta.shape}, {tau.shape}"
        )
    if not (np.isfinite(theta).all() and np.isfinite(tau).all()):
        raise ValueError("ritz_values and weights must be finite")
    order = np.argsort(theta)
    theta, tau = theta[order], tau[order]
    L = float(np.max(np.abs(theta)))
    if not L > 0.0:
        raise ValueError(f"the curvature is zero (max |ritz value| = {L}); no learning rate can be derived")
    floor = max(float(mu_floor), float(mu_floor_ratio) * L)
    if mu_mode == "positive":
        heavy = tau > weight_threshold
        radius = float(np.max(np.abs(theta[heavy]))) if heavy.any() else -math.inf
        candidates = theta[(theta > 0.0) & (np.abs(theta) > radius)]
        mu_raw = float(candidates[0]) if candidates.size else floor
    elif mu_mode == "weight":
        kept = theta[tau <= weight_threshold]
        mu_raw = float(kept[0]) if kept.size else float(theta[0])
    else:
        cumulative = np.cumsum(tau) / np.sum(tau)
        index = int(np.searchsorted(cumulative, quantile, side="left"))
        mu_raw = float(theta[min(index, theta.size - 1)])
    mu = float(min(max(mu_raw, floor), L))
    return SpectralBounds(L=L, mu=mu, mu_raw=mu_raw)


def learner_hyperparameters(
    L: float, mu: float, rule: str = "sgd", safety: float = 1.0
) -> tuple[float, float]:
    """(lr, momentum) for curvature in [μ, L]: ``safety·2/(L+μ), 0`` (sgd) or safety × Polyak (heavy_ball)."""
    from rmt.learning_rates import polyak_heavy_ball

    rule = check_choice(rule, "rule", RULES)
    check_positive(L, "L")
    check_in_range(mu, "mu", 0.0, float(L), low_open=True)
    check_in_range(safety, "safety", 0.0, 2.0, low_open=True)
    if rule == "sgd":
        return float(safety) * 2.0 / (float(L) + float(mu)), 0.0
    lr, momentum = polyak_heavy_ball(float(L), float(mu))
    return float(safety) * float(lr), float(momentum)


class SLQLearner(torch.optim.SGD):
    """SGD (optionally heavy ball) with lr / momentum reset every ``every`` steps from Lanczos curvature.

    Args:
        params: the parameters to optimise (tensors or param-group dicts), as for ``torch.optim.SGD``.
        model, loss_fn: define the curvature (``loss_fn`` with ``reduction="mean"``).
        curvature_data: one ``(x, y)`` batch or a list of batches: the fixed curvature subset (mean
            loss over all its samples). ``None``: the curvature of the batch passed to :meth:`step`
            (``batch=(x, y)``) or :meth:`refresh` at each refresh.
        every: refresh period in optimiser steps (a refresh happens before steps 0, every, 2·every, ...).
        lanczos_steps: Lanczos steps per refresh (= curvature-vector products).
        matrix: ``"hessian"`` or ``"ggn"``.
        rule: ``"sgd"`` (η = 2/(L+μ), no momentum) or ``"heavy_ball"`` (Polyak's η, β).
        mu_mode, weight_threshold, quantile, mu_floor, mu_floor_ratio: how μ is read (see spectral_bounds).
        safety: factor in (0, 2] multiplying the learning rate.
        lr_max: optional cap on the learning rate (e.g. for a nearly flat initial landscape).
        weight_decay: L2 coefficient, applied by SGD and added to the curvature (Ritz values shifted by it).
        bn_mode: batch-norm mode of the curvature products: ``"train"`` (batch statistics of the curvature
            batch), ``"eval"`` (running statistics) or ``"auto"`` (``"train"`` when the model has
            normalisation layers, else ``"eval"``; see the module docstring). The model's mode, BN buffers
            and gradients are left untouched (the curvature operators restore them).
        seed: Lanczos start vectors use ``seed + refresh index`` (deterministic, resumable).
        predicted_batch_size: optional training batch size B; each refresh also estimates the per-sample noise
            Pσ² (:func:`networks.curvature.noise.per_sample_noise` on the first curvature batch) and records
            the rmt prediction for B: ``λ'(B) = batch_hessian_extremal(L, σ², P, B, n_data)`` (Hessian) or
            ``batch_ggn_extremal(L, σ², P, B, outputs_per_sample)`` (GGN), treating the subset's L as the
            full-data λ_1 (it is itself a batch estimate, biased up by ν(S)²/L), and ``max_lr(λ'(B), ...)``.
            Per-sample noise needs running statistics; with ``bn_mode="train"`` it is measured in eval mode
            on a copy of the model whose BN running statistics are those of the curvature batch.
        n_data: training-set size N for the prediction (``None``: infinite).
        noise_samples, noise_probes: cost of that noise estimate.
    """

    def __init__(
        self,
        params: Iterable[Any],
        model: nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        curvature_data: Batch | Sequence[Batch] | None,
        *,
        every: int = 100,
        lanczos_steps: int = 20,
        matrix: str = "hessian",
        rule: str = "sgd",
        mu_mode: str = "positive",
        weight_threshold: float = 0.5,
        quantile: float = 0.05,
        safety: float = 1.0,
        mu_floor: float = 0.0,
        mu_floor_ratio: float = 1e-2,
        lr_max: float | None = None,
        weight_decay: float = 0.0,
        bn_mode: str = "auto",
        seed: int = 0,
        predicted_batch_size: int | None = None,
        n_data: int | None = None,
        noise_samples: int = 32,
        noise_probes: int = 2,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError("loss_fn must be callable (e.g. nn.CrossEntropyLoss())")
        self.every = check_int(every, "every", minimum=1)
        self.lanczos_steps = check_int(lanczos_steps, "lanczos_steps", minimum=2)
        self.matrix: Matrix = "hessian" if check_choice(matrix, "matrix", MATRICES) == "hessian" else "ggn"
        self.rule = check_choice(rule, "rule", RULES)
        self.bn_mode = _resolve_bn_mode(check_choice(bn_mode, "bn_mode", LEARNER_BN_MODES), model)
        self.seed = check_int(seed, "seed", minimum=0)
        check_in_range(safety, "safety", 0.0, 2.0, low_open=True)
        self.safety = float(safety)
        if lr_max is not None:
            check_positive(lr_max, "lr_max")
        self.lr_max = None if lr_max is None else float(lr_max)
        check_positive(weight_decay, "weight_decay", allow_zero=True)
        self.bound_options: dict[str, Any] = {
            "mu_mode": mu_mode,
            "weight_threshold": weight_threshold,
            "quantile": quantile,
            "mu_floor": mu_floor,
            "mu_floor_ratio": mu_floor_ratio,
            "shift": float(weight_decay),
        }
        spectral_bounds(
            [1.0], [1.0], **self.bound_options
        )  # validates the options now, not at the first refresh
        self.predicted_batch_size = (
            None
            if predicted_batch_size is None
            else check_int(predicted_batch_size, "predicted_batch_size", minimum=1)
        )
        self.n_data = None if n_data is None else check_int(n_data, "n_data", minimum=1)
        self.noise_samples = check_int(noise_samples, "noise_samples", minimum=2)
        self.noise_probes = check_int(noise_probes, "noise_probes", minimum=1)
        self.model = model
        self.loss_fn = loss_fn
        self.curvature_data = _check_batches(curvature_data)
        super().__init__(params, lr=0.0, momentum=0.0, weight_decay=float(weight_decay))
        self.num_steps = 0
        self.num_refreshes = 0
        self.total_products = 0
        self.trace: list[CurvatureRecord] = []

    # ------------------------------------------------------------------ curvature
    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _operator(self, data: list[Batch]) -> Any:
        return curvature_operator(
            self.matrix,
            self.model,
            self.loss_fn,
            data if len(data) > 1 else data[0],
            bn_mode=self.bn_mode,
            params=self._params(),
        )

    def refresh(self, batch: Batch | None = None) -> CurvatureRecord:
        """Measure the curvature now and reset lr / momentum of every param group; returns the trace record.

        ``batch`` is used only when the learner has no fixed ``curvature_data``.
        """
        from networks.lanczos import lanczos

        data = self.curvature_data if self.curvature_data is not None else _check_batches(batch)
        if data is None:
            raise ValueError("batch=(x, y) is required at a refresh when the learner has no curvature_data")
        start = time.perf_counter()
        operator = self._operator(data)
        result = lanczos(operator, self.lanczos_steps, seed=self.seed + self.num_refreshes)
        products = int(result.num_products)
        ritz, weights = np.asarray(result.ritz_values, np.float64), np.asarray(result.weights, np.float64)
        if np.isfinite(ritz).all() and np.isfinite(weights).all() and np.abs(ritz).max() > 0:
            bounds = spectral_bounds(ritz, weights, **self.bound_options)
            lr, momentum = learner_hyperparameters(bounds.L, bounds.mu, self.rule, self.safety)
            if self.lr_max is not None:
                lr = min(lr, self.lr_max)
        else:  # unusable curvature (diverged or flat model): keep the current hyperparameters
            bounds = SpectralBounds(L=math.nan, mu=math.nan, mu_raw=math.nan)
            lr = self.lr if self.num_refreshes or self.lr_max is None else self.lr_max
            momentum = self.momentum
        p_sigma2 = predicted_top = predicted_lr = None
        if self.predicted_batch_size is not None and math.isfinite(bounds.L):
            p_sigma2, predicted_top, predicted_lr, noise_products = self._predict(data[0], bounds.L, momentum)
            products += noise_products
        for group in self.param_groups:
            group["lr"] = lr
            group["momentum"] = momentum
        record = CurvatureRecord(
            step=self.num_steps,
            L=bounds.L,
            mu=bounds.mu,
            mu_raw=bounds.mu_raw,
            lr=lr,
            momentum=momentum,
            num_products=products,
            wall_time=time.perf_counter() - start,
            p_sigma2=p_sigma2,
            predicted_top_eigenvalue=predicted_top,
            predicted_max_lr=predicted_lr,
            ritz_values=[float(v) for v in np.sort(ritz)],
            ritz_weights=[float(w) for w in weights[np.argsort(ritz)]],
        )
        self.trace.append(record)
        self.num_refreshes += 1
        self.total_products += products
        return record

    def _predict(self, batch: Batch, L: float, momentum: float) -> tuple[float, float, float, int]:
        """(Pσ², λ'(B), max_lr(λ'(B)), products) — the rmt prediction for the training batch size."""
        from networks.curvature import per_sample_noise
        from rmt.learning_rates import max_lr
        from rmt.wigner import batch_hessian_extremal
        from rmt.wishart import batch_ggn_extremal

        x, y = batch
        model, params = self.model, self._params()
        if self.bn_mode == "train" and _has_norm_layers(model):
            model, params = _calibrated_copy(model, params, x)
        noise = per_sample_noise(
            model,
            self.loss_fn,
            x,
            y,
            matrix=self.matrix,
            num_samples=min(self.noise_samples, len(x)),
            num_probes=self.noise_probes,
            seed=self.seed + self.num_refreshes,
            bn_mode="eval",
            params=params,
        )
        n_params = sum(p.numel() for p in self._params())
        sigma2 = float(noise.p_sigma2) / n_params
        batch_size = self.predicted_batch_size
        assert batch_size is not None
        if self.matrix == "hessian":
            top = float(batch_hessian_extremal(L, sigma2, n_params, batch_size, self.n_data))
        else:
            outputs = _outputs_per_sample(model, x)
            top = float(batch_ggn_extremal(L, sigma2, n_params, batch_size, outputs_per_sample=outputs))
        method = "sgd" if self.rule == "sgd" else "heavy_ball"
        bound = float(max_lr(abs(top), method=method, momentum=momentum))
        return float(noise.p_sigma2), top, bound, int(noise.num_products)

    # ------------------------------------------------------------------ optimisation
    def step(self, closure: Callable[[], float] | None = None, *, batch: Batch | None = None) -> Any:
        """Refresh lr / momentum when due (before steps 0, every, 2·every, ...), then one SGD step."""
        if self.num_steps % self.every == 0:
            self.refresh(batch)
        loss = super().step(closure)
        self.num_steps += 1
        return loss

    @property
    def lr(self) -> float:
        """The current learning rate (0.0 before the first refresh)."""
        return float(self.param_groups[0]["lr"])

    @property
    def momentum(self) -> float:
        return float(self.param_groups[0]["momentum"])

    def trace_dicts(self) -> list[dict[str, Any]]:
        """The trace as JSON-able dicts (step, L, mu, mu_raw, lr, momentum, num_products, wall_time, ...)."""
        return [record.to_dict() for record in self.trace]

    def state_dict(self) -> dict[str, Any]:
        """SGD's state (momentum buffers, lr, momentum) plus the learner's counters and trace."""
        state = super().state_dict()
        state["slq"] = {
            "num_steps": self.num_steps,
            "num_refreshes": self.num_refreshes,
            "total_products": self.total_products,
            "trace": self.trace_dicts(),
        }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        if "slq" not in state:
            raise ValueError("state_dict has no 'slq' entry: it was not written by SLQLearner.state_dict()")
        slq = state.pop("slq")
        super().load_state_dict(state)
        self.num_steps = int(slq["num_steps"])
        self.num_refreshes = int(slq["num_refreshes"])
        self.total_products = int(slq["total_products"])
        self.trace = [CurvatureRecord(**record) for record in slq["trace"]]


def _has_norm_layers(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._NormBase) for m in model.modules())


def _outputs_per_sample(model: nn.Module, x: Tensor) -> int:
    """The model's output width on one sample of ``x``, from a forward pass in eval mode without gradient
    (``curvature_mode``: no running statistic moves, every training flag is restored); 1 for an empty
    ``x``."""
    if not x.shape[0]:
        return 1
    with curvature_mode(model, [], "eval"), torch.no_grad():
        return int(model(x[:1]).shape[-1])


def _resolve_bn_mode(bn_mode: str, model: nn.Module) -> BNMode:
    """``"auto"`` → ``"train"`` for a model with normalisation layers, ``"eval"`` otherwise."""
    if bn_mode == "auto":
        return "train" if _has_norm_layers(model) else "eval"
    return "train" if bn_mode == "train" else "eval"


def _calibrated_copy(model: nn.Module, params: list[Tensor], x: Tensor) -> tuple[nn.Module, list[Tensor]]:
    """A copy of ``model`` whose BN running statistics are exactly the batch statistics of ``x`` (cumulative
    average over one forward pass), with the copies of ``params``; the original model is not touched."""
    names = {id(p): name for name, p in model.named_parameters()}
    if any(id(p) not in names for p in params):
        raise ValueError("the learner's parameters must belong to the model for the noise prediction")
    duplicate = copy.deepcopy(model)
    for module in duplicate.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one pass sets the batch statistics
    duplicate.train()
    with torch.no_grad():
        duplicate(x)
    duplicate.eval()
    copied = dict(duplicate.named_parameters())
    return duplicate, [copied[names[id(p)]] for p in params]


def _check_batches(data: Any) -> list[Batch] | None:
    """``None``, one ``(x, y)`` batch or a sequence of them -> list of batches (``ValueError`` otherwise)."""
    if data is None:
        return None
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        batches = [data]
    else:
        try:
            batches = [tuple(b) for b in data]
        except TypeError:
            raise TypeError(
                "curvature_data must be an (x, y) pair of tensors or a list of such pairs"
            ) from None
    if not batches:
        raise ValueError("curvature_data must contain at least one (x, y) batch")
    for i, b in enumerate(batches):
        if (
            len(b) != 2
            or not all(isinstance(t, Tensor) for t in b)
            or len(b[0]) != len(b[1])
            or len(b[0]) == 0
        ):
            raise ValueError(
                f"curvature_data batch {i} must be a non-empty (x, y) pair of tensors of equal length"
            )
    return [(b[0], b[1]) for b in batches]
