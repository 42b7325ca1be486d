"""VGG-11/13/16/19, CIFAR variant of the paper's lineage (512-wide classifier, optional BatchNorm)."""

from __future__ import annotations

from torch import Tensor, nn

from ._common import (
    check_choice,
    check_positive_int,
    check_probability,
    check_width,
    kaiming_fan_out_,
    scaled,
)

# Feature configurations: integers are 3x3 conv output channels, "M" a 2x2 max-pool.
VGG_CONFIGS: dict[int, tuple[int | str, ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ),
}


class VGG(nn.Module):
    """VGG feature stack + 3-layer classifier.

    features: [conv3x3(pad 1, bias) → (BN) → ReLU]* with 2x2 max-pools (``ceil_mode=True``), then a global
    average pool; classifier: Dropout → Linear(512w, 512w) → ReLU → Dropout → Linear(512w, 512w) → ReLU →
    Linear(512w, C).

    On 32×32 inputs the five pools reduce the map to 1×1, so ``ceil_mode`` and the global pool are
    identities and the network is exactly the lineage's. On 28×28 inputs ``ceil_mode`` keeps the border
    (28→14→7→4→2→1) instead of dropping a row at 7→3; no parameter depends on the input size.
    """

    def __init__(
        self,
        config: tuple[int | str, ...],
        num_classes: int,
        *,
        batch_norm: bool,
        width: float,
        in_channels: int,
        dropout: float,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
                continue
            out = scaled(int(item), width)
            layers.append(nn.Conv2d(channels, out, kernel_size=3, padding=1, bias=True))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        hidden = scaled(512, width)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        kaiming_fan_out_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def vgg(
    depth: int,
    num_classes: int = 10,
    batch_norm: bool = False,
    width: float = 1.0,
    in_channels: int = 3,
    dropout: float = 0.5,
) -> VGG:
    """VGG-``depth`` (11, 13, 16 or 19) for ``in_channels``×H×W images and ``num_classes`` classes.

    Args:
        depth: number of weight layers, one of 11, 13, 16, 19.
        num_classes: number of output logits C.
        batch_norm: insert BatchNorm2d after every conv (VGG16BN).
        width: channel multiplier; every count c becomes max(1, round(c·width)), classifier included.
        in_channels: image channels (1 for Fashion-MNIST, 3 for CIFAR).
        dropout: dropout probability in the classifier (0 disables it).

    Returns:
        A :class:`VGG` initialised as in the lineage (conv ~ N(0, 2/(9·c_out)), zero bias; default linear
        init).
        Parameter counts at width 1, C = 100: VGG16 15,291,300; VGG16BN 15,299,748.
    """
    check_choice(check_positive_int(depth, "depth"), "depth", sorted(VGG_CONFIGS))
    return VGG(
        VGG_CONFIGS[int(depth)],
        check_positive_int(num_classes, "num_classes"),
        batch_norm=bool(batch_norm),
        width=check_width(width),
        in_channels=check_positive_int(in_channels, "in_channels"),
        dropout=check_probability(dropout, "dropout"),
    )
