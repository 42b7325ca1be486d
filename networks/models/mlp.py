"""Fully connected network for the Gaussian-mixture control (and flattened images)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ._common import check_choice, check_positive_int, check_width, scaled

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
}


class MLP(nn.Module):
    """Flatten → [Linear → activation]* → Linear(C); PyTorch's default (uniform ±1/sqrt(fan_in)) init."""

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        previous = in_features
        for h in hidden:
            layers += [nn.Linear(previous, h), ACTIVATIONS[activation]()]
            previous = h
        layers.append(nn.Linear(previous, num_classes))
        self.net = nn.Sequential(*layers)
        self.in_features = in_features

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def mlp(
    in_features: int,
    num_classes: int,
    hidden: Sequence[int] = (512, 512),
    activation: str = "relu",
    width: float = 1.0,
) -> MLP:
    """MLP with hidden sizes ``hidden`` (each scaled by ``width``: max(1, round(h·width))).

    Inputs of any shape (N, ...) with prod(...) = ``in_features`` are flattened first.
    Parameter count: Σ_l (d_{l-1} + 1) d_l with d_0 = in_features and the last d = num_classes.
    """
    in_features = check_positive_int(in_features, "in_features")
    num_classes = check_positive_int(num_classes, "num_classes")
    check_choice(activation, "activation", sorted(ACTIVATIONS))
    w = check_width(width)
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise TypeError(f"hidden must be a sequence of positive integers, got {hidden!r}")
    sizes = [scaled(check_positive_int(h, f"hidden[{i}]"), w) for i, h in enumerate(hidden)]
    return MLP(in_features, num_classes, sizes, activation)
