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

# ``networks.lanczos`` stays the module (its function is ``networks.lanczos.lanczos``).
from networks.lanczos import (
    EigenResult,
    LanczosResult,
    SpectralDensity,
    slq_density,
    top_eigenpairs,
    top_eigenvalues,
)
from networks.slq_learner import SLQLearner

__all__ = [
    "BatchNoiseEstimate",
    "CurvatureOperator",
    "EigenResult",
    "GGNOperator",
    "HessianOperator",
    "LanczosResult",
    "NoiseEstimate",
    "SLQLearner",
    "SpectralDensity",
    "as_operator",
    "batch_noise_norm",
    "per_sample_noise",
    "quadratic_form_variance",
    "slq_density",
    "top_eigenpairs",
    "top_eigenvalues",
]
