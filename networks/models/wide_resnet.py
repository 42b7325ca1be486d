"""Wide residual networks WRN-d-k (pre-activation blocks, the CIFAR port used by the paper's lineage)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from ._common import check_positive_int, check_probability, check_width, scaled


class WideBasic(nn.Module):
    """Pre-activation block: x + conv2(ReLU(BN(dropout(conv1(ReLU(BN(x))))))) with the stride on ``conv2``
    (the common port); a biased 1×1 conv shortcut when the stride or channel count changes."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, padding=1, bias=True)
        self.dropout = nn.Dropout(dropout)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=True)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.dropout(self.conv1(self.relu(self.bn1(x))))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    """conv3x3(16w) → 3 stages of n WideBasic blocks (16k·w, 32k·w, 64k·w channels; strides 1, 2, 2) →
    BN → ReLU → global average pool → Linear.

    The lineage's ``avg_pool2d(8)`` equals the global pool on 32×32 inputs (8×8 final map); the global pool
    also accepts 28×28 inputs (7×7 final map). No parameter depends on the input size.
    """

    def __init__(
        self, depth: int, widen_factor: int, num_classes: int, width: float, in_channels: int, dropout: float
    ) -> None:
        super().__init__()
        n = (depth - 4) // 6
        widths = [scaled(c, width) for c in (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1, bias=True)
        stages: list[nn.Module] = []
        in_planes = widths[0]
        for planes, stride in zip(widths[1:], (1, 2, 2), strict=True):
            blocks: list[nn.Module] = []
            for i in range(n):
                blocks.append(WideBasic(in_planes, planes, stride if i == 0 else 1, dropout))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_planes, num_classes)
        _wrn_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn(self.stages(self.conv1(x))))
        return self.linear(self.pool(out).flatten(1))


def _wrn_init_(module: nn.Module) -> None:
    """Lineage initialisation: conv weights Xavier-uniform with gain sqrt(2), conv bias 0; BN weight 1,
    bias 0; linear layers keep PyTorch's default."""
    for m in module.modules():
        if any(p.is_meta for p in m.parameters(recurse=False)):
            continue  # shape-only construction (device "meta"): no values to initialise
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight, gain=math.sqrt(2.0))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def wide_resnet(
    depth: int,
    widen_factor: int,
    num_classes: int = 10,
    width: float = 1.0,
    in_channels: int = 3,
    dropout: float = 0.0,
) -> WideResNet:
    """WRN-``depth``-``widen_factor`` with ``n = (depth − 4)/6`` blocks per stage.

    Args:
        depth: 6n + 4 for n >= 1 (10, 16, 22, 28, 34, 40, ...).
        widen_factor: k >= 1; stage widths 16k, 32k, 64k.
        num_classes: number of output logits C.
        width: extra channel multiplier applied to every count (max(1, round(c·width))).
        in_channels: image channels.
        dropout: dropout probability between the two convs of a block.

    Returns:
        A :class:`WideResNet`; WRN-28-10 with C = 100 has 36,546,980 parameters.
    """
    depth = check_positive_int(depth, "depth")
    if depth < 10 or (depth - 4) % 6 != 0:
        raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 34, 40, ...), got {depth}")
    return WideResNet(
        depth,
        check_positive_int(widen_factor, "widen_factor"),
        check_positive_int(num_classes, "num_classes"),
        check_width(width),
        check_positive_int(in_channels, "in_channels"),
        check_probability(dropout, "dropout"),
    )
