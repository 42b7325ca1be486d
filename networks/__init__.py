"""batchrmt measurement layer (PyTorch): models, data, curvature operators, Lanczos / SLQ, training loops.

- ``networks.models``      VGG, WideResNet, PreResNet, MLP (CIFAR variants, width-scalable), ``build_model``
- ``networks.data``        loaders (Fashion-MNIST/MNIST IDX, CIFAR with a restricted unpickler, ImageNet32,
                           Gaussian mixture), fixed batches, augmentation
- ``networks.curvature``   ``HessianOperator``, ``GGNOperator`` (``H @ v``, ``to_scipy()``), noise statistics
- ``networks.lanczos``     the one Krylov engine: ``lanczos``, ``top_eigenpairs``, ``slq_density``
- ``networks.training``    learning-rate schedule, optimizers, evaluation, the training loop
- ``networks.stability``   divergence trials at one learning rate (``TrialSettings``, ``TrialRunner``)
- ``networks.thresholds``  the maximal stable learning rate (``find_max_lr``: bisection on log η)
- ``networks.slq_learner`` the SLQ on-the-fly learning-rate / momentum optimizer
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rmt._lazy import lazy_attributes

# Public names and the module that defines each. They are imported on first use, so that
# ``import networks.options`` (option vocabularies, read by torch-free commands such as ``batchrmt --help``)
# does not import torch.
_EXPORTS = {
    "BatchNoiseEstimate": "networks.curvature",
    "CurvatureOperator": "networks.curvature",
    "GGNOperator": "networks.curvature",
    "HessianOperator": "networks.curvature",
    "NoiseEstimate": "networks.curvature",
    "as_operator": "networks.curvature",
    "batch_noise_norm": "networks.curvature",
    "per_sample_noise": "networks.curvature",
    "quadratic_form_variance": "networks.curvature",
    "EigenResult": "networks.lanczos",
    "LanczosResult": "networks.lanczos",
    "SpectralDensity": "networks.lanczos",
    "slq_density": "networks.lanczos",
    "top_eigenpairs": "networks.lanczos",
    "top_eigenvalues": "networks.lanczos",
    "SLQLearner": "networks.slq_learner",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from networks.curvature import (
        BatchNoiseEstimate,
        CurvatureOperator,
        GGNOperator,
        HessianOperator,
        NoiseEstimate,
        as_operator,
        batch_noise_norm,
        per_sample_noise,
        quadratic_form_variance,
    )
    from networks.lanczos import (
        EigenResult,
        LanczosResult,
        SpectralDensity,
        slq_density,
        top_eigenpairs,
        top_eigenvalues,
    )
    from networks.slq_learner import SLQLearner


__getattr__, __dir__ = lazy_attributes("networks", _EXPORTS, globals())
