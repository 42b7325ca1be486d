"""Model zoo: exact parameter counts of the lineage's configurations, input-size independence, forward shapes,
width scaling, deterministic lineage initialisation, argument validation and the spec parser."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from networks.models import build_model, mlp, preresnet, vgg, wide_resnet
from networks.models.vgg import VGG_CONFIGS


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Parameter counts of the lineage's CIFAR configurations for C = 100 (the README lists them), built on
# the meta device (no memory, no init cost).
LINEAGE_COUNTS = [
    ("vgg16", 15_291_300),
    ("vgg16bn", 15_299_748),
    ("wrn-28-10", 36_546_980),
    ("preresnet-110", 1_169_972),
    ("preresnet-110-basic", 1_736_372),
]


@pytest.mark.parametrize(("spec", "expected"), LINEAGE_COUNTS)
def test_lineage_parameter_counts_for_cifar100(spec: str, expected: int) -> None:
    with torch.device("meta"):
        assert n_params(build_model(spec, num_classes=100, in_channels=3)) == expected


def test_direct_constructors_agree_with_specs() -> None:
    with torch.device("meta"):
        assert n_params(vgg(16, 100, batch_norm=True)) == 15_299_748
        assert n_params(wide_resnet(28, 10, 100)) == 36_546_980
        assert n_params(preresnet(110, 100, bottleneck=False)) == 1_736_372


def vgg_count_formula(depth: int, width: float, c_in: int, classes: int, bn: bool) -> int:
    """Σ_conv (9·c_in·c_out + c_out [+ 2 c_out BN]) + (h·h + h)·… for the 512w classifier."""
    total, c = 0, c_in
    for item in VGG_CONFIGS[depth]:
        if item == "M":
            continue
        out = max(1, round(int(item) * width))
        total += 9 * c * out + out + (2 * out if bn else 0)
        c = out
    h = max(1, round(512 * width))
    return total + (c * h + h) + (h * h + h) + (h * classes + classes)


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
@pytest.mark.parametrize(("width", "bn"), [(0.25, False), (0.3, True), (1.0, False)])
def test_vgg_count_matches_closed_form_under_width_scaling(depth: int, width: float, bn: bool) -> None:
    with torch.device("meta"):
        model = vgg(depth, num_classes=7, batch_norm=bn, width=width, in_channels=1)
    assert n_params(model) == vgg_count_formula(depth, width, 1, 7, bn)


SCALED_SPECS = ["vgg11", "vgg16bn", "wrn-16-2", "preresnet-20", "preresnet-20-basic"]


@pytest.mark.parametrize("spec", SCALED_SPECS)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_on_28_and_32_pixels_with_same_parameters(spec: str, in_channels: int) -> None:
    torch.manual_seed(0)
    model = build_model(spec, num_classes=10, in_channels=in_channels, width=0.25).eval()
    count = n_params(model)
    for side in (28, 32):
        with torch.no_grad():
            out = model(torch.randn(3, in_channels, side, side))
        assert out.shape == (3, 10)
        assert torch.isfinite(out).all()
    assert n_params(model) == count  # nothing lazily created by either input size


def test_width_scaling_shrinks_every_family() -> None:
    with torch.device("meta"):
        for spec in ("vgg16", "wrn-16-4", "preresnet-56"):
            full = n_params(build_model(spec, 10, 3))
            quarter = n_params(build_model(spec, 10, 3, width=0.25))
            # conv weights scale like width², so a quarter-width model has roughly 1/16 of the parameters
            assert full / 25 < quarter < full / 8
            tiny = build_model(spec, 10, 3, width=1e-6)  # every channel count clamps at 1, never 0
            assert all(p.numel() > 0 for p in tiny.parameters())


def test_vgg_on_32_pixels_is_exactly_the_lineage_network() -> None:
    """On 32×32 inputs ceil-mode pools + the global pool coincide with floor pools + flatten."""
    torch.manual_seed(1)
    model = vgg(11, num_classes=5, width=0.125, dropout=0.0).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        h = x
        for layer in model.features:
            h = nn.functional.max_pool2d(h, 2) if isinstance(layer, nn.MaxPool2d) else layer(h)
        reference = model.classifier(h.flatten(1))
        assert h.shape[-2:] == (1, 1)
        assert torch.equal(model(x), reference)


def test_initialisation_is_deterministic_under_manual_seed() -> None:
    states = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        states.append(build_model("wrn-10-1", 10, 3, width=0.5).state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not torch.equal(states[0]["conv1.weight"], states[2]["conv1.weight"])


def test_vgg_conv_init_has_lineage_variance() -> None:
    """Conv weights ~ N(0, 2/(9·c_out)); the sample std of n weights has relative sd ≈ 1/sqrt(2n)."""
    torch.manual_seed(0)
    model = vgg(11, width=0.5)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    big = max(convs, key=lambda m: m.weight.numel())
    n = big.weight.numel()
    target = math.sqrt(2.0 / (9 * big.out_channels))
    assert abs(big.weight.std().item() / target - 1) < 5 / math.sqrt(2 * n)
    assert abs(big.weight.mean().item()) < 5 * target / math.sqrt(n)
    assert all(m.bias is not None and torch.count_nonzero(m.bias) == 0 for m in convs)


def test_mlp_structure_and_count() -> None:
    model = mlp(20, 3, hidden=(8, 6), activation="tanh")
    assert n_params(model) == (20 * 8 + 8) + (8 * 6 + 6) + (6 * 3 + 3)
    assert model(torch.randn(5, 20)).shape == (5, 3)
    assert model(torch.randn(5, 4, 5)).shape == (5, 3)  # flattened input
    assert any(isinstance(m, nn.Tanh) for m in model.modules())


@pytest.mark.parametrize(
    ("spec", "hidden"), [("mlp-512x2", [512, 512]), ("MLP-64x3", [64, 64, 64]), ("mlp-256-128", [256, 128])]
)
def test_mlp_specs(spec: str, hidden: list[int]) -> None:
    with torch.device("meta"):
        model = build_model(spec, num_classes=10, in_channels=1, image_size=28)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [*hidden, 10]
    assert linears[0].in_features == 28 * 28


def test_spec_parser_picks_variants() -> None:
    with torch.device("meta"):
        bn = build_model("VGG16BN", 10, 3)
        plain = build_model("vgg16", 10, 3)
        assert any(isinstance(m, nn.BatchNorm2d) for m in bn.modules())
        assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
        bottleneck, basic = build_model("preresnet-20", 10, 3), build_model("preresnet-20-basic", 10, 3)
        assert n_params(bottleneck) != n_params(basic)
        assert n_params(build_model("wrn-16-2", 10, 3, dropout=0.3)) == n_params(wide_resnet(16, 2))


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: vgg(15), ["depth", "11", "19"]),
        (lambda: vgg(16, width=0), ["width", "> 0"]),
        (lambda: vgg(16, width=-1.0), ["width"]),
        (lambda: vgg(16, width=float("nan")), ["width"]),
        (lambda: vgg(16, dropout=1.0), ["dropout", "[0, 1)"]),
        (lambda: wide_resnet(27, 10), ["depth", "6n + 4"]),
        (lambda: wide_resnet(28, 0), ["widen_factor"]),
        (lambda: preresnet(32), ["depth", "9n + 2", "bottleneck=False"]),
        (lambda: preresnet(29, bottleneck=False), ["depth", "6n + 2"]),
        (lambda: preresnet(20, num_classes=0), ["num_classes"]),
        (lambda: mlp(10, 2, activation="swishy"), ["activation", "relu"]),
        (lambda: build_model("resnet50", 10, 3), ["unknown model spec", "wrn-<depth>-<widen>"]),
        (lambda: build_model("mlp-512x2", 10, 3), ["in_features", "image_size"]),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call: Callable[[], object], words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value)


def test_non_integer_depth_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="depth"):
        vgg(16.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="width"):
        vgg(16, width="wide")  # type: ignore[arg-type]
