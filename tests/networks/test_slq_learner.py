"""SLQLearner: exact recovery of L, μ and Polyak's parameters on quadratics with a set spectrum, the predicted
convergence rates, resumable state, and curvature work that leaves the model's training state alone."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from networks.slq_learner import SLQLearner, learner_hyperparameters, spectral_bounds
from rmt.learning_rates import polyak_heavy_ball

# float64 Lanczos with full reorthogonalisation on a matrix with d distinct eigenvalues is exact after d steps
# up to rounding: Ritz values to ~1e-12 relative here (condition number 100).
LANCZOS_RTOL = 1e-9


def least_squares_problem(eigenvalues: np.ndarray, n: int = 64, seed: int = 0):
    """Linear model w ↦ Xw with MSE loss mean((Xw − y)²), whose Hessian 2XᵀX/n has the given eigenvalues."""
    rng = np.random.default_rng(seed)
    d = eigenvalues.size
    q, _ = np.linalg.qr(rng.standard_normal((n, d)))
    u, _ = np.linalg.qr(rng.standard_normal((d, d)))
    x = math.sqrt(n / 2) * q @ np.diag(np.sqrt(eigenvalues)) @ u.T
    w_star = rng.standard_normal(d)
    y = x @ w_star
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(rng.standard_normal((1, d))))
    data = (torch.from_numpy(x), torch.from_numpy(y).unsqueeze(1))
    return model, data, torch.from_numpy(w_star)


def run_full_batch(
    learner: SLQLearner, model: nn.Module, data, w_star: torch.Tensor, steps: int
) -> np.ndarray:
    """Error norms ‖w_k − w*‖ for k = 0..steps of full-batch training."""
    errors = [float(torch.linalg.norm(model.weight.detach().ravel() - w_star))]
    for _ in range(steps):
        learner.zero_grad()
        nn.MSELoss()(model(data[0]), data[1]).backward()
        learner.step()
        errors.append(float(torch.linalg.norm(model.weight.detach().ravel() - w_star)))
    return np.asarray(errors)


# Extremes well separated from the interior, so the asymptotic rate is reached within ~100 steps.
SPECTRUM = np.array([0.1, 0.5, 0.8, 1.2, 2.0, 3.0, 4.0, 5.0, 10.0])
L_TRUE, MU_TRUE = 10.0, 0.1


def test_sgd_rule_recovers_spectrum_and_converges_at_optimal_rate() -> None:
    model, data, w_star = least_squares_problem(SPECTRUM)
    learner = SLQLearner(
        model.parameters(),
        model,
        nn.MSELoss(),
        data,
        every=10_000,
        lanczos_steps=SPECTRUM.size,
        rule="sgd",
        mu_floor_ratio=0.0,
    )
    errors = run_full_batch(learner, model, data, w_star, steps=300)
    record = learner.trace[0]
    assert record.L == pytest.approx(L_TRUE, rel=LANCZOS_RTOL)
    assert record.mu == pytest.approx(MU_TRUE, rel=LANCZOS_RTOL)
    assert learner.lr == pytest.approx(2 / (L_TRUE + MU_TRUE), rel=LANCZOS_RTOL)
    assert learner.momentum == 0.0
    rate = (L_TRUE - MU_TRUE) / (L_TRUE + MU_TRUE)
    # both extreme components contract by exactly `rate`; the slowest interior one by 1 − 2·0.5/10.1 ≈ 0.90,
    # so after 100 steps its share is (0.90/0.98)^100 ≈ 2e-4: the measured rate matches to ~1e-5.
    measured = (errors[300] / errors[100]) ** (1 / 200)
    assert measured == pytest.approx(rate, rel=1e-4)


def test_heavy_ball_rule_recovers_polyak_and_converges_at_accelerated_rate() -> None:
    model, data, w_star = least_squares_problem(SPECTRUM, seed=1)
    learner = SLQLearner(
        model.parameters(),
        model,
        nn.MSELoss(),
        data,
        every=10_000,
        lanczos_steps=SPECTRUM.size,
        rule="heavy_ball",
        mu_floor_ratio=0.0,
    )
    errors = run_full_batch(learner, model, data, w_star, steps=100)
    lr, momentum = polyak_heavy_ball(L_TRUE, MU_TRUE)
    assert learner.lr == pytest.approx(lr, rel=LANCZOS_RTOL)
    assert learner.momentum == pytest.approx(momentum, rel=LANCZOS_RTOL)
    rate = (math.sqrt(L_TRUE) - math.sqrt(MU_TRUE)) / (math.sqrt(L_TRUE) + math.sqrt(MU_TRUE))
    # every eigenvalue in [μ, L] gives iteration roots of modulus `rate`; the extremes are double roots, so
    # ‖e_k‖ ~ k·rate^k times a bounded oscillation: over steps 30→100 the per-step ratio is
    # rate·(100/30)^(1/70) up to a factor 2^(±1/70) from the oscillating interior components.
    measured = (errors[100] / errors[30]) ** (1 / 70)
    envelope = rate * (100 / 30) ** (1 / 70)
    assert abs(math.log(measured / envelope)) < math.log(2) / 70
    assert measured < (L_TRUE - MU_TRUE) / (L_TRUE + MU_TRUE)  # faster than the best plain gradient descent


def test_weight_mode_discards_the_near_zero_bulk() -> None:
    # 40 zero eigenvalues (a bulk at 0 with weight ≈ 40/48 > 0.5) and 8 spikes in [0.5, 10]
    spikes = np.array([0.5, 0.9, 1.5, 2.5, 4.0, 6.0, 8.0, 10.0])
    spectrum = np.concatenate([np.zeros(40), spikes])
    model, data, _ = least_squares_problem(spectrum, n=96, seed=2)
    learner = SLQLearner(
        model.parameters(), model, nn.MSELoss(), data, lanczos_steps=spikes.size + 1, mu_floor_ratio=0.0
    )
    record = learner.refresh()
    assert record.L == pytest.approx(10.0, rel=1e-8)
    assert record.mu == pytest.approx(0.5, rel=1e-8)
    assert record.num_products == spikes.size + 1
    assert learner.total_products == record.num_products


def test_spectral_bounds_modes_and_clipping() -> None:
    theta = np.array([-0.3, 0.01, 1.0, 2.0, 50.0])
    tau = np.array([0.05, 0.7, 0.1, 0.1, 0.05])
    weight = spectral_bounds(theta, tau, mu_mode="weight", mu_floor_ratio=0.0)
    assert (weight.L, weight.mu_raw) == (50.0, -0.3)
    assert weight.mu == 0.0  # negative μ is clipped to the floor (0 here)
    kept = spectral_bounds(theta[1:], tau[1:] / tau[1:].sum(), mu_mode="weight", mu_floor_ratio=0.0)
    assert kept.mu == 1.0  # the heavy Ritz value at 0.01 is the bulk and is skipped
    quant = spectral_bounds(theta, tau, mu_mode="quantile", quantile=0.8, mu_floor_ratio=0.0)
    assert quant.mu == 1.0  # cumulative weights 0.05, 0.75, 0.85, ...
    floored = spectral_bounds(theta, tau, mu_mode="weight", mu_floor=0.2, mu_floor_ratio=0.01)
    assert floored.mu == pytest.approx(0.5)  # max(0.2, 0.01·50)
    shifted = spectral_bounds(theta[1:], tau[1:] / tau[1:].sum(), mu_floor_ratio=0.0, shift=0.5)
    assert (shifted.L, shifted.mu) == (50.5, 1.5)
    assert spectral_bounds([-7.0, 1.0], [0.5, 0.5]).L == 7.0  # L = max |θ|


def test_positive_mode_takes_the_smallest_resolved_positive_curvature() -> None:
    theta = np.array([-0.3, 0.01, 1.0, 2.0, 50.0])
    tau = np.array([0.05, 0.7, 0.1, 0.1, 0.05])
    default = spectral_bounds(theta, tau, mu_floor_ratio=0.0)  # "positive" is the default
    assert (default.L, default.mu_raw, default.mu) == (50.0, 1.0, 1.0)  # the negative θ never sets μ
    # a bulk split over two nodes: the light node inside the heavy node's radius is bulk too
    split = spectral_bounds([-0.02, 0.005, 0.4, 5.0], [0.6, 0.3, 0.05, 0.05], mu_floor_ratio=0.0)
    assert split.mu_raw == 0.4
    # no positive curvature outside the bulk: μ is the floor, and mu_raw says so
    none = spectral_bounds([-3.0, 0.001], [0.1, 0.9], mu_floor_ratio=0.01)
    assert none.mu_raw == none.mu == pytest.approx(0.03)
    # no heavy node (a positive-definite spectrum): nothing is discarded
    assert spectral_bounds([0.1, 1.0, 10.0], [0.3, 0.4, 0.3], mu_floor_ratio=0.0).mu == 0.1


class IndefiniteQuadratic(nn.Module):
    """Output = the parameter vector w itself; with ``quadratic_loss`` the Hessian is exactly A."""

    def __init__(self, w0: np.ndarray) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.from_numpy(w0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w.expand(x.shape[0], -1)


def test_indefinite_spectrum_with_bulk_positive_mode_measures_mu_weight_mode_hits_the_floor() -> None:
    # a non-convex "network-like" spectrum: 2 negative, a 40-fold zero bulk, 3 positive eigenvalues
    eigenvalues = np.concatenate([[-2.0, -0.5], np.zeros(40), [0.3, 1.0, 4.0]])
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((eigenvalues.size, eigenvalues.size)))
    a = torch.from_numpy(q @ np.diag(eigenvalues) @ q.T)

    def quadratic_loss(out: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.einsum("bi,ij,bj->b", out, a, out).mean()

    data = (torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))
    bounds = {}
    for mode in ("positive", "weight"):
        model = IndefiniteQuadratic(rng.standard_normal(eigenvalues.size))
        learner = SLQLearner(
            model.parameters(),
            model,
            quadratic_loss,
            data,
            lanczos_steps=6,
            mu_mode=mode,
            mu_floor_ratio=0.01,
        )
        bounds[mode] = learner.refresh()
    # 6 distinct eigenvalues, 6 Lanczos steps: the Ritz values are the eigenvalues (the zero node is the bulk)
    assert bounds["positive"].L == pytest.approx(4.0, rel=1e-8)
    assert bounds["positive"].mu == pytest.approx(0.3, rel=1e-8)
    assert bounds["weight"].mu_raw == pytest.approx(-2.0, rel=1e-8)  # docs/theory.md §6's rule as written
    assert bounds["weight"].mu == pytest.approx(0.04)  # ... ends at the floor 0.01·L
    assert bounds["positive"].ritz_values is not None and len(bounds["positive"].ritz_values) == 6


def test_auto_bn_mode_uses_batch_statistics_for_bn_models_only() -> None:
    from networks.curvature.hessian import HessianOperator
    from networks.lanczos import lanczos

    model = small_bn_net()
    x, y = small_data(32)
    learner = SLQLearner(model.parameters(), model, nn.CrossEntropyLoss(), (x, y), lanczos_steps=5, seed=3)
    assert learner.bn_mode == "train"
    record = learner.refresh()
    reference = lanczos(HessianOperator(model, nn.CrossEntropyLoss(), (x, y), bn_mode="train"), 5, seed=3)
    assert record.L == pytest.approx(float(np.max(np.abs(reference.ritz_values))), rel=1e-10)
    linear = nn.Linear(3, 2)
    assert SLQLearner(linear.parameters(), linear, nn.CrossEntropyLoss(), None).bn_mode == "eval"


def test_prediction_with_batch_statistics_leaves_training_state_untouched() -> None:
    model = small_bn_net()
    x, y = small_data(48)
    model.train()
    nn.CrossEntropyLoss()(model(x), y).backward()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    learner = SLQLearner(
        model.parameters(),
        model,
        nn.CrossEntropyLoss(),
        (x, y),
        lanczos_steps=5,
        predicted_batch_size=8,
        noise_samples=8,
        noise_probes=1,
    )
    record = learner.refresh()
    assert learner.bn_mode == "train" and record.p_sigma2 is not None and record.p_sigma2 > 0
    assert model.training and all(torch.equal(v, buffers[k]) for k, v in model.state_dict().items())


def test_hyperparameters_are_polyak_not_the_original_typo() -> None:
    lr, momentum = learner_hyperparameters(100.0, 4.0, "heavy_ball")
    assert lr == pytest.approx(4 / (10 + 2) ** 2) and momentum == pytest.approx((8 / 12) ** 2)
    assert lr != pytest.approx(4 / (10 + 4.0) ** 2)  # the original code's √L + μ denominator
    assert learner_hyperparameters(100.0, 1.0, "sgd", safety=0.5) == pytest.approx((1 / 101, 0.0))


def small_bn_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    )


def small_data(n: int = 48, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("matrix", ["hessian", "ggn"])
@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_curvature_work_leaves_training_state_untouched(matrix: str, bn_mode: str) -> None:
    model = small_bn_net()
    x, y = small_data()
    model.train()
    nn.CrossEntropyLoss()(model(x), y).backward()  # BN statistics move off their init; gradients exist
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters()]
    learner = SLQLearner(
        model.parameters(),
        model,
        nn.CrossEntropyLoss(),
        (x[:32], y[:32]),
        matrix=matrix,
        bn_mode=bn_mode,
        lanczos_steps=6,
    )
    record = learner.refresh()
    assert record.L > 0 and record.lr > 0
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, buffers[k]), k
    for p, g in zip(model.parameters(), grads, strict=True):
        assert torch.equal(p.grad, g) and p.requires_grad


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_ggn_prediction_leaves_bn_running_statistics_bit_identical(bn_mode: str) -> None:
    """Regression: the GGN prediction once read the output width off a forward pass of the live model in
    training mode, which updated BatchNorm's running statistics (and num_batches_tracked)."""
    model = small_bn_net()
    x, y = small_data(48)
    model.train()
    nn.CrossEntropyLoss()(model(x), y).backward()  # running statistics off their initial (0, 1)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    learner = SLQLearner(
        model.parameters(),
        model,
        nn.CrossEntropyLoss(),
        (x[:32], y[:32]),
        matrix="ggn",
        bn_mode=bn_mode,
        lanczos_steps=5,
        predicted_batch_size=8,
        noise_samples=8,
        noise_probes=1,
    )
    record = learner.refresh()
    assert record.predicted_top_eigenvalue is not None and record.predicted_top_eigenvalue > 0
    assert model.training and all(m.training for m in model.modules())
    for name, value in model.named_buffers():
        assert torch.equal(value, buffers[name]), name


def train_steps(learner: SLQLearner, model: nn.Module, batches, start: int, stop: int) -> None:
    for k in range(start, stop):
        x, y = batches[k % len(batches)]
        learner.zero_grad()
        nn.CrossEntropyLoss()(model(x), y).backward()
        learner.step()


def test_state_dict_round_trip_reproduces_the_continuation_exactly() -> None:
    x, y = small_data(96, seed=3)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 96, 16)]
    curvature = (x[:32], y[:32])

    def make(model: nn.Module) -> SLQLearner:
        return SLQLearner(
            model.parameters(),
            model,
            nn.CrossEntropyLoss(),
            curvature,
            every=3,
            lanczos_steps=5,
            rule="heavy_ball",
            weight_decay=1e-3,
            seed=7,
        )

    model = small_bn_net(seed=1)
    learner = make(model)
    train_steps(learner, model, batches, 0, 4)
    saved_model, saved_learner = copy.deepcopy(model.state_dict()), copy.deepcopy(learner.state_dict())
    train_steps(learner, model, batches, 4, 11)

    resumed_model = small_bn_net(seed=99)
    resumed_model.load_state_dict(saved_model)
    resumed = make(resumed_model)
    resumed.load_state_dict(saved_learner)
    assert resumed.num_steps == 4 and len(resumed.trace) == 2
    train_steps(resumed, resumed_model, batches, 4, 11)

    assert resumed.trace_dicts()[:3] == [
        {**r, "wall_time": s["wall_time"]}
        for r, s in zip(learner.trace_dicts()[:3], resumed.trace_dicts()[:3], strict=True)
    ]
    assert [r.step for r in resumed.trace] == [0, 3, 6, 9]
    assert resumed.total_products == learner.total_products == sum(r.num_products for r in learner.trace)
    for a, b in zip(model.state_dict().values(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_current_batch_mode_needs_the_batch() -> None:
    model = small_bn_net()
    x, y = small_data(16)
    learner = SLQLearner(model.parameters(), model, nn.CrossEntropyLoss(), None, every=2, lanczos_steps=4)
    nn.CrossEntropyLoss()(model(x), y).backward()
    with pytest.raises(ValueError, match="batch"):
        learner.step()
    learner.step(batch=(x, y))
    assert learner.num_steps == 1 and learner.lr > 0
    learner.step()  # not a refresh step: no batch needed
    assert learner.num_steps == 2


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"every": 0}, "every"),
        ({"lanczos_steps": 1}, "lanczos_steps"),
        ({"matrix": "fisher"}, "matrix"),
        ({"rule": "nesterov"}, "rule"),
        ({"mu_mode": "median"}, "mu_mode"),
        ({"weight_threshold": 0.0}, "weight_threshold"),
        ({"quantile": 1.0}, "quantile"),
        ({"safety": 0.0}, "safety"),
        ({"mu_floor": -1.0}, "mu_floor"),
        ({"lr_max": 0.0}, "lr_max"),
        ({"bn_mode": "frozen"}, "bn_mode"),
        ({"predicted_batch_size": 0}, "predicted_batch_size"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(kwargs: dict, name: str) -> None:
    model = small_bn_net()
    with pytest.raises(ValueError, match=name):
        SLQLearner(model.parameters(), model, nn.CrossEntropyLoss(), small_data(8), **kwargs)


def test_bad_curvature_data_raises() -> None:
    model = small_bn_net()
    with pytest.raises(ValueError, match="curvature_data"):
        SLQLearner(model.parameters(), model, nn.CrossEntropyLoss(), [])
    with pytest.raises(ValueError, match="curvature_data"):
        SLQLearner(
            model.parameters(), model, nn.CrossEntropyLoss(), (torch.zeros(3, 1, 8, 8), torch.zeros(2))
        )


def test_prediction_for_the_training_batch_size() -> None:
    from rmt.wigner import batch_hessian_extremal

    model = small_bn_net()
    x, y = small_data(64)
    learner = SLQLearner(
        model.parameters(),
        model,
        nn.CrossEntropyLoss(),
        (x, y),
        lanczos_steps=6,
        predicted_batch_size=8,
        noise_samples=16,
        noise_probes=2,
    )
    record = learner.refresh()
    n_params = sum(p.numel() for p in model.parameters())
    assert record.p_sigma2 is not None and record.p_sigma2 > 0
    assert record.num_products > 6  # the noise estimate's products are counted too
    expected = batch_hessian_extremal(record.L, record.p_sigma2 / n_params, n_params, 8)
    assert record.predicted_top_eigenvalue == pytest.approx(expected)
    assert record.predicted_top_eigenvalue > record.L  # a batch of 8 is sharper than the curvature subset
    assert record.predicted_max_lr == pytest.approx(2 / record.predicted_top_eigenvalue)
