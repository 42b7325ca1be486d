"""Pre-activation CIFAR ResNets: bottleneck blocks (depth 9n + 2, the paper's lineage) or basic (6n + 2)."""

from __future__ import annotations

from torch import Tensor, nn

from ._common import check_positive_int, check_width, kaiming_fan_out_, scaled


class PreActBasicBlock(nn.Module):
    """x ↦ shortcut(x) + conv3x3(ReLU(BN(conv3x3_stride(ReLU(BN(x)))))), bias-free convs; expansion 1."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.downsample = _downsample(in_planes, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + self.downsample(x)


class PreActBottleneck(nn.Module):
    """x ↦ shortcut(x) + conv1x1(ReLU(BN(conv3x3_stride(ReLU(BN(conv1x1(ReLU(BN(x))))))))), bias-free;
    the last conv expands ``planes`` to ``4·planes`` channels."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.relu = nn.ReLU()
        self.downsample = _downsample(in_planes, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + self.downsample(x)


def _downsample(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    """Bias-free 1×1 conv shortcut when the stride or channel count changes, identity otherwise."""
    if stride != 1 or in_planes != out_planes:
        return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)
    return nn.Identity()


class PreResNet(nn.Module):
    """conv3x3(16w) → 3 stages of n blocks (planes 16w, 32w, 64w; strides 1, 2, 2) → BN → ReLU →
    global average pool → Linear.

    The lineage's ``AvgPool2d(8)`` equals the global pool on 32×32 inputs; the global pool also accepts 28×28.
    """

    def __init__(
        self, depth: int, num_classes: int, bottleneck: bool, width: float, in_channels: int
    ) -> None:
        super().__init__()
        block: type[PreActBasicBlock] | type[PreActBottleneck] = (
            PreActBottleneck if bottleneck else PreActBasicBlock
        )
        n = (depth - 2) // (9 if bottleneck else 6)
        stem = scaled(16, width)
        self.conv1 = nn.Conv2d(in_channels, stem, kernel_size=3, padding=1, bias=False)
        stages: list[nn.Module] = []
        in_planes = stem
        planes_per_stage = (scaled(16, width), scaled(32, width), scaled(64, width))
        for planes, stride in zip(planes_per_stage, (1, 2, 2), strict=True):
            blocks: list[nn.Module] = []
            for i in range(n):
                blocks.append(block(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        kaiming_fan_out_(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn(self.stages(self.conv1(x))))
        return self.fc(self.pool(out).flatten(1))


def preresnet(
    depth: int,
    num_classes: int = 10,
    bottleneck: bool = True,
    width: float = 1.0,
    in_channels: int = 3,
) -> PreResNet:
    """PreResNet-``depth``.

    Args:
        depth: 9n + 2 with bottleneck blocks (11, 20, 29, ..., 110 = n 12), 6n + 2 with basic blocks
            (8, 14, 20, ..., 110 = n 18).
        num_classes: number of output logits C.
        bottleneck: bottleneck blocks (the paper's lineage, expansion 4) or basic blocks (classic He et al.).
        width: channel multiplier (max(1, round(c·width)) for every plane count).
        in_channels: image channels.

    Returns:
        A :class:`PreResNet`; with C = 100, PreResNet-110 has 1,169,972 parameters (bottleneck) or
        1,736,372 (basic).
    """
    depth = check_positive_int(depth, "depth")
    bottleneck = bool(bottleneck)
    step = 9 if bottleneck else 6
    if depth < step + 2 or (depth - 2) % step != 0:
        kind = "bottleneck" if bottleneck else "basic-block"
        examples = ", ".join(str(step * n + 2) for n in (1, 2, 3, 4, 6, 12)) + ", ..."
        raise ValueError(
            f"depth must be {step}n + 2 with n >= 1 for {kind} PreResNets ({examples}), got {depth}"
            + ("; set bottleneck=False for basic blocks (depth 6n + 2)" if bottleneck else "")
        )
    return PreResNet(
        depth,
        check_positive_int(num_classes, "num_classes"),
        bottleneck,
        check_width(width),
        check_positive_int(in_channels, "in_channels"),
    )
