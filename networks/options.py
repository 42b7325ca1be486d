"""Option vocabularies of the measurement layer, defined once.

Each option is a ``Literal`` type (for signatures and mypy) and the tuple of its values (for validation with
:func:`rmt.checks.check_choice` and for command-line choices). ``validation`` imports these; nothing redefines
them.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

BNMode = Literal["eval", "train"]
"""BatchNorm statistics in a curvature product or a trial: running statistics (``eval``) or the batch's own
statistics without updating the running ones (``train``)."""
BN_MODES: Final[tuple[BNMode, ...]] = get_args(BNMode)

LearnerBNMode = Literal["auto", "eval", "train"]
"""``auto``: batch statistics for models with BatchNorm, eval otherwise (the SLQ learner's curvature)."""
LEARNER_BN_MODES: Final[tuple[LearnerBNMode, ...]] = get_args(LearnerBNMode)

MuMode = Literal["positive", "weight", "quantile"]
"""How the SLQ learner picks μ (docs/theory.md §6): the smallest resolved positive Ritz value, the paper's
weight rule (discard Ritz values of weight τ > 0.5), or a low quantile."""
MU_MODES: Final[tuple[MuMode, ...]] = get_args(MuMode)

Optimizer = Literal["sgd", "momentum", "adam"]
"""Optimizers of the divergence-threshold trials (PyTorch conventions: ``momentum`` is heavy ball
``v ← βv + g, w ← w − ηv``)."""
OPTIMIZERS: Final[tuple[Optimizer, ...]] = get_args(Optimizer)

Criterion = Literal["strict", "lenient"]
"""Divergence criteria of docs/validation.md §1: strict (loss ever above (1+δ)·L(w_c)) and lenient (final loss
above 2·L(w_c))."""
CRITERIA: Final[tuple[Criterion, ...]] = get_args(Criterion)

Matrix = Literal["hessian", "ggn"]
"""Curvature matrices: the Hessian H and the generalised Gauss–Newton matrix G = JᵀH_ℓJ."""
MATRICES: Final[tuple[Matrix, ...]] = get_args(Matrix)

DEFAULT_MOMENTUM: Final[float] = 0.9
"""β of heavy-ball momentum wherever a study does not set it (thresholds, predictions, baselines)."""
DEFAULT_ADAM_BETAS: Final[tuple[float, float]] = (0.9, 0.999)
DEFAULT_ADAM_EPS: Final[float] = 1e-8
