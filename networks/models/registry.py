"""``build_model``: construct a model from a spec string ("vgg16bn", "wrn-28-10", "preresnet-110-basic")."""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from .mlp import mlp
from .preresnet import preresnet
from .vgg import vgg
from .wide_resnet import wide_resnet

SPEC_GRAMMAR = (
    "'vgg{11,13,16,19}[bn]' (e.g. 'vgg16', 'vgg16bn', 'vgg11-bn'), 'wrn-<depth>-<widen>' (e.g. 'wrn-28-10'), "
    "'preresnet-<depth>[-basic]' (e.g. 'preresnet-110', 'preresnet-20-basic'), "
    "'mlp-<width>x<layers>' or 'mlp-<h1>-<h2>-...' (e.g. 'mlp-512x2', 'mlp-256-128')"
)

_VGG = re.compile(r"vgg(\d+)[-_]?(bn)?")
_WRN = re.compile(r"(?:wrn|wide[-_]?resnet)[-_](\d+)[-_](\d+)")
_PRERESNET = re.compile(r"preresnet[-_]?(\d+)(?:[-_](basic|bottleneck))?")
_MLP_REPEAT = re.compile(r"mlp[-_](\d+)x(\d+)")
_MLP_LIST = re.compile(r"mlp((?:[-_]\d+)*)")


def build_model(spec: str, num_classes: int, in_channels: int, **kw: Any) -> nn.Module:
    """Construct the model named by ``spec`` (see :data:`SPEC_GRAMMAR`; case-insensitive).

    Args:
        spec: model name, e.g. "vgg11", "vgg16bn", "wrn-16-2", "preresnet-110", "preresnet-20-basic",
            "mlp-512x2".
        num_classes: number of output logits C.
        in_channels: image channels (ignored by MLPs except to derive ``in_features`` from ``image_size``).
        **kw: forwarded to the family's constructor (``width``, ``dropout``, ``activation``, ...). MLPs need
            ``in_features`` or ``image_size`` (square side; in_features = in_channels·image_size²).

    Raises:
        ValueError: unknown spec (the message lists the grammar) or invalid arguments.
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string ({SPEC_GRAMMAR}), got {spec!r}")
    name = spec.strip().lower()
    if m := _VGG.fullmatch(name):
        batch_norm = m.group(2) is not None
        return vgg(int(m.group(1)), num_classes, batch_norm=batch_norm, in_channels=in_channels, **kw)
    if m := _WRN.fullmatch(name):
        return wide_resnet(int(m.group(1)), int(m.group(2)), num_classes, in_channels=in_channels, **kw)
    if m := _PRERESNET.fullmatch(name):
        basic = m.group(2) == "basic"
        return preresnet(int(m.group(1)), num_classes, bottleneck=not basic, in_channels=in_channels, **kw)
    hidden: tuple[int, ...] | None = None
    if m := _MLP_REPEAT.fullmatch(name):
        hidden = (int(m.group(1)),) * int(m.group(2))
    elif m := _MLP_LIST.fullmatch(name):
        hidden = tuple(int(h) for h in re.split(r"[-_]", m.group(1))[1:])
    if hidden is not None:
        in_features = kw.pop("in_features", None)
        image_size = kw.pop("image_size", None)
        if in_features is None:
            if image_size is None:
                raise ValueError(
                    f"{spec!r}: an MLP needs in_features=<int> or image_size=<int> "
                    "(in_features = in_channels·image_size²)"
                )
            in_features = int(in_channels) * int(image_size) ** 2
        return mlp(in_features, num_classes, hidden=hidden, **kw)
    raise ValueError(f"unknown model spec {spec!r}; accepted: {SPEC_GRAMMAR}")
