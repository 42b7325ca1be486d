"""Model zoo of the measurement layer: CIFAR-variant VGG, WideResNet, PreResNet and an MLP."""

from __future__ import annotations

from .mlp import MLP, mlp
from .preresnet import PreResNet, preresnet
from .registry import SPEC_GRAMMAR, build_model
from .vgg import VGG, VGG_CONFIGS, vgg
from .wide_resnet import WideResNet, wide_resnet

__all__ = [
    "MLP",
    "SPEC_GRAMMAR",
    "VGG",
    "VGG_CONFIGS",
    "PreResNet",
    "WideResNet",
    "build_model",
    "mlp",
    "preresnet",
    "vgg",
    "wide_resnet",
]
